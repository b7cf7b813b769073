#!/usr/bin/env bash
# One GPU session's checks (run through the device tool from the repository root):
# cuDNN + AMP training and inference throughput of the CRNN presets and the MDLSTM presets.
# Results go to $OUT/gpu_check.txt. Reference on an H200 without a data pipeline:
# puigcerver2017 ~1,300 lines/s training (batch 128, 128x1024); the 64x512 small model
# ~5,300 lines/s training / 50,000 lines/s inference (batch 256).
set -euo pipefail
OUT=${OUT:-/tmp/hwr-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
{
  nvidia-smi --query-gpu=name,memory.total --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
  python bench/bench_nets.py --device cuda --nets crnn --sizes 64x512 --batch-size 256 --steps 200 --min-seconds 10
  python bench/bench_nets.py --device cuda --nets crnn --sizes 64x512 --batch-size 256 --steps 200 --min-seconds 5 --inference
  python bench/bench_nets.py --device cuda --nets crnn-puigcerver2017 --sizes 128x1024 --batch-size 128 --steps 200 --min-seconds 10
  python bench/bench_nets.py --device cuda --nets crnn-puigcerver2017 --sizes 128x1024 --batch-size 128 --steps 100 --min-seconds 5 --inference
  python bench/bench_nets.py --device cuda --nets mdlstm-graves2009,mdlstm-voigtlaender2016 --sizes 64x512,128x1024 --batch-size 32 --steps 20 --min-seconds 10
} 2>&1 | tee "$OUT/gpu_check.txt"
