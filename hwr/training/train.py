"""Training: CTC on line images, validation CER for model selection, resumable.

AMP and cuDNN on GPU; gradient clipping; Adam/AdamW/RMSprop; warmup + cosine or plateau LR;
early stopping on validation CER; the best model by validation CER is kept in `<out>/best`,
the latest state (with optimizer and schedule, for `--resume`) in `<out>/last`.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from hwr.datasets import LineDataset, known_lines
from hwr.datasets.synthetic import warm_renderer
from hwr.errors import ConfigError, HwrError, name_some
from hwr.fileio import atomic_write_text, check_output_dir, folder_held, recover_folder
from hwr.interrupts import (
    StopRequest,
    sigterm_as_exit,
    stop_between_steps,
    worker_exits_quietly_on_sigterm,
    worker_leaves_ctrl_c_to_its_parent,
)
from hwr.recognition.charset import Charset, read_charset_file, unwritable_symbol
from hwr.recognition.feed import ink_to_device
from hwr.recognition.imaging import ImageError, NormalizeConfig, check_image_file, single_threaded_opencv
from hwr.recognition.model import (
    CONFIG_FILE,
    ModelConfig,
    Recognizer,
    load_model,
    pick_device,
    read_model_config,
    resolve_model_dir,
    save_model_folder,
)
from hwr.recognition.nets import build_network, check_network_size, count_parameters, make_config
from hwr.recognition.nets.crnn import CRNN
from hwr.recognition.nets.widen import widen_crnn, widening_problem
from hwr.scoring.metrics import ErrorCounts
from hwr.training.batches import (
    EncodedLines,
    LineBatch,
    WidthBucketSampler,
    collate_lines,
    collate_pool,
)
from hwr.training.checkpoint import (
    CheckpointError,
    TrainerState,
    load_trainer_state,
    recover_checkpoint,
    save_checkpoint,
)
from hwr.training.distill import Teacher, distillation_loss
from hwr.training.distributed import (
    DistContext,
    ShardedBatchSampler,
    all_reduce_sums,
    barrier,
    init_distributed,
    shard,
    shutdown,
)
from hwr.training.schedule import LRSchedule, make_optimizer
from hwr.training.settings import TrainConfig, network_overrides

log = logging.getLogger("hwr.training.train")

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_charset(spec: str, train_texts: list[str] | None) -> Charset:
    if spec == "ascii":
        return Charset()
    if spec == "data":
        if train_texts is None:
            raise ConfigError("--charset data needs a training set with known texts (not synthetic)")
        return Charset.from_texts(train_texts)
    return read_charset_file(spec)


def _texts_of(dataset: LineDataset) -> list[str] | None:
    lines = known_lines(dataset)
    return None if lines is None else [s.text for s in lines]


class RandomBatches(torch.utils.data.Sampler):
    """Random batches over an index range, reseeded per epoch (used when widths are unknown)."""

    def __init__(self, size: int, batch_size: int, seed: int):
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=g).tolist()
        return iter(order[i : i + self.batch_size] for i in range(0, len(order) - self.batch_size + 1, self.batch_size))


# Lines rendered on the fly have unknown widths until drawn: each worker renders a pool of this
# many batches, sorts it by width and cuts it into batches (about 40% less padding).
POOL_BATCHES = 8
LOG_EVERY = 50  # steps between progress lines when stderr is not a terminal
# Steps between updates of the progress bar's figures: each reads the loss from the device,
# which makes the CPU wait for the GPU instead of queueing the next step.
POSTFIX_EVERY = 10


def warms_renderer(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether to fill the renderer's glyph caches before the loader workers fork (they inherit
    them; hwr.synth.warmup). Only on a GPU: there the workers' rendering is what the network
    waits for, and a fresh worker renders at little more than half its warm rate for tens of
    thousands of lines, most of a short GPU stage. On a CPU the network is the slower part and
    the warm-up (about a minute of CPU time) would only delay the first step."""
    return device.type == "cuda" and cfg.workers > 0 and cfg.loader_start == "fork"


def init_loader_worker(*_) -> None:
    """Each loader worker: one OpenCV thread, Ctrl-C left to the training, and a quiet exit on
    SIGTERM (hwr.interrupts)."""
    single_threaded_opencv()
    worker_leaves_ctrl_c_to_its_parent()
    worker_exits_quietly_on_sigterm()


