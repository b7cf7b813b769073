"""The training commands' settings: `hwr train` (TrainConfig), `hwr adapt` (AdaptConfig) and
`hwr average` (AverageConfig), each setting with its default and help.

Torch-free (the networks' presets come from `hwr.recognition.nets.configs`), so that `--help`
and a mistyped flag answer without importing torch; the commands themselves live in
`train`, `adapt` and `averaging`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hwr.config_args import check_at_least, check_fields, check_finite, setting
from hwr.errors import ConfigError
from hwr.recognition.nets.configs import CRNNConfig, MDLSTMConfig, RnnCell, make_config

# Choices, declared once: argparse `choices` and config-file checks come from these types.
Arch = Literal["crnn", "mdlstm"]
Optimizer = Literal["adam", "adamw", "rmsprop"]
Schedule = Literal["cosine", "plateau", "constant"]
LoaderStart = Literal["fork", "spawn"]


@dataclass
class TrainConfig:
    """Every training setting with its default and help; the CLI flags and --config files read these."""

    train: str = setting("synth:train:200000", help=(
        "training data: a folder of image + .gt.txt pairs, an IAM root, a .tsv manifest, PAGE XML, "
        "or synth:train:N for N synthetic lines rendered on the fly (see hwr.datasets.open_dataset)"))
    val: str = setting("synth:val:1000", help="validation data (same forms as --train); model selection uses its CER")
    train_split_file: str | None = setting(None, help=(
        "IAM split file (form or line ids, one per line) naming the lines of --train to train on: "
        "without it every line of lines.txt is trained on, the test lines too"))
    val_split_file: str | None = setting(None, help="IAM split file naming the lines of --val to validate on")
    out: str = setting("runs/hwr", help="output folder: best/ (best validation CER), last/ (resumable state), "
                                         "history.jsonl")
    arch: Arch = setting("crnn", help="network: crnn (CNN + BLSTM) or mdlstm")
    preset: str | None = setting(None, help=f"architecture preset: crnn {'|'.join(CRNNConfig.PRESETS)}, "
                                            f"mdlstm {'|'.join(MDLSTMConfig.PRESETS)}")
    line_height: int | None = setting(None, help="line image height in pixels; overrides the preset's")
    rnn_cell: RnnCell | None = setting(None, help="recurrent cell of the crnn: lstm, gru or rnn")
    net_options: dict | None = setting(None, help='any other network setting, e.g. {"rnn_hidden": 256}')
    charset: str = setting("ascii", help="output symbols: ascii, data (every character of the training text) "
                                         "or the path of a symbols file")
    batch_size: int = setting(24, help="lines per training batch (per process under torchrun)")
    optimizer: Optimizer = setting("adamw", help="adam, adamw or rmsprop")
    lr: float = setting(1e-3, help="peak learning rate (after warmup)")
    weight_decay: float = setting(1e-4, help="weight decay of adamw and rmsprop")
    schedule: Schedule = setting("cosine", help=(
        "learning rate after warmup: cosine (decay to 5% over --max-steps or --max-minutes), "
        "plateau (x --plateau-factor after --plateau-patience validations without a better CER) or constant"))
    plateau_factor: float = setting(0.5, help="--schedule plateau: the factor applied to the LR on a plateau")
    plateau_patience: int = setting(2, help="--schedule plateau: validations without a better CER before the LR drops")
    warmup_steps: int = setting(200, help="steps of linear LR warmup from 0")
    max_steps: int = setting(20000, help="training steps in all (a resumed run counts the earlier ones)")
    max_minutes: float = setting(0.0, help="stop after this many minutes (validating and saving first); 0: no limit")
    val_every: int = setting(500, help="steps between validations (and checkpoints)")
    val_batch_size: int = setting(32, help="lines per validation batch")
    patience: int = setting(0, help="stop after this many validations without a better CER; 0: never")
    grad_clip: float = setting(5.0, help="clip the gradient norm to this; 0: no clipping")
    seed: int = setting(1, help="random seed of initialisation, batching and augmentation")
    workers: int = setting(2, help="data loader processes; 0 loads in the training process")
    loader_start: LoaderStart = setting("fork", help=(
        "how loader processes start: fork (quick; safe while the training process has started no threads) or "
        "spawn (a fresh interpreter: safe in a process whose OpenCV or torch threads already run, as in hwr adapt)"))
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    amp: bool = setting(True, help="mixed precision (fp16 autocast) on CUDA; ignored on CPU")
    cpu_bf16: bool = setting(
        False, help="on a CPU with native bfloat16 (AVX512-BF16 or AMX): the training step under bfloat16 autocast, "
                    "validation in float32; 1.25x (small) to 1.4x (base) faster steps measured on a 2-core EPYC; "
                    "ignored elsewhere")
    resume: bool = setting(False, help="continue <out>/last with its network, optimizer and LR schedule")
    overwrite: bool = setting(False, help="start a new run in an --out that holds an earlier one, replacing its "
                                          "history, best/ and last/ (without it such a folder is refused)")
    init_from: str | None = setting(
        None, help="model folder or shipped model name whose weights initialise the network (fine-tuning)")
    skip_bad: bool = setting(False, help="skip unreadable images and malformed ground truth, report them, and go on")
    save_half: bool = setting(False, help="store the best model's weights as fp16")
    keep_snapshots: bool = setting(False, help="also keep the weights of every validation in "
                                               "<out>/snapshots/step-N, for hwr average")
    threads: int = setting(0, help="torch CPU threads; 0: torch's default")
    sync_batchnorm: bool = setting(False, help="under torchrun on CUDA: BatchNorm statistics over all processes' lines")
    teacher: str | None = setting(None, help=(
        "distil from this trained model (folder or shipped name; same charset, normalisation and frames "
        "per width): the loss adds the KL divergence from its per-frame symbol distributions"))
    distill_weight: float = setting(0.5, help="--teacher: loss = (1 - w) * CTC + w * distillation")
    distill_temperature: float = setting(1.0, help="--teacher: softmax temperature of both networks' distributions")

    def __post_init__(self) -> None:
        check_fields(self)  # library callers get the same checks as the command line
        check_at_least(self, 1, "batch_size", "val_batch_size", "val_every", "max_steps")
        check_at_least(self, 0, "workers", "threads")  # 0: no loader processes / torch's default threads
        check_finite(self, "lr", "weight_decay", "distill_weight", "distill_temperature", "grad_clip",
                     "plateau_factor", "max_minutes")
        check_at_least(self, 0, "lr", "weight_decay", "max_minutes", "warmup_steps", "patience", "plateau_patience")
        if self.line_height is not None:
            check_at_least(self, 8, "line_height")  # a conv stack needs rows to pool
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"--plateau-factor must be between 0 and 1, exclusive (got {self.plateau_factor})")
        if self.grad_clip < 0:
            raise ConfigError(f"--grad-clip must be 0 (no clipping) or above (got {self.grad_clip})")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ConfigError(f"--distill-weight must be between 0 and 1 (got {self.distill_weight})")
        if self.distill_temperature <= 0:
            raise ConfigError(f"--distill-temperature must be above 0 (got {self.distill_temperature})")
        # The network's settings checked at once, not after the data is read; a fault of
        # --net-options names the flag (and the config file that set it).
        own_flags = {**network_overrides(self), **dict.fromkeys(self.net_options or {})}  # theirs unset
        make_config(self.arch, self.preset, **own_flags)
        try:
            make_config(self.arch, self.preset, **network_overrides(self))
        except ConfigError as exc:
            raise ConfigError(f"--net-options: {exc}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def network_overrides(cfg: TrainConfig) -> dict:
    """The network settings the run's flags change from its preset."""
    overrides = {"line_height": cfg.line_height, **(cfg.net_options or {})}
    if cfg.rnn_cell:
        overrides["rnn_cell"] = cfg.rnn_cell
    return overrides


