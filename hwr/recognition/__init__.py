"""Line recognition: a normalised line image -> network -> CTC decoding -> text.

- `imaging`: load any image and normalise a line to the network's height
- `charset`: the symbols the CTC output layer knows (blank is index 0)
- `nets/`: the networks (CRNN + BLSTM, MDLSTM) and their presets
- `decode`, `lm`, `lexicon`, `align`: greedy and beam-search CTC decoding with n-gram LMs, and
  forced alignment for character and word positions
- `model`: saving and loading model directories, and the `Recognizer` facade that the CLI,
  the UI, the batch transcriber and the scorer all go through
"""
