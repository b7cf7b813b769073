#!/usr/bin/env bash
# One GPU lease's work, in one run from the repository root; PARTS picks the steps
# (default check,train,post; check and post stand for the finer parts after them):
#   check = versions,nets,render
#     versions: the machine, torch/cuDNN versions;
#     nets: cuDNN + AMP throughput of the CRNN presets (small, base) and of MDLSTM graves2009
#       (bench_nets, one width for a whole run);
#     ragged: training steps over batches of varied widths as `hwr train` makes them, with the
#       CRNN's two recurrences (cuDNN's packed kernel against each direction over the padded
#       batch), the first pass (cuDNN autotuning each new width) apart from the steady state;
#     render: 14 rendering workers cold vs warmed;
#   train: `hwr train --config $CONFIG` from the shipped weights ($INIT, default models/hwr-en-small:
#      runs/ does not travel to the GPU machine), rendering in the config's 14 workers;
#   lines: greedy recognition of normalised lines at batch 256 (and 16, and one line) with each
#      of $SPEED_MODELS (bench/model_card.py --speed-only), the "lines/s" figure of issue 22,
#      then float against uint8 lines and float16 autocast (bench_gpu_reading), and hwr eval's
#      line loaders (a thread, 4 and 14 torch-free processes; bench_eval_loaders);
#   post = pages,search,profile,tests, with $MODEL (the trained best checkpoint, else $INIT):
#     pages: the page pipeline's pages/s with $PAGE_CONFIGS (14 threads, 14 torch-free worker
#       processes);
#     search: lines/s with the LM search in 0-8 search worker processes (bench_search_workers);
#     profile: a torch.profiler trace of 30 training steps of $CONFIG (bench/profile_training.py:
#       ops, GPU idle share, lines/s);
#     tests: `pytest -m gpu` (pytest is in the image; carry the wheels it lacks).
# nvidia-smi samples the GPU's utilisation once a second throughout (gpu-util.txt, with times;
# each part prints its start time to match them).
# Results land in $OUT: gpu_check.txt, train.log (the validation curve), lines.txt, eval-loaders.json, post.txt,
# page-workers.json, search-workers.txt, profile/ (summary.json, ops.txt, trace.json.gz),
# gpu-util.txt and stage.tar (best checkpoint + history; copy best/ into runs/ here, then
# follow the "after a new model" steps in runs' recipe: card, benches, README).
#   SMOKE=1 bash bench/gpu_stage.sh   # the same steps in about a minute, on the CPU or the GPU
# One device command may run 10 minutes at most: a config of more than ~5 training minutes
# (configs/hwr-en-base-gpu.json: 7) runs as PARTS=check,train and then, while the machine is
# warm (runs/ stays there), PARTS=post. Measuring alone: PARTS=check,lines,post; the lease of
# 2026-12-06: PARTS=versions,ragged,lines,pages,profile,tests with the base model.
set -uo pipefail
OUT=${OUT:-/tmp/hwr-gpu}
SMOKE=${SMOKE:-0}
CONFIG=${CONFIG:-configs/hwr-en-small-stage8-gpu.json}
INIT=${INIT:-models/hwr-en-small}
RUN=${RUN:-runs/gpu-stage}
PARTS=${PARTS:-check,train,post}
SPEED_MODELS=${SPEED_MODELS:-models/hwr-en-small models/hwr-en-base}
PAGE_CONFIGS=${PAGE_CONFIGS:-threads=14,processes=14}
PARTS=${PARTS//check/versions,nets,render}
PARTS=${PARTS//post/pages,search,profile,tests}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
mkdir -p "$OUT" runs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
part train && rm -rf "$RUN"  # a smoke run's checkpoint would be resumed
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s u -d 1 -o T >"$OUT/gpu-util.txt" 2>&1 &
  DMON=$!
  trap 'kill $DMON 2>/dev/null' EXIT
fi

if [ "$SMOKE" = 1 ]; then
  BENCH=(--quick) PAGES=4 REPEATS=1 TRAIN_LIMIT_S=${TRAIN_LIMIT_S:-300} RENDER=(--workers 2 --lines 300)
  SEARCH=(--workers 0 1 --lines 32 --rounds 1) READING=(--lines 64 --rounds 1)
  LIMITS=(--val synth:val:32 --max-steps 12 --val-every 6 --max-minutes 0 --workers 2)
  RAGGED=(--sizes 48x256 --batch-size 2 --batches 2 --steps 2 --min-seconds 0)
  EVAL_LOADERS=(--lines 16 --repeats 1 --configs threads=1,processes=2)
else
  BENCH=() PAGES=48 REPEATS=2 LIMITS=() TRAIN_LIMIT_S=${TRAIN_LIMIT_S:-450} RENDER=(--workers 14 --lines 20000)
  SEARCH=(--workers 0 2 4 8 --lines 2048 --batch-size 256 --rounds 3) READING=(--lines 2048 --rounds 3)
  RAGGED=(--sizes 48x1536 --batch-size 64 --batches 16 --steps 32 --min-seconds 3)
  EVAL_LOADERS=(--lines 1024 --repeats 2 --batch-size 256 --configs threads=1,processes=4,processes=14)
fi
[ "$DEVICE" = cpu ] && LIMITS+=(--device cpu)

{
part versions && {
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'cudnn', torch.backends.cudnn.version(), 'device', '$DEVICE')"
}
part nets && {
  date -u
  if [ "$DEVICE" = cuda ]; then
    $PY bench/bench_nets.py --device cuda --nets crnn,crnn-base --sizes 64x512 --batch-size 256 --steps 50 --min-seconds 2 "${BENCH[@]}"
    $PY bench/bench_nets.py --device cuda --nets crnn,crnn-base --sizes 64x512 --batch-size 256 --steps 50 --min-seconds 2 --inference "${BENCH[@]}"
    # Issue 22's MDLSTM target: >= 500 lines/s training at 64x512, batch 32.
    $PY bench/bench_nets.py --device cuda --nets mdlstm-graves2009 --sizes 64x512 --batch-size 32 --steps 5 --min-seconds 3 "${BENCH[@]}"
  fi
}
part ragged && {
  # Issue 22's training gap: batches of varied widths (each width a new shape to cuDNN until
  # autotuned), training's batch of 64 at the base model's 48 px lines, both recurrences.
  date -u
  timeout 150 $PY bench/bench_nets.py --device "$DEVICE" --nets crnn,crnn-base --ragged --recurrence packed,reversed \
    "${RAGGED[@]}"
}
part render && {
  # Issues 19/22: 14 rendering workers cold against warmed (hwr.synth.warmup), as a stage's loader starts.
  date -u
  timeout 150 $PY bench/bench_render_workers.py "${RENDER[@]}" 2>&1 | grep -E "^(cold|warm):"
}
} 2>&1 | tee "$OUT/gpu_check.txt"

if part train; then
  echo "training $CONFIG from $INIT on $DEVICE: $(date -u)"
  # The outer timeout is a backstop past the config's max_minutes: whatever happens after
  # training, the best checkpoint is packed first so that it comes back.
  # INIT=none trains from scratch. A wider preset of the same depth starts from the narrower
  # model widened (hwr.recognition.nets.widen); the next `base` stage continues the shipped one:
  # CONFIG=configs/hwr-en-base-gpu.json INIT=models/hwr-en-base PARTS=check,train, then PARTS=post.
  INIT_ARGS=(--init-from "$INIT")
  [ "$INIT" = none ] && INIT_ARGS=()
  timeout "$TRAIN_LIMIT_S" $PY -m hwr train --config "$CONFIG" ${INIT_ARGS[@]+"${INIT_ARGS[@]}"} --out "$RUN" "${LIMITS[@]}" >"$OUT/train.log" 2>&1
  echo "train exit $?: $(date -u)"
  grep -h "val CER" "$OUT/train.log"
  tar -cf "$OUT/stage.tar" --exclude='*/last' --exclude='*/snapshots' "$RUN" 2>/dev/null
fi

part lines && {
  date -u
  # Issue 22: normalised lines -> text, greedy (the network, the copies and the decoding; the
  # next batch's network queued before this one's decoding waits: Recognizer.read_batches).
  for model in $SPEED_MODELS; do
    echo "$model: $(timeout 90 $PY bench/model_card.py "$model" --speed-only --device "$DEVICE" --threads 2)"
  done
  # Float against uint8 lines (as Recognizer.prepare keeps them for a GPU), float16 autocast,
  # and the host's milliseconds a batch for padding each kind and for greedy decoding.
  timeout 120 $PY bench/bench_gpu_reading.py --device "$DEVICE" "${READING[@]}"
  # hwr eval's loaders: one thread against torch-free worker processes, loading alone and end to end.
  timeout 150 $PY bench/bench_eval_loaders.py --model "$INIT" --device "$DEVICE" "${EVAL_LOADERS[@]}" \
    --json "$OUT/eval-loaders.json"
} 2>&1 | tee "$OUT/lines.txt"

MODEL=$INIT
[ -e "$RUN/best/config.json" ] && MODEL=$RUN/best
{
part pages && [ -e "$MODEL/config.json" ] && {
  # Issue 22: the page pipeline with 14 threads vs 14 torch-free worker processes (shared
  # memory, cross-page width batches, pinned-memory feed), one model on the GPU.
  date -u
  timeout 150 $PY bench/bench_page_workers.py --pages "$PAGES" --model "$MODEL" --device "$DEVICE" \
    --configs "$PAGE_CONFIGS" --repeats "$REPEATS" --batch-size 256 --batch-lines 512 --json "$OUT/page-workers.json"
}
part search && [ -e "$MODEL/config.json" ] && {
  # Issue 22: the LM search (the default reading) in 0-8 worker processes beside the GPU network.
  date -u
  timeout 120 $PY bench/bench_search_workers.py --model "$MODEL" --device "$DEVICE" "${SEARCH[@]}" 2>&1 \
    | grep -E "lines at|lines/s" | tee "$OUT/search-workers.txt"
}
part profile && {
  # Issue 22: where a training step's time goes (torch.profiler; the GPU's idle share).
  date -u
  # 150 steps before recording: with cudnn.benchmark each new batch width (a multiple of 64 px)
  # is autotuned once. After 20 steps (the 2026-12-04 lease) the trace showed 24 host waits a
  # step and ~10 ms of host time per convolution backward, perhaps widths still new; recorded
  # later, the trace tells the steady state from the autotuning.
  PROFILE_ARGS=(--wait 150 --active 30) PROFILE_LIMIT_S=240
  [ "$SMOKE" = 1 ] && PROFILE_ARGS=(--wait 2 --active 3 --workers 2) PROFILE_LIMIT_S=240
  [ "$DEVICE" = cpu ] && PROFILE_ARGS+=(--device cpu)
  timeout "$PROFILE_LIMIT_S" $PY bench/profile_training.py --config "$CONFIG" --init "$INIT" --out "$OUT/profile" "${PROFILE_ARGS[@]}" \
    >"$OUT/profile.log" 2>&1; echo "profile exit $?"; tail -1 "$OUT/profile.log"
}
part tests && $PY -c "import pytest" 2>/dev/null && {
  # The CUDA-only tests (skipped on a machine without a GPU, as CI is).
  date -u
  # Only the files holding gpu tests: collecting the others imports what the GPU image lacks (gradio).
  # -o addopts="": the image has no pytest-xdist, which the project's addopts (-n auto) need.
  timeout 120 $PY -m pytest -q -o addopts="" -m gpu $(grep -rl --include='test_*.py' "mark.gpu" tests) \
    -p no:cacheprovider 2>&1 | tail -8
}
} 2>&1 | tee "$OUT/post.txt"
rm -rf "$OUT/profile/run"  # the profiled run's checkpoints: not needed back
ls -la "$OUT"