# The whole network's peak LR by the number of lines adapted on (held-out lines apart): LR_FEW_LINES
# up to FEW_LINES, LR_MORE_LINES from MORE_LINES, in between geometrically. Measured with
# bench_adapt.py (hwr-en-small stage 25, just-another-hand, --habits held, seed 2, 450 steps each
# on the slower 2-core VM, 2026-12-08; the hand's 120 unseen lines read greedily, at 2.5e-4 / 5e-4 /
# 1e-3): 16 lines 8.87% / **8.40%** / 8.79%, 40 lines 7.63% / 7.33% / **7.13%**, 160 lines 6.70% /
# 5.89% / **5.59%**; other hands +4 to +12%, the larger rate 1-3 points of that more (within the
# 10% but for 16 lines at 1e-3). Few lines gain nothing from a larger rate; more lines take more.
LR_FEW_LINES, FEW_LINES = 5e-4, 16
LR_MORE_LINES, MORE_LINES = 1e-3, 40


@dataclass
class AdaptConfig:
    """Settings of `hwr adapt`; defaults fit a 2-core laptop CPU (useful in 5 minutes)."""

    model: str | None = setting(
        None, help="base model: a folder, or the name of a model in models/ (default: the shipped one)")
    out: str = setting(
        "adapted-model", help="model folder to write (weights, config.json, MODEL_CARD.md, adapt-history.jsonl)")
    minutes: float = setting(5.0, help="wall-clock budget of the whole run, evaluation included")
    held_out: float = setting(0.2, help="share of the lines held out to measure before/after CER and stop early")
    min_held_out: int = setting(4, help="hold out at least this many lines")
    rehearsal: float = setting(
        0.3, help="share of each batch drawn from synthetic lines, so other hands are not forgotten")
    augment: float = setting(
        0.8, help="share of the user's lines shown with writer-like distortion (the rest as written)")
    recombine: float = setting(
        0.5, help="share of the user's lines replaced by new ones made of their words in other orders (cut where "
                  "the base model aligns the spaces), so the network learns the hand, not the lines' texts")
    unlabeled: list[str] = setting(
        default_factory=list, help="line images or pages (PDFs, TIFFs, images with --unlabeled-mode page: cut into "
                                   "lines as hwr transcribe cuts them) of the same hand without transcriptions (files, "
                                   "folders, list files or "
                                   "patterns): the base model reads them as the commands do (the LM search), and the "
                                   "share --pseudo-keep it reads most surely is learnt from as read (self-training). "
                                   "Give lines other than the labelled ones: copies of the same files and the pages "
                                   "of PAGE XML's labelled lines are left out, but a labelled line cut again would let "
                                   "the held-out CER read a line it learnt from")
    unlabeled_mode: Literal["line", "page", "auto"] = setting(
        "line", help="how each --unlabeled image is read: line: one line image; page: a page, cut into lines as hwr "
                     "transcribe --mode page cuts it; auto: as hwr transcribe reads it, a line image unless the "
                     "segmenter finds two lines or more, and then the surer of its two readings (as those lines, "
                     "whole). PDF and multi-page TIFF pages are always cut")
    pseudo_keep: float = setting(
        0.5, help="share of the --unlabeled lines learnt from: those read most surely (by the base model, and in "
                  "later rounds by the model the round before adapted)")
    pseudo_share: float = setting(
        0.5, help="share of the lines drawn for training (rehearsal aside) that are --unlabeled lines with the base "
                  "model's reading (always distorted); the rest are the labelled lines and their recombined words")
    pseudo_rounds: int = setting(
        2, help="rounds of self-training with --unlabeled: each round after the first reads those lines again with "
                "the model the round before adapted (read beside the base model with --beside), which misreads "
                "fewer of them, and trains on from it; the rounds share the minutes (1: read once, by the base "
                "model)")
    lr: float | None = setting(
        None, help=f"peak learning rate; default from the data size: {LR_FEW_LINES:g} up to {FEW_LINES} lines adapted "
                   f"on, {LR_MORE_LINES:g} from {MORE_LINES} ({LR_MORE_LINES:g} with --freeze-conv)")
    max_steps: int | None = setting(
        None, help="training steps at most (in each self-training round with --unlabeled); default from the data "
                   "size (the minutes cap it too)")
    batch_size: int = setting(16, help="lines per training step")
    val_every: int | None = setting(None, help="steps between held-out evaluations; default from the step budget")
    patience: int = setting(
        5, help="with --keep best: stop after this many held-out evaluations without improvement (0: never)")
    freeze_conv: bool = setting(
        False, help="train only the recurrent and output layers: steps cost about a quarter less and the stroke "
                    "features stay, but a hand unlike the base model's learns less (bench/bench_adapt.py)")
    freeze_norm: bool = setting(
        True, help="keep the base model's normalisation statistics (batch-norm running means and variances): "
                   "batches of one hand would otherwise re-centre the features every other hand is read with")
    keep: Literal["best", "last"] = setting(
        "last", help="weights to keep: last (the end of the LR decay) or best (the step that read the held-out lines "
                     "best; with a few held-out lines that choice is mostly noise)")
    # On by default since 2026-12-06: the base model now reads only the lines the adapted network is
    # unsure of (Recognizer.beside_below), so the pair reads at about 1.5x the time of the adapted
    # network alone (greedy and with the LM search, bench/bench_beside.py), not 2x, and without it
    # the forgetting check blends back half the change or more (README, "Adapt to your hand").
    beside: bool = setting(
        True, help="keep the base model beside the adapted one: each line the adapted network is unsure of is "
                   "also read by the base model, and the surer reading kept, so the adapted change can be kept "
                   "whole while other hands are read as before; reading takes about 1.5 times as long "
                   "(--no-beside: the adapted network alone, blended back if it forgets)")
    # 256, not 64: on 64 lines (about 120 wrong characters before) the 10% limit was as small as
    # the noise: the check once judged all of the change +14% and three quarters of it worse than
    # all, where 256 lines judged it +7% and other validation fonts read +2% (bench_adapt, seed
    # 1). Reading them costs about 120 of 1,650 steps in 5 minutes on 2 cores.
    check_lines: int = setting(
        256, help="synthetic lines in other hands (training fonts) read before and after, to check that adapting "
                  "did not cost them; 0: no check")
    max_forgetting: float = setting(
        0.1, help="the adapted weights may raise the CER of those lines by this share at most: otherwise they are "
                  "blended back towards the base model's (keeping 75, 50 or 25% of the change) until they do not")
    seed: int = setting(1, help="seed of the split, the augmentation and the rehearsal lines")
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto (the GPU when there is one)")
    threads: int = setting(0, help="torch CPU threads; 0: torch's default")
    # 0 by default: on 2 cores a loader process takes the network's CPU time (measured: 463
    # steps in 5 minutes with one, 482 without); with more cores it may pay (not measured). It starts with spawn,
    # not fork: adapt runs after this process has read lines with OpenCV and torch threads (the
    # before-CER, a UI server), and a forked copy of those thread pools can hang.
    workers: int = setting(
        0, help="processes that prepare training lines while the network trains (0: the training process itself)")
    skip_bad: bool = setting(
        False, help="leave out unreadable lines and lines with characters the model cannot write")
    overwrite: bool = setting(False, help="replace an existing model in --out")

    def __post_init__(self):
        check_fields(self)
        for name, value, top in (("held-out", self.held_out, 0.9), ("rehearsal", self.rehearsal, 0.9),
                                 ("augment", self.augment, 1.0), ("recombine", self.recombine, 1.0),
                                 ("pseudo-keep", self.pseudo_keep, 1.0), ("pseudo-share", self.pseudo_share, 1.0)):
            if not 0.0 <= value <= top:
                raise ConfigError(f"--{name} must be a share in [0, {top:g}], got {value}")
        if self.minutes <= 0:
            raise ConfigError(f"--minutes must be positive, got {self.minutes}")
        check_at_least(self, 1, "batch_size", "min_held_out", "pseudo_rounds")


@dataclass
class AverageConfig:
    """Settings of `hwr average` (CLI flags and --config files read these); the model folders
    to average are the command's positional arguments."""

    out: str = setting(help="model directory to write")
    half: bool = setting(False, help="store the weights as fp16")
    overwrite: bool = setting(False, help="replace an existing model in --out")

    def __post_init__(self) -> None:
        check_fields(self)
