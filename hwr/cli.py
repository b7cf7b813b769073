"""The `hwr` command line: train, eval, transcribe, synth.

Each subcommand builds its settings from a config dataclass (see `hwr.config_args`) and
calls a plain Python function, so everything the CLI does is also a library call.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .config_args import add_dataclass_arguments, build_config

TRAIN_HELP = {
    "train": "training data: a folder of image + .gt.txt pairs, an IAM root, a .tsv manifest, PAGE XML, "
             "or synth:train:N for N synthetic lines rendered on the fly",
    "val": "validation data (same forms as --train); model selection uses its CER",
    "out": "output folder: best/ (best validation CER), last/ (resumable state), history.jsonl",
    "arch": "network: crnn (CNN + BLSTM) or mdlstm",
    "preset": "architecture preset: crnn small|puigcerver2017|tiny, mdlstm graves2009|voigtlaender2016",
    "resume": "continue <out>/last with its optimizer and LR schedule",
    "init_from": "model folder whose weights initialise the network (fine-tuning)",
    "max_minutes": "stop after this many minutes (validating and saving first)",
    "skip_bad": "skip unreadable images and malformed ground truth, report them, and go on",
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON or YAML file of settings; flags override it")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    from .evaluate import EvalConfig
    from .train import TrainConfig
    from .transcribe import TranscribeConfig

    parser = argparse.ArgumentParser(
        prog="hwr", description="Handwriting text recognition: read, train on and score handwritten lines.")
    parser.add_argument("--version", action="version", version=f"hwr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="read line images and print their text",
                       description="Transcribe line images (files or folders) with a model (default: the shipped one).")
    p.add_argument("inputs", nargs="+", help="line image files or folders (searched recursively)")
    add_dataclass_arguments(p, TranscribeConfig)
    _common(p)

    p = sub.add_parser("train", help="train a model", description="Train a line recognizer with CTC.")
    add_dataclass_arguments(p, TrainConfig, help_texts=TRAIN_HELP)
    _common(p)

    p = sub.add_parser("eval", help="score a model on a labelled data set (CER/WER)",
                       description="Score a model on a labelled data set: corpus CER and WER, per-line results.")
    p.add_argument("dataset", help="IAM root, pairs folder, .tsv manifest, PAGE XML, or synth:val:N")
    add_dataclass_arguments(p, EvalConfig)
    _common(p)

    p = sub.add_parser("synth", help="write a synthetic handwriting data set",
                       description="Render synthetic handwritten lines to disk (IAM layout or image + .gt.txt pairs).")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=1000, help="number of lines (or pages with --pages)")
    p.add_argument("--format", choices=["iam", "pairs"], default="pairs")
    p.add_argument("--pages", action="store_true", help="render whole pages with line geometry")
    p.add_argument("--split", choices=["train", "val"], default="train", help="font/text/digit split to draw from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    return parser


def cmd_transcribe(args) -> int:
    from .model import Recognizer
    from .transcribe import TranscribeConfig, expand_inputs, transcribe_lines, write_text_outputs
    from .model import atomic_write_bytes

    cfg = build_config(TranscribeConfig, args, args.config)
    recognizer = Recognizer.load(cfg.model, device=cfg.device, decoder=cfg.decoder)
    paths = expand_inputs(args.inputs)
    if not paths:
        print("hwr transcribe: no input images found", file=sys.stderr)
        return 2
    result = transcribe_lines(recognizer, paths, cfg.batch_size)
    for line in result.lines:
        print(f"{line.source}\t{line.text}" if len(paths) > 1 else line.text)
    if cfg.json:
        atomic_write_bytes(Path(cfg.json), result.to_json().encode("utf-8"))
    if cfg.output_dir:
        write_text_outputs(result, Path(cfg.output_dir))
    if result.failures:
        print(f"hwr transcribe: {len(result.failures)} of {len(paths)} inputs failed", file=sys.stderr)
        return 1
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, train

    cfg = build_config(TrainConfig, args, args.config)
    state = train(cfg)
    print(f"best validation CER {state.best_cer:.4f} at step {state.best_step}; model in {Path(cfg.out) / 'best'}")
    return 0


def cmd_eval(args) -> int:
    from .datasets import DatasetError, open_dataset
    from .evaluate import EvalConfig, evaluate, write_lines_csv, write_report_json
    from .model import Recognizer

    cfg = build_config(EvalConfig, args, args.config)
    recognizer = Recognizer.load(cfg.model, device=cfg.device, decoder=cfg.decoder)
    try:
        samples = open_dataset(args.dataset, skip_bad=cfg.skip_bad, split_file=cfg.split_file)
    except DatasetError as exc:
        print(f"hwr eval: {exc}", file=sys.stderr)
        return 2
    samples = [samples[i] for i in range(len(samples))]  # synthetic sets render here
    report = evaluate(recognizer, samples, cfg.batch_size, cfg.skip_bad)
    print(f"lines {report.lines}  CER {report.cer:.4f} ({report.char_errors}/{report.chars})  "
          f"WER {report.wer:.4f} ({report.word_errors}/{report.words})")
    if cfg.worst:
        print(f"worst {min(cfg.worst, len(report.results))} lines:")
        for r in report.worst(cfg.worst):
            print(f"  {r.id}  CER {r.cer:.3f}\n    ref: {r.reference}\n    hyp: {r.hypothesis}")
    if cfg.csv:
        write_lines_csv(report, Path(cfg.csv))
    if cfg.json:
        write_report_json(report, Path(cfg.json), str(recognizer.path), args.dataset)
    if report.failures:
        print(f"hwr eval: skipped {len(report.failures)} unreadable lines, e.g. {report.failures[0]}", file=sys.stderr)
    return 0


def cmd_synth(args) -> int:
    from .synth.export import export_dataset

    export_dataset(args.out, args.n, fmt=args.format, pages=args.pages, seed=args.seed, split=args.split)
    return 0


COMMANDS = {"transcribe": cmd_transcribe, "train": cmd_train, "eval": cmd_eval, "synth": cmd_synth}


def main(argv: list[str] | None = None) -> int:
    from .datasets import DatasetError
    from .imaging import ImageError
    from .model import ModelError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (ModelError, DatasetError, ImageError, FileNotFoundError, ValueError) as exc:
        print(f"hwr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
