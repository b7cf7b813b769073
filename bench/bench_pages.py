"""Page transcription: speed end to end, line detection precision/recall, and page CER.

    python bench/bench_pages.py [--pages 30] [--lines 15] [--model DIR] [--workers 2] [--device auto]
                                [--decoder greedy]

Renders `--pages` synthetic pages of `--lines` lines in validation fonts (x-heights 18-36 px,
i.e. handwriting scanned at about 200-300 dpi), writes them as PNG, then times:
  segment   hwr.documents.segment alone, per page (this process, one thread for OpenCV)
  batch     `run_batch` from PNG files to PAGE XML outputs: loading and segmentation in
            `--workers` threads, recognition in width-sorted batches (GPU when present)
and scores the batch's pages against the rendered ground truth: line detection P/R at
IoU >= 0.5 and page CER/WER. Without a trained model (--model, or the shipped
models/hwr-en-small) an untrained CRNN "small" stands in: the timings hold, the CER is
meaningless and is not printed. Targets: < 2 s per 15-line page on 2 CPU cores; >= 20
pages/s on a GPU.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import torch


def build_recognizer(model: str | None, device: str, decoder: str = "greedy"):
    from hwr.recognition.charset import Charset
    from hwr.recognition.model import ModelConfig, Recognizer, default_model_dir, save_model
    from hwr.recognition.nets import build_network, make_config

    path = Path(model) if model else default_model_dir()
    if (path / "config.json").exists():
        return Recognizer.load(path, device=device, decoder=decoder), True
    cfg = make_config("crnn", "small")
    net = build_network("crnn", cfg, len(Charset()))
    config = ModelConfig(arch="crnn", net=cfg.to_dict(), charset=Charset().to_json(),
                         normalize={"line_height": cfg.line_height})
    stand_in = save_model(Path(tempfile.mkdtemp()) / "untrained", net.eval(), config)
    return Recognizer.load(stand_in, device=device, decoder=decoder), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--lines", type=int, default=15, help="lines per page")
    parser.add_argument("--model", help="model directory (default: the shipped model, else an untrained stand-in)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--processes", action="store_true", help="workers as processes (many-core hosts)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--decoder", default="greedy",
                        help="greedy (the network's pace) or auto (how `hwr transcribe` reads by default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep pages and outputs here (default: a temporary folder)")
    args = parser.parse_args()

    from hwr.documents.page_eval import score_page, summarize, truth_from_page
    from hwr.documents.pipeline import BatchConfig, run_batch
    from hwr.documents.segment import segment_page
    from hwr.synth import LineSynthesizer

    out = Path(args.out or tempfile.mkdtemp(prefix="hwr-bench-pages-"))
    (out / "pages").mkdir(parents=True, exist_ok=True)
    synth = LineSynthesizer(split="val", seed=args.seed)
    truths = {}
    for i in range(args.pages):
        rendered = synth.sample_page(i, n_lines=args.lines)
        page_id = f"page{i:03d}"
        cv2.imwrite(str(out / "pages" / f"{page_id}.png"), rendered.image)
        rendered.page.id = page_id
        truths[page_id] = (truth_from_page(rendered.page), rendered.image)
    sizes = [img.shape for _, img in truths.values()]
    print(f"{args.pages} pages of {args.lines} lines, {sum(h * w for h, w in sizes) / len(sizes) / 1e6:.1f} Mpx "
          f"on average; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")

    started = time.perf_counter()
    for _, image in truths.values():
        segment_page(image)
    seg = (time.perf_counter() - started) / args.pages
    print(f"segment  {seg:.3f} s/page")

    recognizer, trained = build_recognizer(args.model, args.device, args.decoder)
    print(f"model    {recognizer.path} ({'trained' if trained else 'untrained stand-in'}) on {recognizer.device}")
    # Warm up (first-call allocations, cuDNN autotuning) on one page, then time the batch.
    run_batch(recognizer, [out / "pages" / "page000.png"], BatchConfig(mode="page", progress=False))
    results = []

    def collect(page, is_line):
        results.append(score_page(truths[page.id][0], page))

    batch = BatchConfig(mode="page", formats=["pagexml"], output_dir=str(out / "outputs"), workers=args.workers,
                        processes=args.processes, batch_size=args.batch_size, progress=False)
    summary = run_batch(recognizer, [out / "pages"], batch, on_page=collect)
    print(f"batch    {summary.seconds / max(1, summary.pages):.3f} s/page end to end "
          f"({summary.pages / summary.seconds:.2f} pages/s, {summary.lines / summary.seconds:.1f} lines/s)")
    report = summarize(results)
    print(f"detect   precision {report.detection_precision:.3f}  recall {report.detection_recall:.3f} "
          f"(IoU >= 0.5, {sum(r.gt_lines for r in results)} ground-truth lines)")
    if trained:
        print(f"text     page CER {report.cer:.4f}  WER {report.wer:.4f}")
    print(f"files    {out}")


if __name__ == "__main__":
    main()
