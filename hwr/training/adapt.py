"""`hwr adapt`: fine-tune a model on a user's own labelled lines, with honest before/after CER.

The loop archivists run with kraken/eScriptorium or Transkribus: transcribe a page or two of
one collection, train on it, read the rest with the adapted model. Here:

- the lines are split into adapt/held-out (whole pages when known; `adapt_data.split_lines`);
- training is `hwr.training.train.train` started from the base model's weights, on the
  user's lines with writer-like augmentation mixed with synthetic rehearsal lines, with an
  LR and step budget chosen from the data size and early stopping on the held-out CER;
- the held-out CER is measured through `Recognizer` before and after, and the adapted
  weights are kept only when they read the held-out lines better: never a worse model;
- the output is a complete model directory (weights, config.json, MODEL_CARD.md,
  adapt-history.jsonl) that `--model DIR`, `Recognizer.load(DIR)` and the UI accept.

Not tested here: recognition gains (bench/bench_adapt.py measures them).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from hwr.datasets import SkipReport, open_dataset
from hwr.errors import ConfigError
from hwr.fileio import (
    atomic_write_text,
    process_runs,
    written_whole,
)
from hwr.recognition.decode import make_decoder
from hwr.recognition.imaging import NormalizeConfig, pixels_digest
from hwr.recognition.model import (
    ADAPT_HISTORY_FILE,
    BESIDE_DIR,
    CONFIG_FILE,
    MODEL_CARD_FILE,
    WEIGHTS_FILE,
    ModelConfig,
    ModelError,
    Recognizer,
    beside_dir,
    checked_model_out,
    load_model,
    read_model_config,
    resolve_model_dir,
    save_model,
    unknown_model,
)
from hwr.records import LineSample
from hwr.scoring.metrics import ErrorCounts
from hwr.training.adapt_data import (
    READING_OF,
    SOURCE_DIGEST,
    AdaptLines,
    Split,
    check_charset,
    check_lengths,
    check_texts,
    cut_words,
    lines_fingerprint,
    loaded,
    pseudo_labelled,
    split_lines,
    unlabeled_lines,
    without_repeats,
)
from hwr.training.settings import FEW_LINES, LR_FEW_LINES, LR_MORE_LINES, MORE_LINES, AdaptConfig

log = logging.getLogger("hwr.training.adapt")

RUN_DIR = ".adapt-run"  # the training run's folder inside the output, removed at the end
RUN_OWNER = ".adapt-run.pid"  # the process writing the output folder now
# In the run folder: the held-out curve of the self-training rounds before the one training now,
# steps counted from the run's start (the round's own history.jsonl counts from its own), and
# last {"steps": N}, the steps those rounds took.
EARLIER_ROUNDS_FILE = "earlier-rounds.jsonl"
# Shares of the adapted weights' change kept when blending back towards the base model
# (weight-space interpolation, as in WiSE-FT: Wortsman et al., CVPR 2022): the first share
# that keeps the other hands within --max-forgetting and reads the held-out lines best wins.
MIXES = (1.0, 0.75, 0.5, 0.25)
CHECK_SEED = 7919  # the other-hands lines: never the rehearsal lines trained on (seed-offset)
TRAIN_SPEC, HELD_OUT_SPEC = "adapt:lines", "adapt:held-out"  # names of the in-memory data sets


# Training gets at least this long, whatever --minutes leaves after the fixed work around it.
MIN_TRAIN_MINUTES = 0.1
@dataclass
class Budget:
    """Steps, learning rate and evaluation rhythm for a number of adaptation lines."""

    max_steps: int
    lr: float
    val_every: int
    warmup_steps: int
    freeze_conv: bool


def lr_for(lines: int) -> float:
    """The whole network's peak LR for `lines` lines adapted on (LR_FEW_LINES ... LR_MORE_LINES)."""
    share = (math.log(max(lines, 1)) - math.log(FEW_LINES)) / (math.log(MORE_LINES) - math.log(FEW_LINES))
    return LR_FEW_LINES * (LR_MORE_LINES / LR_FEW_LINES) ** min(1.0, max(0.0, share))


