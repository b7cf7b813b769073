#!/usr/bin/env bash
# Everything one short GPU lease is for, in one run from the repository root:
#   1. cuDNN + AMP throughput of every network (bench_nets), before anything else loads the GPU;
#   2. three trainings at once, each with its own rendering workers on the 16 CPU cores:
#      - stage 3 of the shipped `small` model (configs/hwr-en-small-stage3-gpu.json),
#      - the 2-layer `compact` CRNN started from the same weights (configs/hwr-en-compact-gpu.json),
#      - the equal-time MDLSTM graves2009 vs CRNN comparison from scratch (bench/compare_archs.py);
#   3. GPU decoding speed of the two trained models and the page pipeline's pages/s.
# Both fine-tunings start from runs/hwr-en-small-2/best (stage 2, which is what models/hwr-en-small
# holds). Results land in $OUT: logs, and runs.tar with the best checkpoints and curves.
#   SMOKE=1 bash bench/gpu_session.sh   # the same steps in about a minute (CPU or GPU)
set -uo pipefail
OUT=${OUT:-/tmp/hwr-gpu}
SMOKE=${SMOKE:-0}
MINUTES=${MINUTES:-4.5}
mkdir -p "$OUT" runs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
rm -rf runs/gpu-small3 runs/gpu-compact runs/compare-archs-gpu  # a smoke run's curves would mix in
[ -e runs/hwr-en-small-2/best ] || { mkdir -p runs/hwr-en-small-2 && cp -r models/hwr-en-small runs/hwr-en-small-2/best; }

if [ "$SMOKE" = 1 ]; then
  BENCH=(--quick) PAGES=4 VALS=(--val synth:val:32)
  TRAIN_LIMITS=(--max-steps 12 --val-every 6 --max-minutes 0 --workers 2)
  COMPARE=(--minutes 0.4 --val synth:val:16 --val-every 5) MINUTES=0.4
else
  BENCH=() PAGES=40 VALS=()
  TRAIN_LIMITS=(--max-minutes "$MINUTES")
  COMPARE=(--minutes "$MINUTES" --val synth:val:200 --val-every 200)
fi

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'cudnn', torch.backends.cudnn.version(), 'device', '$DEVICE')"
  if [ "$DEVICE" = cuda ]; then
    $PY bench/bench_nets.py --device cuda --nets crnn,crnn-compact --sizes 64x512 --batch-size 256 --steps 50 --min-seconds 3 "${BENCH[@]}"
    $PY bench/bench_nets.py --device cuda --nets crnn,crnn-compact --sizes 64x512 --batch-size 256 --steps 50 --min-seconds 2 --inference "${BENCH[@]}"
    $PY bench/bench_nets.py --device cuda --nets crnn-puigcerver2017 --sizes 128x1024 --batch-size 128 --steps 20 --min-seconds 3 "${BENCH[@]}"
    $PY bench/bench_nets.py --device cuda --nets mdlstm-graves2009,mdlstm-voigtlaender2016 --sizes 64x512,128x1024 --batch-size 32 --steps 5 --min-seconds 3 "${BENCH[@]}"
  fi
} 2>&1 | tee "$OUT/gpu_check.txt"

echo "training on $DEVICE for $MINUTES min: $(date -u)"
$PY -m hwr train --config configs/hwr-en-small-stage3-gpu.json --device "$DEVICE" --out runs/gpu-small3 \
  "${VALS[@]}" "${TRAIN_LIMITS[@]}" >"$OUT/train-small3.log" 2>&1 &
small3=$!
$PY -m hwr train --config configs/hwr-en-compact-gpu.json --device "$DEVICE" --out runs/gpu-compact \
  "${VALS[@]}" "${TRAIN_LIMITS[@]}" >"$OUT/train-compact.log" 2>&1 &
compact=$!
$PY bench/compare_archs.py --device "$DEVICE" --batch-size 16 --out runs/compare-archs-gpu "${COMPARE[@]}" \
  >"$OUT/compare.log" 2>&1 &
compare=$!
wait $small3; echo "small3 exit $?"; wait $compact; echo "compact exit $?"; wait $compare; echo "compare exit $?"
grep -h "val CER" "$OUT/train-small3.log" | tail -3; grep -h "val CER" "$OUT/train-compact.log" | tail -3
tail -5 "$OUT/compare.log"

{
  for run in gpu-small3 gpu-compact; do
    if [ -e "runs/$run/best/config.json" ]; then
      $PY bench/model_card.py "runs/$run/best" --speed-only --device "$DEVICE" --threads 2 | tee "runs/$run/gpu-speed.json"
    fi
  done
  best=runs/gpu-compact/best; [ -e $best/config.json ] || best=runs/hwr-en-small-2/best
  $PY bench/bench_pages.py --pages "$PAGES" --model "$best" --device "$DEVICE" --workers 14 --batch-size 64
} 2>&1 | tee "$OUT/post.txt"

tar -cf "$OUT/runs.tar" --exclude='*/last' --exclude='compare-archs-gpu/*/best' runs/gpu-small3 runs/gpu-compact runs/compare-archs-gpu 2>/dev/null
ls -la "$OUT"