def make_loader(samples, charset: Charset, norm: NormalizeConfig, cfg: TrainConfig, train: bool,
                ctx: DistContext = DistContext()) -> DataLoader:
    """Training: global batches (per-process batch x processes), each rank taking its share.
    Validation: each rank reads its own shard of the lines, without padding."""
    # Bad lines come back as records, never as exceptions: an exception raised in a loader
    # process reaches this one as a RuntimeError with a traceback. The training loop and
    # validate() raise (or, with --skip-bad, report) them here, naming the file.
    encoded = EncodedLines(samples, charset, norm, skip_bad=True)
    global_batch = cfg.batch_size * ctx.world_size
    collate = collate_lines
    if not train:
        sampler, batch_size = None, cfg.val_batch_size
        if ctx.enabled:
            encoded = torch.utils.data.Subset(encoded, shard(range(len(encoded)), ctx))
    elif (lines := known_lines(samples)) is not None:
        sampler = WidthBucketSampler([len(s.text) for s in lines], global_batch, shuffle=True, seed=cfg.seed)
    else:
        if len(samples) < global_batch:
            raise ConfigError(f"{cfg.train}: {len(samples)} lines, fewer than one batch of {global_batch} "
                              "(--batch-size)")
        # A small set gets a smaller pool: whole pools only, and a set below one would give none.
        pool = min(global_batch * POOL_BATCHES, len(samples) // global_batch * global_batch)
        sampler = RandomBatches(len(samples), pool, cfg.seed)
        collate = functools.partial(collate_pool, batch_size=cfg.batch_size)
    if sampler is not None and ctx.enabled:
        sampler = ShardedBatchSampler(sampler, ctx)
    if train:
        sampler = ResumableBatches(sampler)
    kwargs = dict(collate_fn=collate, num_workers=cfg.workers, pin_memory=torch.cuda.is_available())
    if cfg.workers > 0:
        # Persistent for validation too: a fresh worker reloads fonts and corpora (seconds each).
        kwargs.update(persistent_workers=True, prefetch_factor=4 if collate is collate_lines else 2,
                      worker_init_fn=init_loader_worker, multiprocessing_context=cfg.loader_start)
    if sampler is None:
        return DataLoader(encoded, batch_size=batch_size, shuffle=False, **kwargs)
    return DataLoader(encoded, batch_sampler=sampler, **kwargs)


class ResumableBatches(Sampler[list[int]]):
    """A batch sampler whose next pass may start after its first `skip` items: a resumed run
    goes on where the epoch stopped (the items it skips are never loaded nor rendered)."""

    def __init__(self, batches: Sampler[list[int]]):
        self.batches, self.skip = batches, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.batches.set_epoch(epoch)
        self.skip = skip

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return itertools.islice(iter(self.batches), self.skip, None)


def training_batches(loader: DataLoader, seed: int, items_before: int = 0):
    """(batch, loader items done once it is trained on) from a loader; a pool's width-sorted
    batches (see `collate_pool`) are shuffled. `items_before`: items the loader skipped."""
    for done, item in enumerate(loader, start=items_before + 1):
        if isinstance(item, LineBatch):
            yield item, done
            continue
        batches = list(item)
        # Each pool's own shuffle: a resumed run, which starts at a later pool, shuffles it alike.
        random.Random(seed * 1_000_003 + done).shuffle(batches)
        # A pool cut short by a stop is read again whole on resume: at most a pool's batches repeat.
        for k, batch in enumerate(batches, start=1):
            yield batch, done if k == len(batches) else done - 1


def ctc_loss(net, batch: LineBatch, device, autocast: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's mean CTC loss, and which of its lines are too short for their text (a bool
    tensor on the host).

    The frame counts come from the widths on the host (`frame_counts`), and CTC gets them and
    the target lengths there: it reads both on the host anyway, and lengths on the GPU would be
    copied back, making every step wait for the network to finish.

    CTC cannot align a text to fewer frames than `batches.ctc_frames`; `zero_infinity` gives such
    a line a zero loss (instead of an infinite one that would wreck the step), so nothing is
    learned from it: the caller names those lines (`PendingTooShort`).
    """
    loss, too_short, _ = ctc_forward(net, batch, ink_to_device(batch.images, device), device, autocast)
    return loss, too_short


def ctc_forward(net, batch: LineBatch, images: torch.Tensor, device, autocast: torch.dtype | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`ctc_loss` on images already on the device, also returning the logits (T, N, C).
    `autocast`: the network's lower precision (float16 on CUDA, bfloat16 on a CPU), None: float32."""
    frames = unwrap(net).frame_counts(batch.widths)
    with torch.autocast(device_type=device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        # The widths stay on the host too: the networks count their frames there for packing.
        logits, _ = net(images, batch.widths)
    # CTC in float32: its log-space recursions underflow in half precision.
    log_probs = logits.float().log_softmax(2)
    loss = torch.nn.functional.ctc_loss(
        log_probs, batch.targets.to(device, non_blocking=True), frames, batch.target_lengths,
        blank=0, reduction="mean", zero_infinity=True,
    )
    return loss, frames < batch.frames_needed, logits


class PendingTooShort:
    """Ids of lines too short for their text, collected step by step (host flags, cheap) and
    named together at the next validation instead of a warning per step."""

    def __init__(self):
        self._pending: list[tuple[list[str], torch.Tensor]] = []

    def add(self, ids: list[str], short: torch.Tensor) -> None:
        self._pending.append((ids, short))

    def take(self) -> list[str]:
        found = [line_id for ids, short in self._pending for line_id, flag in zip(ids, short.tolist()) if flag]
        self._pending.clear()
        return found


def report_too_short(ids: list[str], what: str, step: int | None) -> None:
    if ids:
        log.warning("%s%d %s lines too short for their text (CTC loss zeroed, nothing learned from them; "
                    "check their transcription, or use a network with less downsampling), e.g. %s",
                    "" if step is None else f"step {step}: ", len(ids), what, ", ".join(ids[:5]))


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net


def bad_line_error(error: str) -> HwrError:
    return HwrError(f"{error} (fix or remove it, or use --skip-bad to leave such lines out)")


def validate(net, config: ModelConfig, loader: DataLoader, device, ctx: DistContext = DistContext(),
             step: int | None = None, skip_bad: bool = False,
             named: set[str] | None = None) -> tuple[ErrorCounts, float]:
    """Greedy-decode the validation set through the Recognizer's own decoding path.

    Under torchrun each rank scores its shard and the edit counts are summed, so the CER is
    exactly that of the whole validation set. `named`: bad lines a warning already named (not
    named again at every validation; they are added).
    """
    net = unwrap(net)
    recognizer = Recognizer(net, config, device)
    counts, losses, too_short, skipped = ErrorCounts(), [], PendingTooShort(), []
    net.eval()
    with torch.inference_mode():
        for batch in loader:
            if batch.errors and not skip_bad:
                raise bad_line_error(batch.errors[0])
            skipped.extend(batch.errors)
            if len(batch) == 0:
                continue
            loss, short = ctc_loss(net, batch, device)
            losses.append(float(loss))
            too_short.add(batch.ids, short)
            lines = [batch.images[i, 0, :, : batch.widths[i]].numpy() for i in range(len(batch))]
            for text, rec in zip(batch.texts, recognizer.recognize_normalized(lines, len(lines))):
                counts.add(text, rec.text)
    net.train()
    named = set() if named is None else named
    if new := [line for line in skipped if line not in named]:
        log.warning("validation skipped %d bad lines: %s", len(new), "; ".join(new))
        named.update(new)
    report_too_short(too_short.take(), "validation", step)
    sums = all_reduce_sums([counts.char_errors, counts.chars, counts.word_errors, counts.words, counts.lines,
                            sum(losses), len(losses)], ctx)
    counts = ErrorCounts(*(int(v) for v in sums[:5]))
    if counts.lines == 0:
        # A CER of 0 over no lines would be kept as the best model and never beaten.
        raise HwrError("no validation line could be read: nothing to choose the best model by")
    return counts, sums[5] / sums[6] if sums[6] else float("nan")


def build_model_config(cfg: TrainConfig, charset: Charset) -> tuple[ModelConfig, object]:
    net_config = make_config(cfg.arch, cfg.preset, **network_overrides(cfg))
    norm = NormalizeConfig(line_height=net_config.line_height)
    model_config = ModelConfig(arch=cfg.arch, net=net_config.to_dict(), charset=charset.to_json(),
                               normalize=norm.to_dict())
    return model_config, net_config


def train(cfg: TrainConfig, on_finish=None, datasets: dict | None = None, on_network=None,
          on_step=None, resumable: bool = True, finish_early: Callable[[], bool] | None = None,
          progress: ProgressBar | None = None) -> TrainerState:
    """Train a model as configured; returns the final state (best CER, history).

    Under torchrun every process calls this; only rank 0 writes checkpoints and logs.
    `on_finish(net, ctx)` (for tests and tools) sees the final network of each process.
    `datasets` ({spec: data set}) stands in for reading cfg.train / cfg.val from disk, and
    `on_network(net)` runs once the initial weights are in, before the optimizer takes the
    trainable parameters: both for hwr.training.adapt (augmented user lines, frozen layers).
    `on_step(step)` runs after every optimizer step (bench/profile_training.py steps a profiler).
    `resumable=False`: a crash or stop writes no emergency checkpoint (a caller that always
    starts over, like hwr adapt, would never --resume it).
    `finish_early()` true ends the run as --max-minutes running out does, validated and saved
    (the web app's "Finish now" on an adaptation); one process only, as it is asked per process.
    `progress`: how the progress bar reads when the run is one part of a longer job.
    """
    from hwr.datasets import open_dataset

    if datasets is not None:
        given, read = datasets, open_dataset

        def open_dataset(spec, skip_bad=False, split_file=None):
            return given[spec] if spec in given else read(spec, skip_bad=skip_bad, split_file=split_file)

    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx, device = init_distributed(pick_device(cfg.device))
    try:
        with sigterm_as_exit():
            state, net = _train(cfg, ctx, device, open_dataset, on_network, on_step, resumable, finish_early,
                                progress or ProgressBar())
        # Every rank done before any tears the process group down: one that left while rank 0
        # still saved now and then died in gloo's teardown ("terminate called without an
        # active exception", SIGABRT).
        barrier(ctx)
        if on_finish is not None:
            on_finish(unwrap(net), ctx)
        return state
    finally:
        shutdown()


@dataclass(frozen=True)
class ProgressBar:
    """How a run's progress bar reads when the run is one part of a longer job (hwr adapt: its
    self-training rounds, then checking and writing the model): the bar's label, and the seconds
    the job goes on after this run, counted into the bar's "minutes left" so that it is the job's,
    not the round's. The logs without a bar name the label too."""

    label: str = "train"
    after_seconds: float = 0.0

    @property
    def log_prefix(self) -> str:
        return "" if self.label == "train" else f"{self.label}: "


@dataclass
class TrainingRun:
    """One training run's state, built once by `_train` and handed to each step of the loop:
    the network (DDP-wrapped under torchrun) and its saved config, the optimizer, LR schedule
    and loss scaler, the data, the progress (`state`), and where and in which process it runs."""

    cfg: TrainConfig
    net: torch.nn.Module
    model_config: ModelConfig
    optimizer: torch.optim.Optimizer
    scheduler: LRSchedule
    scaler: torch.amp.GradScaler
    state: TrainerState
    device: torch.device
    autocast: torch.dtype | None  # the training step's lower precision (ctc_forward), None: float32
    out: Path
    ctx: DistContext
    train_loader: DataLoader | None = None
    val_loader: DataLoader | None = None
    # Exponential moving average of the training loss, kept on the device: reading it waits for
    # the GPU, so only the progress display and the logs read it (running_loss), not every step.
    loss_average: torch.Tensor | None = None
    skipped: dict[str, None] = field(default_factory=dict)  # bad training lines (--skip-bad), each once, in order
    val_skipped: set[str] = field(default_factory=set)  # bad validation lines already named
    # Lines CTC could not align, since the last validation.
    too_short: PendingTooShort = field(default_factory=PendingTooShort)
    on_step: Callable[[int], None] | None = None  # called with the step number after each step
    finish_early: Callable[[], bool] | None = None  # true: end as when --max-minutes runs out
    progress: ProgressBar = ProgressBar()
    teacher: Teacher | None = None  # --teacher: the model distilled from (hwr.training.distill)
    # A new run in a folder holding an earlier one, until its first validation replaces that run
    # (CurveFile.replace_earlier): till then nothing of this run is saved there.
    replaces_earlier: bool = False
    nonfinite_in_row: int = 0  # steps in a row whose loss or gradients were not finite (train_step)

    @property
    def running_loss(self) -> float | None:
        return None if self.loss_average is None else float(self.loss_average)

    @property
    def model(self) -> torch.nn.Module:
        """The network itself, without its DDP wrapper: what is saved and validated."""
        return unwrap(self.net)

    def save_last(self) -> None:
        """<out>/last: the weights and everything --resume needs."""
        self.state.loss_average = self.running_loss
        save_checkpoint(self.out / "last", self.model, self.model_config, self.optimizer, self.scheduler,
                        self.scaler, self.state)


def _train(cfg: TrainConfig, ctx: DistContext, device: torch.device, open_dataset, on_network=None, on_step=None,
           resumable: bool = True, finish_early=None, progress: ProgressBar | None = None):
    """Data, network, optimizer, loaders, then the loop; a crash or stop saves <out>/last first."""
    existed = Path(cfg.out).exists()
    with _output_held(cfg, ctx) as out:
        return _train_into(out, existed, cfg, ctx, device, open_dataset, on_network, on_step, resumable,
                           finish_early, progress or ProgressBar())


def _train_into(out: Path, existed: bool, cfg: TrainConfig, ctx: DistContext, device: torch.device, open_dataset,
                on_network, on_step, resumable: bool, finish_early=None, progress: ProgressBar | None = None):
    """_train once its output folder is held."""
    try:
        if ctx.is_main:  # any run into the folder: a new one too would otherwise leave killed saves' litter
            recover_checkpoint(out / "last")  # a save killed between its two renames (hwr.training.checkpoint)
            recover_folder(out / "best")  # the same for best/ (save_model_folder)
            for staging in sorted((out / "snapshots").glob(".step-*.saving-*")):  # and a snapshot's half-write
                recover_folder(out / "snapshots" / staging.name[1:].rpartition(".saving-")[0])
        barrier(ctx)
        train_set = open_dataset(cfg.train, skip_bad=cfg.skip_bad, split_file=cfg.train_split_file)
        val_set = open_dataset(cfg.val, skip_bad=cfg.skip_bad, split_file=cfg.val_split_file)
        if ctx.is_main:
            warn_shared_lines(train_set, val_set)
        train_set = check_images(train_set, "training", cfg.skip_bad)
        val_set = check_images(val_set, "validation", cfg.skip_bad)
        for spec, data in ((cfg.train, train_set), (cfg.val, val_set)):
            if len(data) == 0:
                raise HwrError(f"{spec}: no lines in this data set" + (" that can be read" if cfg.skip_bad else ""))
        resuming = cfg.resume and _resumable(out / "last")
        if cfg.resume and not resuming and not cfg.overwrite and ctx.is_main and holds_a_run(out):
            # Starting fresh would wipe that run's history and replace its best/ at once.
            raise ConfigError(f"--resume: {out} holds an earlier run but no checkpoint in {out / 'last'} to continue "
                              "it (restore last/, or use --overwrite to replace the run)")
        net, model_config = _resumed_network(out) if resuming else _new_network(cfg, train_set)
        charset = Charset(model_config.charset)
        check_coverage(charset, train_set, "training", cfg.skip_bad)
        check_coverage(charset, val_set, "validation", cfg.skip_bad, learnt_from_data=cfg.charset == "data")
        net = _place(net, device)
        if cfg.init_from and not resuming:  # a resumed run continues its own weights
            _init_from(net, model_config, cfg.init_from)
        if on_network is not None:
            on_network(net)
        run = _start_run(cfg, net, model_config, device, out, ctx, resuming)
        run.net = _distribute(net, cfg, device, ctx)
        run.on_step, run.finish_early, run.progress = on_step, finish_early, progress or ProgressBar()
        if cfg.teacher:
            run.teacher = Teacher.load(cfg.teacher, net, model_config, device, cfg.distill_temperature)
            log.info("distilling from %s (weight %g, temperature %g)", run.teacher.source, cfg.distill_weight,
                     cfg.distill_temperature)
        if not resuming and (out / "history.jsonl").exists():
            # A new run in an old run's folder replaces it at its first validation (CurveFile):
            # a run that fails before (a damaged image met at step 1) leaves the earlier one whole.
            if ctx.is_main:
                log.warning("%s holds an earlier run: this one replaces it at its first validation (use --resume "
                            "to continue that one)", out)
            run.replaces_earlier = True
        norm = NormalizeConfig.from_dict(model_config.normalize)
        if warms_renderer(cfg, device):
            warm_renderer(train_set, max(1, (os.cpu_count() or 1) // ctx.world_size))
        run.train_loader = make_loader(train_set, charset, norm, cfg, train=True, ctx=ctx)
        run.val_loader = make_loader(val_set, charset, norm, cfg, train=False, ctx=ctx)
    except BaseException:
        # Nothing trained yet: a folder this run made for itself goes again (a bad --init-from,
        # data or setting would otherwise leave an empty --out behind).
        if ctx.is_main and not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    try:
        run_loop(run)
    except BaseException as exc:
        # Emergency checkpoint: a crash or Ctrl-C keeps the work done so far resumable. Before
        # the first step there is none, and a checkpoint of nothing would only make the rerun
        # (data fixed) need --overwrite.
        stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))  # asked to stop: Ctrl-C, SIGTERM, a requeue
        if ctx.is_main and resumable and run.state.step > 0 and run.replaces_earlier and not stopped:
            # Failed (a damaged image, a bug) before it had anything to show: the earlier run stays.
            log.error("training failed at step %d, before its first validation: the earlier run in %s is left as "
                      "it was, and this run's steps are not kept (rerun with --overwrite once mended; --resume "
                      "would continue the earlier run)", run.state.step, out)
        elif ctx.is_main and resumable and run.state.step > 0:
            if run.replaces_earlier:  # stopped on purpose: this run is the one --resume should continue
                drop_earlier_run(out)
            run.save_last()
            log.error("training interrupted at step %d; state saved to %s (use --resume)", run.state.step, out / "last")
        raise
    finally:
        if run.skipped and ctx.is_main:
            shown = list(run.skipped)[:20]
            more = f" and {len(run.skipped) - len(shown)} more" if len(run.skipped) > len(shown) else ""
            log.warning("skipped %d bad training lines: %s%s", len(run.skipped), "; ".join(shown), more)
    return run.state, run.net


def _resumable(last: Path) -> bool:
    """Whether <out>/last holds a run to resume: False for none (or an empty folder); a
    checkpoint that lost its config.json is an error naming it, not a silent fresh start
    that would overwrite it."""
    if (last / CONFIG_FILE).exists():
        return True
    if last.is_dir() and any(last.iterdir()):
        raise CheckpointError(f"{last}: the checkpoint has no {CONFIG_FILE}; it cannot be resumed "
                              "(restore the file, or train into another --out)")
    return False


@contextmanager
def _output_held(cfg: TrainConfig, ctx: DistContext) -> Iterator[Path]:
    """--out, held by this run's main process while it trains (fileio.folder_held): a second
    run into it, --resume or --overwrite or one started before the first had saved anything,
    had trained on beside the first, both writing last/, best/ and the history. The other
    ranks of a torchrun job are the same run: only rank 0 holds the folder."""
    torch.backends.cudnn.benchmark = True
    out = Path(cfg.out)
    if not ctx.is_main:
        log.setLevel(logging.WARNING)
        yield out
        return
    check_output_dir(out, "--out")
    with folder_held(out, "another hwr run is using this folder (a training into it, or a transcription writing "
                          "there); wait for it to finish, or train into another --out"):
        if not cfg.resume and not cfg.overwrite and holds_a_run(out):
            # A new run would truncate the old history at once and replace best/ at its first
            # validation, however early: hours of someone's training lost to a reused name.
            raise ConfigError(f"--out {out}: holds an earlier run (use --resume to continue it, or --overwrite "
                              "to replace it)")
        yield out


def holds_a_run(out: Path) -> bool:
    """Whether a training run has left work in `out`: a validation in its history, or a
    checkpoint (a run that failed before its first step leaves only an empty history)."""
    history = out / "history.jsonl"
    return (history.is_file() and history.stat().st_size > 0) or any((out / name).exists() for name in ("best", "last"))


def _resumed_network(out: Path) -> tuple[torch.nn.Module, ModelConfig]:
    """<out>/last's network: the saved run decides arch, preset and charset, not this command line."""
    net, model_config = load_model(out / "last")
    return net.train(), model_config


def _new_network(cfg: TrainConfig, train_set) -> tuple[torch.nn.Module, ModelConfig]:
    charset = resolve_charset(cfg.charset, _texts_of(train_set))
    if cfg.init_from and cfg.charset == "data":
        # Fine-tuning to data with new characters (accents, other quotes): the model's own
        # symbols, in its order, then the data's new ones (kraken's "union"). Every output the
        # model learned is kept (_init_from); only the new symbols start fresh.
        known = read_model_config(resolve_model_dir(cfg.init_from)).charset
        charset = Charset([*known, *(s for s in charset.symbols if s not in known)])
    model_config, net_config = build_model_config(cfg, charset)
    check_network_size(cfg.arch, net_config, len(charset), "--arch/--preset/--net-options")
    return build_network(cfg.arch, net_config, len(charset)), model_config


def _place(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    net = net.to(device)
    if device.type == "cpu":
        # Conv weights in the NHWC layout the CPU kernels use (see CRNN.forward): ~10% faster
        # training; parameters keep their identity, and checkpoints are saved contiguous.
        net.to(memory_format=torch.channels_last)
    return net


def _init_from(net: torch.nn.Module, model_config: ModelConfig, source: str) -> None:
    init_net, init_config = load_model(resolve_model_dir(source))  # a folder or a shipped model's name
    if init_config.arch != model_config.arch:
        raise ConfigError(f"{source}: a {init_config.arch} network; this run trains a {model_config.arch}")
    _keep_background_handling(model_config, init_config, source)
    if init_config.charset != model_config.charset:
        lost = [s for s in init_config.charset if s not in model_config.charset]
        if lost:
            raise ConfigError(f"{source}: writes characters this run's charset lacks ({''.join(lost[:20])!r}); "
                              "--charset data keeps the model's characters and adds the data's new ones")
        if isinstance(net, CRNN) and _is_wider(net, init_net):
            raise ConfigError(f"{source}: widen the network and add characters in two runs, not one")
        load_matching_weights(net, with_output_rows_for(init_net.state_dict(), init_config.charset,
                                                        model_config.charset, net.state_dict()), source)
        log.info("init from %s: its %d symbols keep their outputs; %d new ones start fresh (%s)", source,
                 len(init_config.charset), len(model_config.charset) - len(init_config.charset),
                 "".join(s for s in model_config.charset if s not in init_config.charset))
        return
    if isinstance(net, CRNN) and _is_wider(net, init_net):
        # A wider CRNN of the same depth (e.g. `base` from `small`): every unit of the source
        # is carried over and the scores start equal (hwr.recognition.nets.widen).
        widen_crnn(init_net.to(next(net.parameters()).device), net)
        log.info("init from %s: widened its %s into this network's %s", source,
                 _widths(init_net), _widths(net))
        return
    load_matching_weights(net, init_net.state_dict(), source)


def _keep_background_handling(model_config: ModelConfig, init_config: ModelConfig, source: str) -> None:
    """A network trained on lines with or without the paper's brightness evened out
    (NormalizeConfig.flatten_background) goes on seeing them the way it learned them."""
    flatten = NormalizeConfig.from_dict(init_config.normalize).flatten_background
    if flatten != NormalizeConfig.from_dict(model_config.normalize).flatten_background:
        log.info("init from %s: lines normalised as it was trained (flatten_background %s)", source, flatten)
    model_config.normalize = {**model_config.normalize, "flatten_background": flatten}


def _is_wider(net: CRNN, source: torch.nn.Module) -> bool:
    return (isinstance(source, CRNN) and widening_problem(source, net) is None
            and _widths(source) != _widths(net))


def _widths(net: CRNN) -> str:
    return f"conv {net.config.conv_channels}, recurrent {net.config.rnn_hidden}"


def _start_run(cfg: TrainConfig, net, model_config: ModelConfig, device, out: Path, ctx: DistContext,
               resuming: bool) -> TrainingRun:
    """Optimizer, LR schedule and loss scaler for `net`, restored from <out>/last when resuming."""
    amp = cfg.amp and device.type == "cuda"
    autocast = torch.float16 if amp else torch.bfloat16 if cfg.cpu_bf16 and cpu_has_bf16(device) else None
    if resuming:
        cfg = _resumed_settings(cfg, model_config, say=ctx.is_main)
    optimizer = make_optimizer(net, cfg)
    state = TrainerState()
    scheduler = LRSchedule(optimizer, cfg, state)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    if resuming:
        # In place: the LR schedule reads this state's clock.
        vars(state).update(vars(load_trainer_state(out / "last", optimizer, scheduler, scaler)))
        log.info("resumed from %s at step %d", out / "last", state.step)
    elif cfg.resume:
        log.warning("--resume: nothing to resume in %s; starting fresh", out / "last")
    model_config.training = {"config": cfg.to_dict(), "parameters": count_parameters(net), "processes": ctx.world_size}
    log.info("%s %s: %d parameters on %s (autocast %s, %d processes)", model_config.arch, cfg.preset or "default",
             count_parameters(net), device, str(autocast).removeprefix("torch.") if autocast else "off",
             ctx.world_size)
    run = TrainingRun(cfg, net, model_config, optimizer, scheduler, scaler, state, device, autocast, out, ctx)
    if state.loss_average is not None:
        run.loss_average = torch.tensor(state.loss_average, dtype=torch.float32, device=device)
    return run


def cpu_has_bf16(device: torch.device) -> bool:
    """Whether `device` is a CPU that computes bfloat16 natively (emulated, it is slower than float32)."""
    if device.type != "cpu":
        return False
    supported = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    if not supported:
        log.info("--cpu-bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); training in float32")
    return supported


# What a checkpoint's optimizer state holds: a resumed run continues them (the optimizer's
# moments and learning rates come back from <out>/last), whatever this command line says.
RESUMED_OPTIMIZER_SETTINGS = ("optimizer", "lr", "weight_decay")
# What builds the network a resumed run continues (<out>/last's, whatever this command line says).
RESUMED_NETWORK_SETTINGS = ("arch", "preset", "line_height", "rnn_cell", "net_options", "charset", "init_from")


def _resumed_settings(cfg: TrainConfig, model_config: ModelConfig, say: bool = True) -> TrainConfig:
    """`cfg` with the resumed run's own optimizer settings: another optimizer cannot take its
    state (ConfigError), and another --lr or --weight-decay would be overwritten by the state
    restored (a warning), so the run's record says what it really trains with. `say`: warn (one
    process of a torchrun job, not each)."""
    saved = ((model_config.training or {}).get("config") or {})
    if saved.get("optimizer") not in (None, cfg.optimizer):
        raise ConfigError(f"--resume continues the run's {saved['optimizer']} optimizer; --optimizer {cfg.optimizer} "
                          "needs a new run (--init-from <out>/last --out <another folder>)")
    if say and saved.get("val") not in (None, cfg.val):
        log.warning("--resume with another --val (%s, the run's was %s): its best CER so far was read on the other "
                    "lines, and best/ is replaced only by a lower CER on these", cfg.val, saved["val"])
    changed = {name: saved[name] for name in RESUMED_OPTIMIZER_SETTINGS
               if name in saved and saved[name] != getattr(cfg, name)}
    if changed and say:
        log.warning("--resume keeps the run's own %s (the optimizer's state holds them); the values given are "
                    "not used", ", ".join(f"{name} {value}" for name, value in changed.items()))
    # The network is last/'s (_resumed_network): flags given for another one are named, and the
    # run's record and log keep its own (they had said "crnn graves2009" of a tiny crnn).
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    given = {name: getattr(cfg, name) for name in RESUMED_NETWORK_SETTINGS
             if getattr(cfg, name) != defaults[name] and getattr(cfg, name) != saved.get(name, defaults[name])}
    if given and say:
        log.warning("--resume continues the run's own network and weights; %s not used",
                    " ".join(f"--{name.replace('_', '-')} {value}" for name, value in given.items())
                    + (" is" if len(given) == 1 else " are"))
    network = {name: saved[name] for name in RESUMED_NETWORK_SETTINGS if name in saved}
    if say and saved.get("schedule") not in (None, cfg.schedule):
        log.warning("--resume with another --schedule (%s; the run's was %s): the learning rate follows the new one "
                    "from this step on", cfg.schedule, saved["schedule"])
    return replace(cfg, **changed, **network)


def _distribute(net: torch.nn.Module, cfg: TrainConfig, device: torch.device, ctx: DistContext) -> torch.nn.Module:
    """Under torchrun: DDP (with SyncBatchNorm when asked, on CUDA); otherwise the net as is."""
    if not ctx.enabled:
        return net
    if cfg.sync_batchnorm and device.type == "cuda":
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    elif cfg.sync_batchnorm:
        log.warning("--sync-batchnorm needs CUDA (PyTorch's SyncBatchNorm); BatchNorm stays per process")
    # No device_ids: DDP would copy every input to the GPU, the host widths too (a blocking copy),
    # and the network, finding them there, waits for the GPU to count its frames. The images are
    # already on the GPU; the widths stay on the host.
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=None)


OUTPUT_LAYER = "output."  # the symbol scores' layer, in every architecture (crnn, mdlstm)


def with_output_rows_for(source: dict[str, torch.Tensor], old_symbols: list[str], new_symbols: list[str],
                         own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`source` with its output layer's rows (one per symbol, the blank first) moved to where
    `new_symbols` (a superset) puts each symbol; rows of new symbols keep `own`'s fresh values.
    Only the layer every network names `output`: a hidden layer may have as many units."""
    where = [0] + [new_symbols.index(s) + 1 for s in old_symbols]  # blank, then each old symbol's new id
    mapped = dict(source)
    for name, tensor in source.items():
        mine = own.get(name)
        if name.startswith(OUTPUT_LAYER) and mine is not None and tensor.shape[1:] == mine.shape[1:]:
            rows = mine.detach().clone()
            rows[where] = tensor.to(rows)  # the run's device (a GPU) and dtype
            mapped[name] = rows
    return mapped


def load_matching_weights(net: torch.nn.Module, source: dict[str, torch.Tensor], origin: str) -> None:
    """Copy every tensor of `source` whose name and shape the network shares; the others stay
    at their fresh initialisation (logged).

    This is how a smaller network starts from a trained one (e.g. the 2-layer `compact` CRNN
    from `small`, whose conv stack, first two recurrent layers and output layer match): the
    shared layers keep what they learned. No shared weight matrix or kernel at all is an error,
    not a silent fresh start.
    """
    own = net.state_dict()
    shared = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not any(v.dim() >= 2 for v in shared.values()):  # a bias or counter alone is no match
        raise ConfigError(f"{origin}: no weights match this network's layers")
    net.load_state_dict(shared, strict=False)
    fresh = sorted(k for k in own if k not in shared)
    unused = sorted(k for k in source if k not in shared)
    if fresh or unused:
        log.warning("init from %s: %d tensors loaded; %d left fresh (%s); %d not used (%s)", origin,
                    len(shared), len(fresh), ", ".join(fresh[:4]), len(unused), ", ".join(unused[:4]))


def warn_shared_lines(train_set: LineDataset, val_set: LineDataset) -> list[str]:
    """Warn when validation lines are training lines too (one IAM tree for both without split
    files): the validation CER would then pick the checkpoint that learned them best by heart.
    Returns where the shared lines are (image paths, `page.xml#line`); lines rendered on demand
    are never shared."""
    train_lines, val_lines = known_lines(train_set), known_lines(val_set)
    if train_lines is None or val_lines is None:
        return []
    trained = {line.where for line in train_lines}
    shared = [line.where for line in val_lines if line.where in trained]
    if shared:
        log.warning("%d of %d validation lines are training lines too (e.g. %s): name each split's lines "
                    "(--train-split-file / --val-split-file for IAM), or the validation CER flatters the model",
                    len(shared), len(val_lines), shared[0])
    return shared


def check_images(dataset: LineDataset, what: str, skip_bad: bool) -> LineDataset:
    """Every line image file checked from its header before the first step: a broken file is
    named now, with all the others, not when training reaches it an hour in. Raises listing
    them; with skip_bad, warns listing them and leaves them out."""
    lines = known_lines(dataset)
    if lines is None:
        return dataset  # rendered on demand: nothing on disk to check
    bad = {}
    for k, sample in enumerate(lines):
        if isinstance(sample.image, (str, Path)):
            try:
                check_image_file(sample.image)
            except ImageError as exc:
                bad[k] = sample.with_row(str(exc))
    if not bad:
        return dataset
    reasons = list(bad.values())
    what_failed = f"{what} data: {len(bad)} of {len(lines)} line images cannot be read"
    if not skip_bad:
        raise ConfigError(f"{what_failed}: {name_some(reasons, 5)} "
                          "(fix or remove them, or use --skip-bad to leave them out)")
    log.warning("%s, left out: %s", what_failed, "; ".join(reasons))
    return [s for k, s in enumerate(lines) if k not in bad]


def check_coverage(charset: Charset, dataset: LineDataset, what: str, skip_bad: bool,
                   learnt_from_data: bool = False) -> None:
    """Lines with characters the network does not write: an error naming them, or (skip_bad)
    a warning and the lines left out. `learnt_from_data`: --charset data already learns every
    character of the training lines, so these appear only in the validation lines."""
    lines = known_lines(dataset)
    if lines is None:
        return  # synthetic text is sampled within the charset
    empty = [s for s in lines if not s.text.strip()]
    if empty:
        # Legal (a blank line reads as nothing), but mostly a transcription left out by mistake:
        # the network would learn to read nothing on an inked line.
        names = ", ".join(s.where for s in empty[:5])
        log.warning("%s data: %d lines have an empty transcription (e.g. %s)", what, len(empty), names)
    report = charset.coverage((s.where, s.text) for s in lines)
    if report.ok:
        return
    message = f"{what} data: {report.summary()}"
    if not skip_bad:
        if learnt_from_data:  # "use --charset data" would be advice already taken
            raise ConfigError(message + " (no training line has them, so --charset data cannot learn them; add "
                              "training lines with them, or --skip-bad to leave those validation lines out)")
        if all(unwritable_symbol(ch) for ch in report.missing):  # never symbols, whatever --charset says
            raise ConfigError(message + " (control characters or line breaks, which no model writes: correct those "
                              "labels, or --skip-bad to skip those lines)")
        raise ConfigError(message + " (use --charset data to learn them, or --skip-bad to skip those lines)")
    log.warning("%s; those lines are skipped", message)


def run_loop(run: TrainingRun) -> None:
    """Train until --max-steps, --max-minutes or early stopping, validating every --val-every steps."""
    cfg, state, ctx = run.cfg, run.state, run.ctx
    # A finished run resumed again (a scheduler rerunning a job) would otherwise take one more step;
    # one stopped early by --patience too.
    finished = (state.step >= cfg.max_steps or 0 < cfg.max_minutes * 60 <= state.elapsed_seconds
                or 0 < cfg.patience <= state.evals_since_best)
    # A validation the run stopped in (a line that failed to decode, a full disk saving best/, a
    # GPU out of memory): its emergency checkpoint holds the step, and the validation was lost.
    pending = state.step > 0 and (not state.history or state.history[-1]["step"] != state.step) and (
        finished or state.step % cfg.val_every == 0)
    if ctx.is_main and cfg.keep_snapshots and state.history and state.history[-1]["step"] == state.step:
        _restore_snapshot(run)
    if finished and not pending:
        log.info("already at step %d (--max-steps %d, --max-minutes %g, --patience %d): nothing to train",
                 state.step, cfg.max_steps, cfg.max_minutes, cfg.patience)
        return
    history_file = CurveFile(run.out, state.history, run.replaces_earlier) if ctx.is_main else None
    if pending:
        log.info("step %d was not validated (the run stopped in its validation): validating now", state.step)
        if evaluate_and_save(run, history_file) or finished:
            if history_file is not None:
                history_file.close()
            return
    run.net.train()
    start = time.monotonic() - state.elapsed_seconds
    bar = tqdm(total=cfg.max_steps, initial=state.step, desc=run.progress.label, unit="step", file=sys.stderr,
               disable=None if ctx.is_main else True, dynamic_ncols=True)
    first_step, run_start = state.step, time.monotonic()
    done = False
    # Ctrl-C and SIGTERM stop the run between steps (hwr.interrupts.stop_between_steps), where the
    # emergency checkpoint saves a whole step.
    with stop_between_steps("this training step") as stop_request:
        while not done:
            shape = epoch_shape(run)
            if state.epoch_items and state.epoch_shape != shape:
                # Other data, batch size, seed or process count: the items done name other batches.
                log.warning("the epoch's batches differ from the resumed run's (data, --batch-size, --seed or "
                            "processes changed): epoch %d starts over", state.epoch)
                state.epoch_items = 0
            state.epoch_shape = shape
            run.train_loader.batch_sampler.set_epoch(state.epoch, skip=state.epoch_items)
            steps_before, resumed_inside = state.step, state.epoch_items > 0
            for batch, items_done in training_batches(run.train_loader, cfg.seed + state.epoch, state.epoch_items):
                if batch.errors and not cfg.skip_bad:
                    raise bad_line_error(batch.errors[0])  # not counted done: read again once fixed
                run.skipped.update(dict.fromkeys(batch.errors))
                if _any_rank_without_lines(run, batch):
                    state.epoch_items = items_done
                    _stop_or_out_of_time(run, stop_request, check_time=False)
                    continue
                train_step(run, batch)
                state.epoch_items = items_done  # after the step: a stop during it reads the batch again
                if run.on_step is not None:
                    run.on_step(state.step)
                bar.update(1)
                if not bar.disable and (state.step % POSTFIX_EVERY == 0 or state.step - first_step == 1):
                    bar.set_postfix(loss=f"{run.running_loss:.3f}", **_validation_postfix(state),
                                    left=_minutes_left(cfg, state, state.step - first_step,
                                                       time.monotonic() - run_start, run.progress.after_seconds))
                if bar.disable and ctx.is_main and state.step % LOG_EVERY == 0:  # logs and pipes get no bar
                    log.info("%sstep %d: loss %.3f, %.1f min", run.progress.log_prefix, state.step,
                             run.running_loss, (time.monotonic() - start) / 60)
                state.elapsed_seconds = time.monotonic() - start
                out_of_time = _stop_or_out_of_time(run, stop_request)
                if state.step % cfg.val_every == 0 or state.step >= cfg.max_steps or out_of_time:
                    stop = evaluate_and_save(run, history_file)
                    _stop_or_out_of_time(run, stop_request, check_time=False)
                    if stop or state.step >= cfg.max_steps or out_of_time:
                        done = True
                        break
            if not done and state.step == steps_before and not resumed_inside:
                # A whole pass over the data without one step: every line was bad (or there are
                # none); another pass would find the same, forever.
                raise HwrError(f"{cfg.train}: no usable training lines"
                               + (f" ({len(run.skipped)} skipped as bad)" if run.skipped else ""))
            state.epoch, state.epoch_items = state.epoch + 1, 0
    bar.close()
    if history_file is not None:
        history_file.close()


def epoch_shape(run: TrainingRun) -> list[int]:
    """What fixes which batches an epoch's items are: lines, items, seed, global batch size."""
    loader = run.train_loader
    return [len(loader.dataset), len(loader.batch_sampler), run.cfg.seed, run.cfg.batch_size * run.ctx.world_size]


def _validation_postfix(state: TrainerState) -> dict[str, str]:
    if not state.history:
        return {}
    return {"val_cer": f"{state.history[-1]['val_cer']:.4f}", "best": f"{state.best_cer:.4f}"}


def _minutes_left(cfg: TrainConfig, state: TrainerState, steps_run: int, seconds_run: float,
                  after_seconds: float = 0.0) -> str:
    """Time to the end of the run: the steps left at this run's pace, or what --max-minutes
    leaves, whichever comes first (tqdm's own estimate knows only the steps); plus what the job
    does after the run (ProgressBar.after_seconds)."""
    left = (cfg.max_steps - state.step) * seconds_run / max(1, steps_run)
    if cfg.max_minutes > 0:
        left = min(left, cfg.max_minutes * 60 - state.elapsed_seconds)
    return f"{(max(0.0, left) + max(0.0, after_seconds)) / 60:.1f} min"


def train_step(run: TrainingRun, batch: LineBatch) -> None:
    """One optimizer step on one batch (AMP-scaled, gradient-clipped); updates the running loss."""
    images = ink_to_device(batch.images, run.device)
    loss, too_short, logits = ctc_forward(run.net, batch, images, run.device, run.autocast)
    if run.teacher is not None:
        frames = run.model.frame_counts(batch.widths)
        soft = distillation_loss(logits, run.teacher.log_probs(images, batch.widths, run.autocast), frames,
                                 batch.target_lengths, run.teacher.temperature)
        weight = run.cfg.distill_weight
        loss = (1.0 - weight) * loss + weight * soft
    run.too_short.add(batch.ids, too_short)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    # A norm clipped to 0 would zero every step: 0 means off, as elsewhere (the norm is still
    # measured: an infinite limit clips nothing).
    norm = torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.grad_clip or math.inf)
    # The fp16 loss scaler skips a step with inf/NaN gradients itself (and lowers its scale);
    # without it (CPU, bfloat16) one such step made every weight NaN, and the NaN network's empty
    # readings (CER 1.0) even replaced best/. Such a step is skipped: all ranks see the same
    # all-reduced gradients, so all skip it together.
    if run.scaler.is_enabled() or bool(torch.isfinite(norm)):
        run.scaler.step(run.optimizer)
        run.nonfinite_in_row = 0
        run.loss_average = averaged_loss(run.loss_average, loss)
    else:
        run.optimizer.zero_grad(set_to_none=True)
        run.nonfinite_in_row += 1
        log.warning("step %d: the loss or its gradients are not finite (loss %s); the step is skipped",
                    run.state.step + 1, float(loss.detach()))
        if run.nonfinite_in_row >= MAX_NONFINITE_STEPS:
            raise HwrError(f"training diverged: {run.nonfinite_in_row} steps in a row with a loss or gradients "
                           "that are not finite; lower --lr (or --grad-clip), or resume from an earlier checkpoint")
    run.scaler.update()
    run.scheduler.step()
    run.state.step += 1


# Non-finite steps in a row after which training stops (one is a bad batch; so many, divergence).
MAX_NONFINITE_STEPS = 20


def averaged_loss(average: torch.Tensor | None, loss: torch.Tensor) -> torch.Tensor:
    """The exponential moving average (0.95) of the step losses, updated on the loss's device."""
    value = loss.detach().float()
    return value.clone() if average is None else average.mul_(0.95).add_(value, alpha=0.05)


def _any_rank_without_lines(run: TrainingRun, batch: LineBatch) -> bool:
    """Whether this batch (every line bad, --skip-bad) or another rank's is empty: every rank then
    skips the step together, or the ranks' all-reduces would pair up across steps and hang."""
    return all_reduce_sums([len(batch) == 0], run.ctx)[0] > 0


def _stop_or_out_of_time(run: TrainingRun, stop_request: StopRequest, check_time: bool = True) -> bool:
    """Stop (raise) where a stop was asked for on any rank; else whether --max-minutes is up on any
    (or the caller's finish_early says to finish now).

    Every rank must stop at the same step, or the others hang in the next step's all-reduce: a
    Ctrl-C reaches torchrun's processes at slightly different moments, on either side of a step."""
    limit = run.cfg.max_minutes * 60
    late = check_time and ((limit > 0 and run.state.elapsed_seconds > limit)
                           or (run.finish_early is not None and run.finish_early()))
    asked, late_anywhere = all_reduce_sums([stop_request.signum is not None, late], run.ctx)
    stop_request.raise_if_asked(elsewhere=asked > 0)
    return late_anywhere > 0


def evaluate_and_save(run: TrainingRun, history_file=None) -> bool:
    """Validate, keep the best model, write the curve; True when early stopping says stop.

    Every rank updates the same state (the CER is all-reduced); only rank 0 writes."""
    cfg, state = run.cfg, run.state
    counts, val_loss = validate(run.net, run.model_config, run.val_loader, run.device, run.ctx, step=state.step,
                                skip_bad=run.cfg.skip_bad, named=run.val_skipped)
    too_short_ids = run.too_short.take()
    report_too_short(too_short_ids, "training", state.step)
    too_short = int(all_reduce_sums([len(too_short_ids)], run.ctx)[0])
    if run.replaces_earlier:  # this run's first validation: the earlier run's curve and snapshots go
        if history_file is not None:
            history_file.replace_earlier()
        run.replaces_earlier = False
    entry = _record(run, counts, val_loss, history_file, too_short)
    improved = counts.cer < state.best_cer
    if improved:
        training = {**run.model_config.training, "best_step": state.step, "val_cer": counts.cer,
                    "val_wer": counts.wer, "val_lines": counts.lines, "minutes": entry["minutes"]}
        if run.ctx.is_main:
            save_model_folder(run.out / "best", run.model, replace(run.model_config, training=training),
                              half=cfg.save_half)
        # Only once best/ holds it: a save that failed (a full disk) had left the state naming a
        # best that best/ did not hold, for the emergency checkpoint and every later validation.
        run.model_config.training = training
        state.best_cer, state.best_step, state.evals_since_best = counts.cer, state.step, 0
    else:
        state.evals_since_best += 1
    run.scheduler.validated(counts.cer)
    if run.ctx.is_main:
        # The snapshot first: killed between the two, the resumed run validates this step again
        # and writes it then (after last/, its snapshot had been missing for good).
        if cfg.keep_snapshots:
            _save_snapshot(run, counts.cer)
        run.save_last()
    barrier(run.ctx)
    if run.ctx.is_main:
        loss = "-" if run.running_loss is None else f"{run.running_loss:.3f}"  # none yet: a resumed validation
        tqdm.write(f"step {state.step}: train loss {loss}, val loss {val_loss:.3f}, "
                   f"val CER {counts.cer:.4f}, WER {counts.wer:.4f}{' *' if improved else ''}", file=sys.stderr)
    return cfg.patience > 0 and state.evals_since_best >= cfg.patience


def _record(run: TrainingRun, counts: ErrorCounts, val_loss: float, history_file, too_short: int) -> dict:
    """One validation's line of the learning curve: in the state and in history.jsonl."""
    state = run.state
    entry = {
        "step": state.step, "epoch": state.epoch, "minutes": round(state.elapsed_seconds / 60, 2),
        "train_loss": run.running_loss, "val_loss": val_loss, "val_cer": counts.cer, "val_wer": counts.wer,
        "lr": run.optimizer.param_groups[0]["lr"], "too_short_lines": too_short,
    }
    state.history.append(entry)
    if history_file is not None:
        history_file.add(entry)
    return entry


def drop_earlier_run(out: Path) -> None:
    """An earlier run's curve and snapshots, which a new run in its folder replaces (its best/ and
    last/ are replaced as the new run saves them)."""
    atomic_write_text(out / "history.jsonl", "")
    # Its snapshots too: hwr average over snapshots/step-* would mix the two runs.
    shutil.rmtree(out / "snapshots", ignore_errors=True)


class CurveFile:
    """<out>/history.jsonl, written a validation's line at a time (rank 0). A run replacing an
    earlier one in its folder leaves that run's curve and snapshots as they are until its own
    first validation (`replace_earlier`): an --overwrite run that failed on a damaged image at
    step 1 had wiped them, and its emergency checkpoint had replaced last/."""

    def __init__(self, out: Path, history: list[dict], replacing: bool):
        self.path = out / "history.jsonl"
        self._file = None
        if not replacing:
            # The curve as the checkpoint has it: a run killed after writing a validation's line
            # but before its checkpoint had left that line twice once resumed.
            atomic_write_text(self.path, "".join(json.dumps(entry) + "\n" for entry in history))
            self._file = self.path.open("a", encoding="utf-8")

    def replace_earlier(self) -> None:
        drop_earlier_run(self.path.parent)
        self._file = self.path.open("a", encoding="utf-8")

    def add(self, entry: dict) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _restore_snapshot(run: TrainingRun) -> None:
    """The snapshot of the step the resumed run stopped at, when the stop came while it was being
    written (a full disk, Ctrl-C): the weights are that step's, and no later step writes it."""
    last = run.state.history[-1]
    if not (run.out / "snapshots" / f"step-{last['step']}").is_dir():
        log.info("writing the snapshot of step %d, which the stopped run had not written", last["step"])
        _save_snapshot(run, last["val_cer"])


def _save_snapshot(run: TrainingRun, cer: float) -> None:
    """<out>/snapshots/step-N: this validation's weights, for hwr average (--keep-snapshots)."""
    step = run.state.step
    snapshot = replace(run.model_config, training={**run.model_config.training, "snapshot_step": step,
                                                    "snapshot_val_cer": cer})
    # Whole or not at all: written file by file, a kill had left a folder of weights without a
    # config.json that `hwr average snapshots/step-*` then refused.
    save_model_folder(run.out / "snapshots" / f"step-{step}", run.model, snapshot)