def budget_for(lines: int, cfg: AdaptConfig) -> Budget:
    """Few lines: more passes over each (each pass is a new distortion or recombination of
    it); more lines: fewer passes. The minutes cap the run whatever the budget says (on a
    2-core CPU 5 minutes give about 450 steps; the LR decays over whichever ends first)."""
    real_per_step = max(1.0, cfg.batch_size * (1.0 - cfg.rehearsal))
    passes = min(250.0, max(60.0, 10000.0 / lines))
    steps = cfg.max_steps or int(min(3000, max(100, math.ceil(lines * passes / real_per_step))))
    freeze = bool(cfg.freeze_conv)
    # The recurrent layers alone take a larger rate than the whole network, whose features every
    # other hand also relies on (1e-3 whatever the data size: not measured against it).
    lr = cfg.lr or (1e-3 if freeze else lr_for(lines))
    val_every = cfg.val_every or max(10, min(50, steps // 15))
    return Budget(steps, lr, val_every, warmup_steps=min(30, max(1, steps // 10)), freeze_conv=freeze)


@dataclass
class AdaptResult:
    out: Path
    base: str
    before_cer: float
    after_cer: float  # the adapted weights' held-out CER (also when they were not kept)
    improved: bool  # True: the output holds the adapted weights; False: the base model's
    adapt_lines: int
    held_out_lines: int
    split_by: str
    steps: int
    minutes: float
    history: list[dict]
    freeze_conv: bool = False
    mix: float = 1.0  # share of the adapted weights' change kept (MIXES)
    others_before: float | None = None  # CER of the other-hands check lines, base model
    others_after: float | None = None  # the same with the kept weights
    # The held-out CER before and after as the commands read by default (--decoder auto: the
    # LM search for a model of printable ASCII): what the user will see, and what the run kept
    # or refused the weights by (reads_better). None when the default reading is greedy.
    read_before: float | None = None
    read_after: float | None = None
    pseudo_lines: int = 0  # uncorrected lines learnt from with the base model's reading
    beside: bool = False  # read beside the base model (AdaptConfig.beside; the figures above are that reading)

    @property
    def shipped_cer(self) -> float:
        return self.after_cer if self.improved else self.before_cer

    @property
    def deciding_cers(self) -> tuple[float, float]:
        """(before, after) held-out CER as read by the reading that kept or refused the weights."""
        return deciding_cers(self.before_cer, self.after_cer, self.read_before, self.read_after)


def deciding_cers(before: float, after: float, read_before: float | None, read_after: float | None
                  ) -> tuple[float, float]:
    """The default reading's (before, after) when there is one (the LM search), else greedy's."""
    return (before, after) if read_before is None or read_after is None else (read_before, read_after)


def resolve_model(name_or_dir: str | None) -> Path:
    """A model folder from a path or a model name under models/ (default: the shipped one)."""
    path = resolve_model_dir(name_or_dir)
    if not name_or_dir or (path / CONFIG_FILE).is_file():
        return path
    raise unknown_model(name_or_dir)


def open_lines(specs: list[str], skip_bad: bool, confined_to: Path | None = None,
               report: SkipReport | None = None) -> list[LineSample]:
    """Every line of every data set named (pairs, IAM, manifest, PAGE XML), pixels loaded.
    `confined_to`: every file they use must lie in this folder (datasets.open_dataset). With
    skip_bad, the entries and images left out are logged, and added to `report` when given."""
    report = report if report is not None else SkipReport()

    if not specs:
        raise ConfigError("no data given: name folders or files of labelled lines")
    sets = []
    for spec in specs:
        if str(spec).startswith("synth:"):
            raise ConfigError(f"{spec}: adapt learns from your own labelled lines, not synthetic ones")
        before = report.count
        sets.append(open_dataset(spec, skip_bad=skip_bad, report=report, confined_to=confined_to))
        report.log(before)
    samples = [s for lines in sets for s in lines]
    if len({s.id for s in samples}) != len(samples):
        # Two data sets may both hold "page1/l001": keep them apart (and their pages too).
        samples = [LineSample(f"{k}:{s.id}", s.text, s.image, {**s.meta, **_prefixed_group(k, s)})
                   for k, lines in enumerate(sets) for s in lines]
    return without_repeats(loaded(samples, skip_bad, report))


def _first_problem(report: SkipReport) -> str:
    """The first entry left out for a fault of the data, named by its file's name (the Teach
    tab shows it; an upload's server path is none of the user's business)."""
    if not report.problems:
        return ""
    entry = report.problems[0]
    where = Path(entry.source).name + (f":{entry.line_no}" if entry.line_no is not None else "")
    return f"{where}: {entry.reason}"


def _too_few_lines(needed: int, skipped: SkipReport, read: list, with_text: list, writable: list,
                   usable: list) -> str:
    """"adaptation needs at least 6 labelled lines, got 2: left out ..." with each check's count."""
    left_out = [(len(skipped.problems), "unusable entries", _first_problem(skipped)),
                (skipped.untranscribed, "not transcribed yet", ""),
                (len(read) - len(with_text), "with an empty transcription", ""),
                (len(with_text) - len(writable), "with characters the base model cannot write", ""),
                (len(writable) - len(usable), "with more characters than their image has room for", "")]
    reasons = "; ".join(f"{n} {why}" + (f" (first: {first})" if first else "") for n, why, first in left_out if n)
    return (f"adaptation needs at least {needed} labelled lines, got {len(usable)}"
            + (f": left out {reasons}" if reasons else ""))


def _prefixed_group(k: int, sample: LineSample) -> dict:
    return {name: f"{k}:{sample.meta[name]}" for name in ("page", "form") if sample.meta.get(name)}


def held_out_counts(recognizer: Recognizer, samples: list[LineSample], batch_size: int = 16) -> ErrorCounts:
    """Greedy CER of the lines through the recognizer's own preprocessing and decoding."""
    counts = ErrorCounts()
    for sample, rec in zip(samples, recognizer.recognize([s.image for s in samples], batch_size)):
        counts.add(sample.text, rec.text)
    return counts


def freeze_conv_layers(net: torch.nn.Module) -> int:
    """Stop training the convolutional feature extractor (and its normalisation); returns the
    number of tensors frozen. The recurrent layers learn the hand's letter sequences from the
    generic stroke features trained on many hands, and a step costs a third as much on a CPU
    (no backward pass through the convolutions)."""
    frozen = 0
    for module in net.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d)):
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += 1
    # Frozen means the same features as at inference: running statistics, not the batch's.
    freeze_norm_stats(net)
    if not frozen:
        log.warning("--freeze-conv: this network has no convolutional layers; everything trains")
    return frozen


def freeze_norm_stats(net: torch.nn.Module) -> int:
    """Normalise with the base model's running statistics while training (their affine
    weights still learn); returns the number of normalisation layers held."""
    held = 0
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            # A hook, not eval(): the training loop puts the whole network back in train mode
            # after each validation.
            module.register_forward_pre_hook(_use_running_stats)
            held += 1
    return held


def _use_running_stats(module: torch.nn.Module, inputs) -> None:
    module.training = False


def adapt(data: list[str], cfg: AdaptConfig, on_progress=None, confined_to: Path | None = None,
          finish_early: threading.Event | None = None) -> AdaptResult:
    """Fine-tune cfg.model on the labelled lines of `data` (data set specs); write cfg.out.

    on_progress(dict) is called with {"phase", ...} updates (the UI draws them); training
    progress is also in <out>/.adapt-run/history.jsonl while it runs. `confined_to`: every file
    the data sets use must lie in this folder (the web app's upload: a PAGE XML in it naming
    an image elsewhere on the server raises OutsideFolder). `finish_early` set (the web app's
    "Finish now") ends training at the next step, as the minutes running out do, and skips the
    self-training rounds still to come: the weights so far are checked and written as usual.
    """
    start = time.monotonic()
    base_dir = resolve_model(cfg.model)
    base_config = read_model_config(base_dir)
    out = _check_out(cfg.out, base_dir, cfg.overwrite)
    # Claimed until the model is swapped in (which removes the claim with the old folder) or
    # the run fails: a second hwr adapt into the same --out had taken the folder over and
    # deleted this run's scratch folder in the middle of its training.
    _claim(out)
    try:
        return _adapt(data, cfg, on_progress, start, base_dir, base_config, out, confined_to, finish_early)
    except BaseException:
        _unclaim(out)
        raise


def _claim(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_OWNER, str(os.getpid()))


def _unclaim(out: Path) -> None:
    (out / RUN_OWNER).unlink(missing_ok=True)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _adapt(data: list[str], cfg: AdaptConfig, on_progress, start: float, base_dir: Path, base_config: ModelConfig,
           out: Path, confined_to: Path | None = None, finish_early: threading.Event | None = None) -> AdaptResult:
    """adapt() once the output folder is checked and claimed."""
    notify = on_progress or (lambda update: None)

    from hwr.recognition.charset import Charset

    charset = Charset(base_config.charset)
    skipped = SkipReport()
    read = open_lines(data, cfg.skip_bad, confined_to, skipped)
    with_text = check_texts(read, cfg.skip_bad)
    base = Recognizer.load(base_dir, device=cfg.device)
    writable = check_charset(with_text, charset, cfg.skip_bad)
    lines = check_lengths(writable, base, cfg.skip_bad)
    # Said where the user watches (the Teach tab), not only in the log.
    unwritable = Counter(ch for s in with_text for ch in charset.missing_chars(charset.folded(s.text)))
    if len(lines) < cfg.min_held_out + 2:  # why, where the user watches: the reasons had gone to the log alone
        raise ConfigError(_too_few_lines(cfg.min_held_out + 2, skipped, read, with_text, writable, lines))
    split = split_lines(lines, cfg.held_out, cfg.min_held_out, cfg.seed)
    log.info("%d lines: %d to adapt on, %d held out (by %s)", len(lines), len(split.adapt), len(split.held_out),
             split.by)
    measured = time.monotonic()
    before = held_out_counts(base, split.held_out).cer
    reading_minutes = (time.monotonic() - measured) / 60
    log.info("held-out CER of %s: %.4f", base_dir.name, before)
    others = other_hands(charset, cfg.check_lines, cfg.seed)
    measured = time.monotonic()  # the reading alone: rendering the lines is not done again
    others_before = held_out_counts(base, others).cer if others else None
    checking_minutes = (time.monotonic() - measured) / 60
    if others:
        log.info("CER of %s on %d lines in other hands: %.4f", base_dir.name, len(others), others_before)
    # How the commands read by default (the LM search for the shipped models), built once: its
    # LM takes seconds to load. The uncorrected lines are read so (on five validation hands,
    # 23-49% fewer wrong characters in the half kept than greedy readings ranked by their least
    # sure letter), and the before/after figures the user will see are measured so.
    default_decoder = make_decoder("auto", charset)
    measured = time.monotonic()
    read_before = searched_cer(base, split.held_out, default_decoder)
    searching_minutes = (time.monotonic() - measured) / 60  # the adapted weights' reading, after training
    pseudo = read_unlabeled(with_decoder(base, default_decoder), cfg, lines)
    notify({"phase": "before", "before_cer": before, "adapt_lines": len(split.adapt),
            "held_out_lines": len(split.held_out), "split_by": split.by,
            "left_out": {"unwritable": len(with_text) - len(writable), "too_long": len(writable) - len(lines),
                         "empty": len(read) - len(with_text) + skipped.untranscribed,
                         "unreadable": len(skipped.problems)},
            "unwritable": "".join(ch for ch, _ in unwritable.most_common(10)),
            "unreadable": _first_problem(skipped)})

    run_dir = out / RUN_DIR
    shutil.rmtree(run_dir, ignore_errors=True)
    budget = budget_for(len(split.adapt), cfg)
    words = cut_words(base, split.adapt) if cfg.recombine > 0 else None
    # Leave time for what follows the last step: its validation reads the held-out lines, each
    # blend of choose_mix reads them and the other-hands lines once more, and the chosen weights
    # read the held-out lines with the default search (all timed on the base model just now, so
    # a busy machine reserves more); then the model is written. A tenth more: with --beside the
    # pair reads the lines the adapted network is unsure of twice (bench_adapt, 50 lines on a
    # 2-core VM: 0.40 minutes taken against 0.38 reserved, the run 5.08 minutes, before the search
    # was counted).
    reserve = 1.1 * ((1 + len(MIXES)) * (reading_minutes + checking_minutes) + searching_minutes) + 0.05
    left = cfg.minutes - (time.monotonic() - start) / 60 - reserve
    train_minutes = max(MIN_TRAIN_MINUTES, left)
    if left < MIN_TRAIN_MINUTES:
        log.warning("--minutes %g is less than reading and checking the lines takes here (%.1f minutes before "
                    "training, about %.1f after it): training %g minutes anyway, so the run takes about %.1f",
                    cfg.minutes, (time.monotonic() - start) / 60, reserve, MIN_TRAIN_MINUTES,
                    (time.monotonic() - start) / 60 + reserve + MIN_TRAIN_MINUTES)
    rounds = cfg.pseudo_rounds if pseudo else 1
    # The whole run's end, for the progress bar's minutes left: later than --minutes says when the
    # work around training alone takes longer (the warning above).
    ends_at = max(start + cfg.minutes * 60, time.monotonic() + (train_minutes + reserve) * 60)
    try:
        state = _train(base_dir, base_config, split, budget, train_minutes / rounds, run_dir, cfg, words, pseudo,
                       finish_early, _progress(1, rounds, train_minutes / rounds, ends_at))
        for round_number in range(2, rounds + 1):
            if finish_early is not None and finish_early.is_set():
                log.info("asked to finish now: the self-training rounds %d to %d are skipped", round_number, rounds)
                break
            state, pseudo = _train_round(round_number, state, base, base_config, split, budget, run_dir, cfg, words,
                                         lines, start + (cfg.minutes - reserve) * 60, rounds, default_decoder,
                                         finish_early, ends_at)
    except BaseException:
        _discard_run(run_dir, out)
        raise

    trained = time.monotonic()
    try:  # choosing, checking and writing the model: a failure here leaves nothing either
        adapted_net, adapted_config = load_model(run_dir / cfg.keep)
        # Unfolded: its weights are blended. With --beside every reading below is the pair's, the
        # base network read as a saved pair reads it (loaded and prepared already, read-only).
        adapted = Recognizer(adapted_net, adapted_config, base.device,
                             beside=original_network(base) if cfg.beside else None)
        adapted.path = run_dir / cfg.keep
        base_net, _ = load_model(base_dir)
        mix, after, others_after = choose_mix(base_net.state_dict(), adapted, split.held_out, others, others_before,
                                              cfg.max_forgetting, before)
        read_after = searched_cer(adapted, split.held_out, default_decoder)
        improved = reads_better(before, after, read_before, read_after)
        minutes = (time.monotonic() - start) / 60
        log.info("choosing and checking the weights took %.2f minutes (%.2f reserved)",
                 (time.monotonic() - trained) / 60, reserve)
        # Kept the base model's weights: none of the change is kept, whatever blend read best.
        result = AdaptResult(out, str(base_dir), before, after, improved, len(split.adapt), len(split.held_out),
                             split.by, state.step, minutes, state.history, budget.freeze_conv, mix if improved else 0.0,
                             others_before, others_after if improved else others_before, read_before, read_after,
                             len(pseudo), cfg.beside and improved)
        if improved:
            save_model(run_dir / cfg.keep, adapted.net, adapted_config)
        _write_model(out, base_dir, base_config, run_dir / cfg.keep if improved else base_dir, result, budget, cfg,
                     lines_fingerprint(lines + pseudo))
    except BaseException:
        _discard_run(run_dir, out)
        raise
    if not improved:
        shown_before, shown_after = result.deciding_cers
        log.warning("the adapted model reads the held-out lines no better (CER %.4f vs %.4f%s): %s keeps the base "
                    "model's weights", shown_after, shown_before,
                    "" if read_before is None else " with the default LM search", out)
    notify({"phase": "done", **_summary(result)})
    return result


def _train_round(number: int, state, base: Recognizer, base_config: ModelConfig, split: Split, budget: Budget,
                 run_dir: Path, cfg: AdaptConfig, words, lines: list[LineSample], deadline: float, rounds: int,
                 decoder, finish_early: threading.Event | None = None, ends_at: float | None = None):
    """Self-training round `number` (2, 3, ...): the --unlabeled lines read with `decoder` by
    the model the round before adapted, and training on from it for this round's share of the
    time left before `deadline` (time.monotonic()). Returns the round's state, its history and
    steps counted on from the rounds before, and the pseudo-labelled lines it learnt from."""
    earlier = run_dir / f"round-{number - 1}"  # kept apart: this round's run replaces best/ and last/
    shutil.rmtree(earlier, ignore_errors=True)
    shutil.copytree(run_dir / cfg.keep, earlier)
    net, config = load_model(earlier)
    reader = Recognizer(net, config, base.device, beside=original_network(base) if cfg.beside else None)
    reader.path = earlier
    reader.decoder = decoder
    pseudo = read_unlabeled(reader, cfg, lines)
    minutes = max(MIN_TRAIN_MINUTES, (deadline - time.monotonic()) / 60 / (rounds - number + 1))
    log.info("round %d of %d: %d unlabeled lines read by the round before's model, training %.1f minutes",
             number, rounds, len(pseudo), minutes)
    steps_before, history_before, best_before = state.step, state.history, (state.best_cer, state.best_step)
    # This round's run starts its history.jsonl afresh: the curve so far, for whoever draws it (the UI).
    # The round before's goes first: a run replaces an earlier one's curve only at its first
    # validation, and till then the UI drew those points twice, its step counter going back.
    (run_dir / "history.jsonl").unlink(missing_ok=True)
    atomic_write_text(run_dir / EARLIER_ROUNDS_FILE, _jsonl([*history_before, {"steps": steps_before}]))
    state = _train(earlier, base_config, split, budget, minutes, run_dir, cfg, words, pseudo, finish_early,
                   _progress(number, rounds, minutes, ends_at))
    state.history = history_before + [{**h, "step": h["step"] + steps_before, "round": number}
                                      for h in state.history]
    if state.best_step >= 0:
        state.best_step += steps_before
    state.step += steps_before
    if cfg.keep == "best" and not state.best_cer < best_before[0]:
        # The round's run counts its best from nothing: one that read the held-out lines no better
        # than the rounds before had replaced their best weights with its own.
        shutil.rmtree(run_dir / "best", ignore_errors=True)
        shutil.copytree(earlier, run_dir / "best")
        state.best_cer, state.best_step = best_before
    return state, pseudo


def read_unlabeled(base: Recognizer, cfg: AdaptConfig, labelled: list[LineSample]) -> list[LineSample]:
    """The --unlabeled lines the base model reads most surely, with its reading (empty without
    them). A line also given with its transcription is left out: it may be held out, and the
    held-out CER must not read a line the run learnt from. Copies of the same pixels are found
    so, and so are the pages the labelled lines were cut from (PAGE XML's page images); a line
    cut again from a page known otherwise differs: --help asks for other lines."""
    if not cfg.unlabeled or cfg.pseudo_keep == 0 or cfg.pseudo_share == 0:
        return []
    known = {s.meta.get(SOURCE_DIGEST, pixels_digest(s.image)) for s in labelled}
    pages = frozenset(Path(s.meta["page_image"]) for s in labelled if s.meta.get("page_image"))
    lines = unlabeled_lines(cfg.unlabeled, cfg.skip_bad, cfg.seed, labelled_pages=pages, mode=cfg.unlabeled_mode)
    copies = {k for k, s in enumerate(lines) if s.meta.get(SOURCE_DIGEST, pixels_digest(s.image)) in known}
    # An image read both ways that holds a labelled line (its whole reading is one, or one of its
    # cut lines) goes with all its readings: the other reading holds that line's pixels too.
    copied_images = {lines[k].meta[READING_OF] for k in copies if READING_OF in lines[k].meta}
    fresh = [s for k, s in enumerate(lines) if k not in copies and s.meta.get(READING_OF) not in copied_images]
    if len(fresh) < len(lines):
        log.info("%d of the unlabeled lines are copies of labelled ones (or other readings of an image that holds "
                 "one): left out of them", len(lines) - len(fresh))
    pseudo = pseudo_labelled(base, fresh, cfg.pseudo_keep)
    if not pseudo:
        raise ConfigError(f"no --unlabeled line is left to learn from: {len(lines)} read, {len(lines) - len(fresh)} "
                          "of them copies of labelled lines, the rest read as empty")
    both_ways = len({s.meta[READING_OF] for s in fresh if READING_OF in s.meta})
    log.info("%d unlabeled lines%s: learning from the %d read most surely", len(fresh),
             f" (with both readings of {both_ways} images, whole and cut; one of each is kept)" if both_ways else "",
             len(pseudo))
    return pseudo


def original_network(base: Recognizer):
    """The network a --beside run reads beside the adapted one: the base model's own or, when the
    base model is itself an adapted pair (adapted again with more lines), the pair's original
    model, so the pair stays the adapted network beside the model it started from."""
    return base.beside if base.beside is not None else base.net


def beside_folder(base_dir: Path, result: AdaptResult) -> Path | None:
    """The model folder to copy into the output's beside/, or None. Adapted with --beside: the
    model read beside the adapted one (original_network). Base weights kept (not improved) of a
    base that is a pair: its beside/ too, so the output reads exactly as the base model did."""
    pair = beside_dir(base_dir)
    if result.beside:
        return pair or base_dir
    return pair if not result.improved else None


def with_decoder(reader: Recognizer, decoder) -> Recognizer:
    """The same networks (shared, not copied), reading with `decoder`."""
    other = copy.copy(reader)
    other.decoder = decoder
    return other


def searched_cer(reader: Recognizer, held_out: list[LineSample], decoder) -> float | None:
    """Held-out CER read with `decoder`, the commands' default (hwr.recognition.decode.auto_decoder),
    or None when that reading is greedy (the figures the run already has). A few dozen lines: a
    second or two of search."""
    if decoder.name == "greedy":
        return None
    return held_out_counts(with_decoder(reader, decoder), held_out).cer


def reads_better(before: float, after: float, read_before: float | None, read_after: float | None) -> bool:
    """Whether the adapted weights are kept: they read the held-out lines better as the commands
    read by default (`read_*`, the LM search for the shipped models: what the user will see; a
    tie goes to the greedy figures), or greedily when that is the default (`read_*` None).
    Greedy figures alone could keep weights that the search reads worse: the LM mends some of a
    network's greedy errors, and not the same share of the base and the adapted network's."""
    if read_before is None:
        return after < before
    return (read_after, after) < (read_before, before)


def other_hands(charset, count: int, seed: int) -> list[LineSample]:
    """Synthetic lines in the training fonts (what the base model reads well, and other
    writers than the user), drawn apart from the rehearsal lines: the forgetting check."""
    if count <= 0:
        return []
    from hwr.datasets.synthetic import SyntheticLines

    lines = SyntheticLines(count, split="train", charset=charset, seed=CHECK_SEED + seed)
    return [lines[i] for i in range(count)]


def choose_mix(origin: dict, adapted: Recognizer, held_out: list[LineSample], others: list[LineSample],
               others_before: float | None, max_forgetting: float,
               before: float | None = None) -> tuple[float, float, float | None]:
    """Blend the adapted weights back towards the base model's: theta = base + mix * (adapted - base),
    for each mix in MIXES. Of the blends that keep the other hands' CER within
    `max_forgetting` (relative), the one reading the held-out lines best (`most_change_within_noise`;
    `before`: the base model's held-out CER, which a blend that beats it is not traded for);
    with no such blend, the one that forgets least. Leaves `adapted.net` holding the chosen
    weights; returns (mix, held-out CER, other-hands CER)."""
    start = {k: v.detach().clone() for k, v in adapted.net.state_dict().items()}
    tried = []
    for mix in MIXES if others else (1.0,):
        blend_weights(adapted.net, origin, start, mix)
        held = held_out_counts(adapted, held_out)
        forgot = held_out_counts(adapted, others).cer if others else None
        log.info("adapted weights x %.2f: held-out CER %.4f%s", mix, held.cer,
                 f", other hands {forgot:.4f} (base {others_before:.4f})" if others else "")
        tried.append((mix, held, forgot))
    within = [t for t in tried if t[2] is None or t[2] <= others_before * (1 + max_forgetting) + 1e-9]
    mix, held, forgot = most_change_within_noise(within, before) if within else min(tried, key=lambda t: t[2])
    blend_weights(adapted.net, origin, start, mix)
    return mix, held.cer, forgot


def most_change_within_noise(blends: list[tuple[float, ErrorCounts, float | None]], before: float | None = None):
    """Of (mix, held-out counts, other-hands CER) blends, the one keeping the most of the adapted
    change among those whose held-out errors are within one standard error (sqrt of the count,
    Poisson) of the fewest. The held-out lines are few (10 of 50 lines, ~30 errors): a smaller
    blend two characters ahead of all of the change is noise, and the hand's other lines were
    read better with all of it (bench_adapt, seed 3: half kept, 8.06% against 8.61% held-out).
    Never one that reads them no better than the base model (`before`) when another blend does:
    the run would then keep the base model's weights."""
    best = min(blends, key=lambda t: t[1].char_errors)
    fewest = best[1].char_errors
    close = [t for t in blends if t[1].char_errors <= fewest + math.sqrt(fewest)
             and (before is None or best[1].cer >= before or t[1].cer < before)]
    return max(close, key=lambda t: t[0])


def blend_weights(net: torch.nn.Module, origin: dict, adapted: dict, mix: float) -> None:
    """net <- origin + mix * (adapted - origin) for every floating-point tensor (counters as adapted)."""
    blended = {k: origin[k] + mix * (v - origin[k]) if v.is_floating_point() else v for k, v in adapted.items()}
    net.load_state_dict(blended)


def _check_out(given: str, base_dir: Path, overwrite: bool) -> Path:
    """The resolved --out (model.checked_model_out), unless another adapt is writing there."""
    out = Path(os.path.realpath(given))
    owner = _owner(out)
    if owner is not None and owner != os.getpid() and process_runs(owner):
        raise ConfigError(f"--out {given}: another hwr adapt (process {owner}) is writing its model there; wait for "
                          "it to finish, or choose another --out")
    return checked_model_out(given, overwrite=overwrite, sources=[base_dir], source_role="the base model itself",
                             own=(RUN_DIR, RUN_OWNER))


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def abandoned_run(out: Path) -> bool:
    """Whether `out` holds nothing but an unfinished run's files (its checkpoints, its claim)
    and no process of the claim's runs: a run killed outright, or a server stopped while its
    Teach tab adapted (the run's thread dies with it, its clean-up unrun)."""
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError:
        return False
    if not entries or not entries <= {RUN_DIR, RUN_OWNER}:
        return False
    owner = _owner(out)
    return owner is None or (owner != os.getpid() and not process_runs(owner))


def _owner(out: Path) -> int | None:
    """The process id the folder's claim names (None: no claim, or one that cannot be read)."""
    try:
        return int((out / RUN_OWNER).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _progress(number: int, rounds: int, minutes: float, ends_at: float | None):
    """The progress bar of round `number` of `rounds`, training `minutes` at most: labelled with
    its round, its minutes left the whole run's (to `ends_at`, time.monotonic()), not the round's."""
    from hwr.training.train import ProgressBar

    label = "adapt" if rounds == 1 else f"adapt, round {number} of {rounds}"
    after = 0.0 if ends_at is None else ends_at - time.monotonic() - minutes * 60
    return ProgressBar(label, max(0.0, after))


def _train(base_dir: Path, base_config: ModelConfig, split: Split, budget: Budget, minutes: float, run_dir: Path,
           cfg: AdaptConfig, words=None, pseudo: list[LineSample] | None = None,
           finish_early: threading.Event | None = None, progress=None):
    from hwr.recognition.charset import Charset
    from hwr.training.train import POOL_BATCHES, TrainConfig, train

    norm = NormalizeConfig.from_dict(base_config.normalize)
    # hwr train's defaults, but for the background handling, which --init-from carries over.
    if norm != NormalizeConfig(line_height=norm.line_height, flatten_background=norm.flatten_background):
        raise ModelError(f"{base_dir}: the model normalises lines unlike hwr train's defaults; adapt cannot "
                         "train it consistently")
    charset = Charset(base_config.charset)
    charset_spec = "ascii" if charset.symbols == Charset().symbols else str(_write_symbols(run_dir, charset))
    # More than any run draws (no index repeats), and at least a few of train's rendering pools.
    size = max(budget.max_steps, 4 * POOL_BATCHES) * cfg.batch_size * 2
    datasets = {TRAIN_SPEC: AdaptLines(split.adapt, size, cfg.rehearsal, cfg.augment, cfg.seed, charset,
                                       words=words, recombine=cfg.recombine, pseudo=pseudo,
                                       pseudo_share=cfg.pseudo_share),
                HELD_OUT_SPEC: split.held_out}
    train_cfg = TrainConfig(
        train=TRAIN_SPEC, val=HELD_OUT_SPEC, out=str(run_dir), arch=base_config.arch, preset=None,
        net_options=dict(base_config.net), charset=charset_spec, batch_size=cfg.batch_size, lr=budget.lr,
        warmup_steps=budget.warmup_steps, max_steps=budget.max_steps, max_minutes=minutes,
        val_every=budget.val_every, val_batch_size=32,
        patience=cfg.patience if cfg.keep == "best" else 0, seed=cfg.seed, workers=cfg.workers, loader_start="spawn",
        device=cfg.device, init_from=str(base_dir), skip_bad=cfg.skip_bad, threads=cfg.threads,
        overwrite=True)  # the run folder is adapt's own scratch space: an interrupted adapt's is replaced
    on_network = freeze_conv_layers if budget.freeze_conv else freeze_norm_stats if cfg.freeze_norm else None
    return train(train_cfg, datasets=datasets, on_network=on_network, resumable=False,
                 finish_early=None if finish_early is None else finish_early.is_set, progress=progress)


def _write_symbols(run_dir: Path, charset) -> Path:
    path = run_dir / "charset.txt"
    atomic_write_text(path, "".join(charset.symbols))
    return path


def _summary(result: AdaptResult) -> dict:
    return {"base_model": result.base, "before_cer": round(result.before_cer, 5),
            "after_cer": round(result.after_cer, 5), "adapted_weights_kept": result.improved,
            "adapt_lines": result.adapt_lines, "held_out_lines": result.held_out_lines, "split_by": result.split_by,
            "steps": result.steps, "minutes": round(result.minutes, 2), "mix": result.mix,
            "others_before": _rounded(result.others_before), "others_after": _rounded(result.others_after),
            "read_before": _rounded(result.read_before), "read_after": _rounded(result.read_after),
            "pseudo_lines": result.pseudo_lines}


def _rounded(cer: float | None) -> float | None:
    return None if cer is None else round(cer, 5)


def _discard_run(run_dir: Path, out: Path) -> None:
    """After a failure or a stop: adapt always starts over, so nothing of the run is worth
    keeping (its checkpoints would only take disk space), nor an output folder it left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    log.error("adapting stopped before the end: no model written to %s (run hwr adapt again to start over)", out)


def _write_model(out: Path, base_dir: Path, base_config: ModelConfig, weights_from: Path, result: AdaptResult,
                 budget: Budget, cfg: AdaptConfig, fingerprint: str) -> None:
    """The output folder as a complete model: weights (adapted or base), the base's config
    with this run in `training`, the card, the held-out curve and, with --beside, the base model
    in `beside/`. Written whole beside `out` and swapped in (hwr.fileio.written_whole): written
    file by file, a full disk or a Ctrl-C midway had left new weights with an old config and
    card, or a pair's weights without their `beside/`, which then read alone. The folder swapped
    out (with this run's scratch folder in it) is removed."""
    with written_whole(out) as staging:
        shutil.copyfile(weights_from / WEIGHTS_FILE, staging / WEIGHTS_FILE)
        training = {"adapted": {**_summary(result), "data_fingerprint": fingerprint, "lr": budget.lr,
                                "max_steps": budget.max_steps, "freeze_conv": budget.freeze_conv,
                                "settings": asdict(cfg)},
                    "val_cer": result.shipped_cer, "val_lines": result.held_out_lines,
                    "base_training": base_config.training}
        config = ModelConfig(base_config.arch, base_config.net, base_config.charset, base_config.normalize, training)
        atomic_write_text(staging / CONFIG_FILE, config.to_json())
        atomic_write_text(staging / ADAPT_HISTORY_FILE, _jsonl(result.history))
        beside = beside_folder(base_dir, result)
        if beside is not None:  # the pair's other network, unchanged
            (staging / BESIDE_DIR).mkdir()
            for name in (CONFIG_FILE, WEIGHTS_FILE):
                shutil.copyfile(beside / name, staging / BESIDE_DIR / name)
        atomic_write_text(staging / MODEL_CARD_FILE, model_card(out.name, base_dir, result, budget, cfg))


def _read_rows(r: AdaptResult) -> str:
    if r.read_before is None:
        return ""
    return (f"\nRead greedily (above). Read as `hwr transcribe` reads by default (a beam search with the shipped "
            f"character LM; what the run chose the weights by): {r.read_before:.2%} before, {r.read_after:.2%} "
            "after.\n")


def _others_rows(r: AdaptResult, cfg: AdaptConfig) -> str:
    if r.others_before is None:
        return ""
    blended = ""
    if r.improved and r.mix != 1.0:
        within = r.others_after <= r.others_before * (1 + cfg.max_forgetting) + 1e-9
        why = ("the blend that kept them within the limit and read the held-out lines best, within their noise"
               if within else f"no blend kept them within {cfg.max_forgetting:.0%}: the one that forgot least")
        blended = f" (the adapted change kept at {r.mix:.0%}: {why})"
    return (f"\nOther hands ({cfg.check_lines} synthetic lines in the base model's training fonts): "
            f"{r.others_before:.2%} before, {r.others_after:.2%} after{blended}.\n")


def _pseudo_text(r: AdaptResult, cfg: AdaptConfig) -> str:
    if not r.pseudo_lines:
        return ""
    reader = ("the base model" if cfg.pseudo_rounds == 1 else
              f"the model adapted in the round before ({cfg.pseudo_rounds} rounds of self-training, the first "
              "with the base model's readings)")
    return (f"; also {r.pseudo_lines} uncorrected lines of the hand as {reader} read them (the surest "
            f"{cfg.pseudo_keep:.0%} of those given, copies of labelled lines left out; {cfg.pseudo_share:.0%} of "
            "the lines drawn that were not rehearsal lines)")


def _beside_text(r: AdaptResult, base_dir: Path) -> str:
    if not r.beside:
        return ""
    pair = beside_dir(base_dir) is not None
    held = f"the model `{base_dir.name}` was adapted from (its `{BESIDE_DIR}/`)" if pair else f"`{base_dir.name}`"
    return (f" `{BESIDE_DIR}/` holds {held} unchanged: each line the adapted network is unsure of is read by "
            "both, and keeps the surer reading (the figures above are that reading), so reading takes about 1.5 "
            "times as long as with one model.")


def model_card(name: str, base_dir: Path, r: AdaptResult, budget: Budget, cfg: AdaptConfig) -> str:
    kept = ("the adapted weights (they read the held-out lines better)" if r.improved else
            "**the base model's weights unchanged**: the adapted ones did not read the held-out lines better")
    return f"""# {name}

`{base_dir.name}` adapted to one collection's handwriting with `hwr adapt`.

| | held-out CER |
|---|---|
| base model `{base_dir.name}` (before) | {r.before_cer:.2%} |
| adapted (after) | {r.after_cer:.2%} |
{_read_rows(r)}{_others_rows(r, cfg)}

This folder holds {kept}.{_beside_text(r, base_dir)}

- Base model: `{base_dir}`
- Data: {r.adapt_lines + r.held_out_lines} labelled lines; {r.adapt_lines} adapted on, {r.held_out_lines} held out \
(split by {r.split_by}{", whole pages held out" if r.split_by == "page" else ""}){_pseudo_text(r, cfg)}.
- Training: {r.steps} steps in {r.minutes:.1f} minutes (budget {cfg.minutes:g}), peak LR {budget.lr:g}, batches of \
{cfg.batch_size} lines with {cfg.rehearsal:.0%} synthetic rehearsal lines, {cfg.augment:.0%} of the user's lines \
distorted like a writer's (slant, rotation, elastic warp, pen width), conv layers \
{"frozen" if budget.freeze_conv else "trained"}; seed {cfg.seed}.
- Caveat: the held-out lines also chose the stopping step, so the after figure is slightly optimistic; \
with few held-out lines it is also noisy. Score the model on pages it has not seen (`hwr eval`) before relying on it.
- The held-out CER at each evaluation is in `{ADAPT_HISTORY_FILE}`; the base model's own card describes its \
training data.
"""
