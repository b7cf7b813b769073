"""`hwr eval`'s line loaders: threads against torch-free worker processes, in lines/s.

    python bench/bench_eval_loaders.py [--lines 512] [--configs inline,threads=1,threads=2,processes=1,processes=2]
                                       [--repeats 3] [--model models/hwr-en-base] [--device auto]

Writes `--lines` lines of the harder validation set (`synth:hard`) as PNG files (a manifest of
them is what `hwr eval` reads from an IAM tree or a folder of pairs), then reads them two ways
for each loader configuration:
  loading  the loaders alone: each line decoded and normalised, nothing recognised (how many
           lines/s the loaders could feed a network that took no time, as a GPU nearly does);
  eval     `hwr.scoring.evaluate` end to end with greedy decoding (the network on this host).
Configurations: `inline` (each batch read in the evaluating thread), `threads=N` (N loader
threads; the default is 1), `processes=N` (`--workers N --processes`). Each runs `--repeats`
times, interleaved (a shared machine drifts); the median is reported.

torch is imported inside main(), never at module level: `spawn` re-imports this script in
every worker process, and the workers must stay torch-free.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_lines(folder: Path, count: int) -> list:
    """`count` lines of synth:hard as PNG files; LineSamples naming them."""
    import cv2

    from hwr.datasets.synthetic import hard_validation_lines
    from hwr.records import LineSample

    lines = hard_validation_lines(count)
    samples = []
    for i in range(count):
        sample = lines[i]
        path = folder / f"line{i:05d}.png"
        cv2.imwrite(str(path), sample.image)
        samples.append(LineSample(sample.id, sample.text, str(path)))
    return samples


def parse_config(text: str) -> tuple[int, bool]:
    """'inline' -> (0, False); 'threads=N' -> (N, False); 'processes=N' -> (N, True)."""
    if text == "inline":
        return 0, False
    kind, _, count = text.partition("=")
    if kind not in ("threads", "processes") or not count.isdigit() or int(count) < 1:
        raise ValueError(f"a configuration is inline, threads=N or processes=N (N >= 1), not {text!r}")
    return int(count), kind == "processes"


def loading_seconds(samples: list, batch_size: int, normalize, workers: int, processes: bool) -> float:
    """Seconds to decode and normalise every line with this loader, nothing recognised."""
    from hwr.documents.pages import prefetch_map
    from hwr.recognition.imaging import normalize_line_with_geometry
    from hwr.scoring.line_workers import prepared_in_workers, sample_batches

    def read(batch):
        return [normalize_line_with_geometry(sample.image, normalize) for sample in batch.samples]

    start = time.perf_counter()
    if processes:
        for _ in prepared_in_workers(samples, batch_size, normalize, workers):
            pass
    else:
        for _ in prefetch_map(read, sample_batches(samples, batch_size), workers=workers):
            pass
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=512)
    parser.add_argument("--configs", default="inline,threads=1,threads=2,processes=1,processes=2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="models/hwr-en-base")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--loading-only", action="store_true", help="leave out the end-to-end eval")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    configs = {name: parse_config(name) for name in args.configs.split(",")}

    import os

    import torch

    from hwr.recognition.model import Recognizer
    from hwr.scoring.evaluate import evaluate

    torch.set_num_threads(args.torch_threads)
    recognizer = Recognizer.load(args.model, device=None if args.device == "auto" else args.device,
                                 decoder="greedy")
    results: dict = {"lines": args.lines, "batch_size": args.batch_size, "model": args.model,
                     "device": str(recognizer.device), "cpus": os.cpu_count(), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="hwr-bench-eval-") as tmp:
        samples = write_lines(Path(tmp), args.lines)
        print(f"{args.lines} lines of synth:hard as PNG; model {args.model} on {recognizer.device}; "
              f"cpus {os.cpu_count()}, torch threads {args.torch_threads}")
        times: dict = {name: {"loading": [], "eval": []} for name in configs}
        reference = None
        for _ in range(args.repeats):
            for name, (workers, processes) in configs.items():
                times[name]["loading"].append(
                    loading_seconds(samples, args.batch_size, recognizer.normalize_config, workers, processes))
                if args.loading_only:
                    continue
                start = time.perf_counter()
                report = evaluate(recognizer, samples, args.batch_size, workers=workers, processes=processes)
                times[name]["eval"].append(time.perf_counter() - start)
                texts = [r.hypothesis for r in report.results]
                reference = reference or texts
                same = sum(a == b for a, b in zip(texts, reference))
                results["configs"].setdefault(name, {})["same_texts_as_first"] = same
        print(f"{'config':14} {'loading lines/s':>16} {'eval lines/s':>13}  same texts")
        for name, runs in times.items():
            row = results["configs"].setdefault(name, {})
            row["loading_lines_per_s"] = round(args.lines / statistics.median(runs["loading"]), 1)
            if runs["eval"]:
                row["eval_lines_per_s"] = round(args.lines / statistics.median(runs["eval"]), 1)
            print(f"{name:14} {row['loading_lines_per_s']:16.1f} {row.get('eval_lines_per_s', float('nan')):13.1f}"
                  f"  {row.get('same_texts_as_first', '-')}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
