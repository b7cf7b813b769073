"""Training: data sets -> batches -> CTC loss -> checkpoints.

- `train`: `hwr train` (configuration, the loop, validation through the `Recognizer`)
- `batches`: collation of line samples into width-sorted batches
- `checkpoint`: resumable training state (safetensors + JSON, no pickle)
- `averaging`: checkpoint averaging (`hwr average`)
- `distributed`: DistributedDataParallel under torchrun
"""
