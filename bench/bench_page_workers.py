"""Page transcription with torch-free page worker processes vs threads: pages/s, lines/s, stages
(and on a GPU its busy share, bench/gpu_busy.py).

    python bench/bench_page_workers.py [--pages 16] [--lines 15] [--configs threads=2,processes=0,...]
                                       [--repeats 3] [--model DIR] [--device auto] [--torch-threads N]

Renders `--pages` synthetic pages of `--lines` lines (validation fonts, as bench_pages.py),
writes them as PNG, then runs `hwr.documents.pipeline.run_batch` from PNG to PAGE XML with
page workers as
  threads=N    N threads of the model's process (the default, N=2)
  processes=N  N torch-free worker processes handing lines back through shared memory
               (N=0: all page work in the model's process, no pool)
Each configuration runs `--repeats` times, interleaved (a shared machine drifts), and the
median run is reported with its CPU seconds per page (this process and the workers: what
a page costs whatever else runs on the machine) and the stage split: how long the model's
process waited for prepared pages, ran the network (copy, forward, CTC decoding) and wrote
outputs, and the workers' CPU time for preparing. Page CER against the rendered truth
(trained model only).

torch is imported inside main(), never at module level: `spawn` re-imports this script in
every worker process, and the workers must stay torch-free.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_busy import GpuBusy  # noqa: E402  (bench/ is on the path: the script's folder)


def render_pages(folder: Path, pages: int, lines: int, seed: int) -> dict:
    import cv2

    from hwr.documents.page_eval import truth_from_page
    from hwr.synth import LineSynthesizer

    folder.mkdir(parents=True, exist_ok=True)
    synth = LineSynthesizer(split="val", seed=seed)
    truths = {}
    for i in range(pages):
        rendered = synth.sample_page(i, n_lines=lines)
        page_id = f"page{i:03d}"
        cv2.imwrite(str(folder / f"{page_id}.png"), rendered.image)
        rendered.page.id = page_id
        truths[page_id] = truth_from_page(rendered.page)
    return truths


def run_once(name: str, recognizer, folder: Path, out: Path, truths: dict, batch_size: int, batch_lines: int) -> dict:
    from hwr.documents.page_eval import score_page, summarize
    from hwr.documents.pipeline import BatchConfig, StageTimes, run_batch

    texts, scores = {}, []

    def collect(page, is_line):
        texts[page.id] = page.text
        scores.append(score_page(truths[page.id], page))

    kind, workers = name.split("=")
    config = BatchConfig(mode="page", formats=["pagexml"], output_dir=str(out), batch_size=batch_size,
                         batch_lines=batch_lines, progress=False, workers=int(workers), processes=kind == "processes")
    stages = StageTimes()
    cpu_before = cpu_seconds()
    with GpuBusy(recognizer.device) as busy:
        summary = run_batch(recognizer, [folder], config, on_page=collect, stages=stages)
    cpu = cpu_seconds() - cpu_before
    if summary.failures:
        raise SystemExit(f"{name}: {len(summary.failures)} pages failed: {summary.failures[0]}")
    return {"config": name, "seconds": summary.seconds, "pages": summary.pages, "lines": summary.lines,
            "pages_per_s": summary.pages / summary.seconds, "lines_per_s": summary.lines / summary.seconds,
            "cpu_per_page": cpu / summary.pages, "cer": summarize(scores).cer, "texts": texts,
            "stages": vars(stages), **busy.summary(), "gpu_busy": busy.describe()}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (the worker
    processes, reaped when a run's pool shuts down): the work a run costs, whatever the load."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--lines", type=int, default=15, help="lines per page")
    parser.add_argument("--configs", default="threads=2,processes=0,processes=1,processes=2",
                        help="page worker configurations to time, comma-separated: threads=N or processes=N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="model directory (default: the shipped model, else an untrained stand-in)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--torch-threads", type=int, help="torch CPU threads in the model's process")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-lines", type=int, default=64, help="lines pooled across pages per flush")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the runs here")
    args = parser.parse_args()
    configs = args.configs.split(",")
    for config in configs:
        kind, _, count = config.partition("=")
        if kind not in ("threads", "processes") or not count.isdigit():
            parser.error(f"--configs: {config!r} is not threads=N or processes=N")

    import torch
    from bench_pages import build_recognizer

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    work = Path(tempfile.mkdtemp(prefix="hwr-bench-workers-"))
    truths = render_pages(work / "pages", args.pages, args.lines, args.seed)
    recognizer, trained = build_recognizer(args.model, args.device)
    print(f"{args.pages} pages x {args.lines} lines; model {recognizer.path.name} "
          f"({'trained' if trained else 'untrained stand-in'}) on {recognizer.device}; cpus {os.cpu_count()}, "
          f"torch threads {torch.get_num_threads()}; load average before {load_average()}")
    # Warm up: first-call allocations and kernel plans, outside the timings.
    run_once(configs[-1], recognizer, work / "pages", work / "warm", truths, args.batch_size, args.batch_lines)
    runs: dict[str, list[dict]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        for config in configs:
            result = run_once(config, recognizer, work / "pages", work / f"out-{repeat}-{config}", truths,
                              args.batch_size, args.batch_lines)
            result["load_average"] = load_average()
            runs[config].append(result)
            print(f"  run {repeat + 1} {config:12s} {result['pages_per_s']:.3f} pages/s  "
                  f"(load {result['load_average']}) {result['gpu_busy']}".rstrip(), flush=True)
    reference = runs[configs[0]][0]["texts"]
    print(f"\n{'config':12s} {'pages/s':>8s} {'lines/s':>8s}  range pages/s  CPU s/page  same texts as {configs[0]}"
          + ("   page CER" if trained else ""))
    for config in configs:
        ordered = sorted(runs[config], key=lambda r: r["pages_per_s"])
        median = ordered[len(ordered) // 2]
        same = sum(median["texts"][k] == reference[k] for k in reference)
        line = (f"{config:12s} {median['pages_per_s']:8.3f} {median['lines_per_s']:8.1f}  "
                f"{ordered[0]['pages_per_s']:.3f}-{ordered[-1]['pages_per_s']:.3f}  "
                f"{statistics.median(r['cpu_per_page'] for r in ordered):10.3f}  {same}/{len(reference)} pages")
        if trained:
            line += f"   {median['cer']:.4f}"
        print(line)
        s = median["stages"]
        print(f"{'':12s} stages: wait for pages {s['wait']:.1f} s, network {s['network']:.1f} s, "
              f"write {s['write']:.1f} s of {s['wall']:.1f} s; prepare CPU {s['prepare_cpu']:.1f} s "
              f"({s['prepare_cpu'] / median['pages']:.3f} s/page)")
        if median["gpu_busy"]:
            print(f"{'':12s} {median['gpu_busy']}")
    if args.json:
        for results in runs.values():
            for r in results:
                r.pop("texts")
        Path(args.json).write_text(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "runs": runs}, indent=1))
    print(f"files    {work}")


if __name__ == "__main__":
    main()
