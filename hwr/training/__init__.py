"""Training: data sets -> batches -> CTC loss -> checkpoints.

- `settings`: the settings of `hwr train`, `hwr adapt` and `hwr average` (torch-free: `--help`)
- `train`: `hwr train` (the loop, validation through the `Recognizer`)
- `adapt`: `hwr adapt` (fine-tuning to a user's hand)
- `batches`: collation of line samples into width-sorted batches
- `checkpoint`: resumable training state (safetensors + JSON, no pickle)
- `averaging`: checkpoint averaging (`hwr average`)
- `distributed`: DistributedDataParallel under torchrun
"""
