"""CTC decoding: network scores -> text with per-character confidences and frames.

Greedy (best-path) decoding takes the most likely label per frame, merges repeats and drops
blanks (Graves et al., 2006). A character's confidence is the highest posterior among the
frames of its run; the line confidence is the mean over characters, so one doubtful
character lowers the line without a long line being penalised for its length.

Beam decoding (`BeamDecoder`) searches with an n-gram language model through torchaudio's
`ctc_decoder` (flashlight's decoder with KenLM), in one of two modes:
- "char": lexicon-free; the LM is a character n-gram, the space is its word separator "|".
  Reads anything the charset can write; the LM only re-ranks spellings.
- "word": lexicon-constrained; the LM is a word n-gram over `hwr.recognition.lexicon.words` and each
  word must be spelled as in the lexicon. Out-of-vocabulary words are read through the
  lexicon's <oov> entry, spelled as every single symbol: an unknown word is read letter by
  letter, each letter paying the LM's <unk> cost plus the word score (flashlight's own
  `unk_score` path only covers prefixes of lexicon words, so it is left off).
Both modes then force-align the text they chose (hwr.recognition.align) for character frames and
confidences, so greedy and beam outputs carry the same fields with the same meaning.

"auto" (`auto_decoder`, the default of every command that reads) is the character-mode search
with the shipped LM for a model of printable ASCII, greedy for any other charset.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hwr.config_args import check_at_least, check_finite
from hwr.errors import ConfigError, MissingFileError
from hwr.recognition.align import align_labels
from hwr.recognition.charset import BLANK_ID, Charset
from hwr.recognition.lexicon import BLANK_TOKEN, SPACE_TOKEN, UNK_WORD, decoder_tokens, read_lexicon
from hwr.recognition.lm_files import (
    KIND_NAMES,
    check_arpa_counts,
    check_arpa_start,
    check_lm_unit,
    check_readable_file,
    kenlm_reason,
)
from hwr.recognition.native_chatter import kenlm_chatter_held_back
from hwr.records import Recognition

log = logging.getLogger("hwr.recognition.decode")


def copy_to_host_async(*tensors: torch.Tensor) -> tuple[torch.cuda.Event, list[torch.Tensor]]:
    """CUDA tensors (on one GPU) -> pinned host copies queued on that GPU's current stream, and
    the event after them: the host tensors hold their values once the event has completed."""
    host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) for t in tensors]
    copied = torch.cuda.Event()
    # On the tensors' own GPU's stream, where the copies run: a bare record() marks the current
    # device's stream, and on cuda:1 the event completed before the copies had (host buffers read
    # empty).
    copied.record(torch.cuda.current_stream(tensors[0].device))
    return copied, host


def greedy_line_confidence(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N,) the line confidence greedy decoding gives each line, computed where the scores are:
    the mean over its characters of each character's best frame (a run of one label), or for a
    line of blanks only the mean best probability of its frames (GreedyDecoder's Recognition
    .confidence, in float32)."""
    best_logp, best = log_probs.detach().float().max(dim=2)  # (T, N)
    frames = best.shape[0]
    valid = torch.arange(frames, device=best.device)[:, None] < lengths.to(best.device)[None, :]
    prob = torch.where(valid, best_logp.exp(), 0.0)
    starts = valid.clone()
    starts[1:] &= best[1:] != best[:-1]
    run = (starts.long().cumsum(0) - 1).clamp(min=0)  # each frame's run, counted down the line
    # Row r of these holds run r's best probability and whether it is a character.
    run_best = torch.zeros_like(prob).scatter_reduce(0, run, prob, reduce="amax")
    is_char = torch.zeros_like(prob).scatter_reduce(0, run, ((best != BLANK_ID) & valid).float(), reduce="amax")
    chars, counted = is_char.sum(0), valid.sum(0)
    char_mean = (run_best * is_char).sum(0) / chars.clamp(min=1)
    blank_mean = prob.sum(0) / counted.clamp(min=1)
    return torch.where(chars > 0, char_mean, blank_mean)


class GreedyDecoder:
    name = "greedy"

    def __init__(self, charset: Charset):
        self.charset = charset

    def describe(self) -> dict:
        """What reports record of how lines were read (eval's JSON, HTML and summary)."""
        return {"decoder": self.name}

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor, frame_width: float = 1.0) -> list[Recognition]:
        """log_probs (T, N, C) log-softmax scores; lengths (N,) valid frames per line."""
        return self.start(log_probs, lengths, frame_width)()

    def start(self, log_probs: torch.Tensor, lengths: torch.Tensor,
              frame_width: float = 1.0) -> Callable[[], list[Recognition]]:
        """Queue the device half of decoding (each frame's best label and its probability) and
        return the host half, to call later. On CUDA the best path crosses to pinned host
        memory without waiting: a reader queues the next batch's network before it calls the
        host half, which then waits only for this batch's copy and merges runs while the GPU
        reads on (Recognizer.read_batches)."""
        best_logp, best = log_probs.detach().float().max(dim=2)
        best_prob, best = best_logp.exp(), best.to(torch.int32)
        if not best.is_cuda:
            return lambda: self._decode_host(best.numpy(), best_prob.numpy(), lengths.cpu().numpy(), frame_width)
        copied, host = copy_to_host_async(best, best_prob, lengths)

        def finish() -> list[Recognition]:
            copied.synchronize()
            return self._decode_host(*(t.numpy() for t in host), frame_width)
        return finish

    def _decode_host(self, best: np.ndarray, best_prob: np.ndarray, lengths: np.ndarray,
                     frame_width: float) -> list[Recognition]:
        """best, best_prob (T, N); lengths (N,). The runs of one label are found for the whole
        batch at once (Python per line only to build its Recognition): a non-blank run is one
        character, its confidence the run's best frame, its frames the run's first and last;
        blank runs separate repeated letters."""
        frames, count = best.shape
        lengths = np.minimum(lengths.astype(np.int64), frames)
        labels = np.ascontiguousarray(best.T)  # (N, T): each line's frames contiguous
        probs = np.ascontiguousarray(best_prob.T)
        valid = np.arange(frames) < lengths[:, None]
        run_start = valid.copy()
        run_start[:, 1:] &= labels[:, 1:] != labels[:, :-1]
        starts = np.flatnonzero(run_start)  # flat positions; each line's first frame starts a run
        if len(starts):
            ends = np.append(starts[1:], 0) - 1
            line_of_run = starts // frames
            # A run ends before the next run's start, or at its line's last valid frame.
            last = line_of_run * frames + lengths[line_of_run] - 1
            ends = np.where((ends < starts) | (ends > last), last, ends)
            # Each segment of reduceat runs to the next start: past a line's last valid frame it
            # covers padding frames, zeroed so they never win the maximum.
            confs_all = np.maximum.reduceat(np.where(valid, probs, 0).ravel(), starts)
            chars = labels.ravel()[starts] != BLANK_ID
        else:
            ends = line_of_run = confs_all = chars = starts
        char_runs = np.flatnonzero(chars)
        char_line = line_of_run[char_runs]
        bounds = np.searchsorted(char_line, np.arange(count + 1))
        ids_all = labels.ravel()[starts[char_runs]].tolist()
        confs_char = confs_all[char_runs].tolist()
        first = (starts[char_runs] % frames).tolist()
        final = (ends[char_runs] % frames).tolist()
        symbols = self.charset.symbols
        out = []
        for n in range(count):
            a, b = bounds[n], bounds[n + 1]
            confs = confs_char[a:b]
            if confs:
                line_conf = float(np.mean(confs))
            else:  # empty output: as sure as the blank frames are
                line_conf = float(np.mean(probs[n, : lengths[n]])) if lengths[n] else 0.0
            out.append(Recognition(
                text="".join([symbols[i - 1] for i in ids_all[a:b]]),
                confidence=line_conf,
                char_confidences=confs,
                char_frames=list(zip(first[a:b], final[a:b])),
                frame_width=frame_width,
            ))
        return out


def default_lm_dir() -> Path:
    """The shipped LMs: data/lm under hwr's data folder (see hwr.assets)."""
    from hwr.assets import data_dir

    return data_dir() / "lm"


# The shipped models (see data/lm/README.md for how they were built).
DEFAULT_FILES = {
    "char": {"lm": "char-6gram.arpa.gz", "lexicon": None},
    "word": {"lm": "word-3gram.arpa.gz", "lexicon": "lexicon.txt.gz"},
}


# Lexicons from this size on are announced: their word search takes a while to build.
LARGE_LEXICON_WORDS = 200_000
# A decoder build this slow (or slower) reports its time, not only in debug logs.
SLOW_BUILD_SECONDS = 10.0
MAX_BEAM = 2**31 - 1
MAX_SCORE = 1000.0


@dataclass
class BeamOptions:
    """Search settings of one mode; the defaults were tuned on synthetic validation lines
    (bench/bench_decode.py --tune), never on test data.

    lm_weight scales the LM's log10 scores against the network's natural-log posteriors;
    word_score is added per word (lexicon mode), sil_score per word separator. Both counter
    the LM's bias towards fewer, shorter units. blank_penalty is subtracted from the blank's
    log-posterior during the search only (icefall's "blank penalty"): the lexicon-free
    decoder has no per-character insertion score, and a young or unsure network, whose
    characters barely beat the blank, otherwise loses them to the LM's cost per character."""

    beam_size: int = 32
    beam_size_token: int = 12  # tokens tried per frame: the network's top few are enough
    beam_threshold: float = 20.0  # drop hypotheses this far (nats) below the best
    lm_weight: float = 0.3
    word_score: float = 0.0
    sil_score: float = 0.0
    blank_penalty: float = 0.0

    def __post_init__(self) -> None:
        # flashlight takes anything: a beam of 0 reads every line as "" and a NaN weight
        # scores every hypothesis NaN, both without a word. Checked here, where every
        # decoder's settings (CLI, --config, UI, library) pass.
        check_at_least(self, 1, "beam_size", "beam_size_token")
        check_finite(self, "beam_threshold", "lm_weight", "word_score", "sil_score", "blank_penalty")
        check_at_least(self, 0, "beam_threshold")  # below 0 every hypothesis is dropped: "" for every line
        for name in ("beam_size", "beam_size_token"):  # flashlight takes a C int: 2**31 was a traceback
            if getattr(self, name) > MAX_BEAM:
                raise ConfigError(f"--{name.replace('_', '-')} must be at most {MAX_BEAM}, got {getattr(self, name)}")
        for name in ("lm_weight", "word_score", "sil_score", "blank_penalty"):
            # The tuned values lie within a few units; 1e30 read every line as garbage, exit 0.
            if abs(getattr(self, name)) > MAX_SCORE:
                raise ConfigError(f"--{name.replace('_', '-')} must be between {-MAX_SCORE:g} and {MAX_SCORE:g}, "
                                  f"got {getattr(self, name):g}")


# Character mode: tuned with `bench/bench_decode.py --tune --tune-modes beam-char` on 200
# synthetic validation lines (seed 7) with the shipped hwr-en-small stage 14 (greedy CER 0.047
# there): the best CER + WER of the grid (0.035 + 0.134), and lm_weight 2.0 and 2.5 beyond it
# were worse. A beam of 16 with the network's 4 likeliest characters per frame and a 10-nat
# threshold reads as well as 32, 12 and 20 (0.0368 against 0.0364 at the old weights) about six
# times as fast (250-300 lines/s on one thread), which is what lets it be the default decoder.
# With the character 6-gram (shipped 2026-12-05 in place of a 5-gram with higher cut-offs) the
# weight was checked again on 600 harder-set lines of seed 5 with stage 23: 1.0, 1.2 and 1.5 read
# them at 3.31-3.32% (the 5-gram at 1.5: 3.61%), so it stays 1.5.
# Word mode: tuned the same way on stage 4 (greedy CER ~0.042). Its word score stays small: the
# letter-by-letter path for unknown words counts each letter as a word, so a large bonus lets it
# outbid real words (3.0 doubled the CER on the stage-2 model). Retune when the shipped model
# changes.
MODE_DEFAULTS = {
    "char": BeamOptions(beam_size=16, beam_size_token=4, beam_threshold=10.0, lm_weight=1.5, sil_score=0.0,
                        blank_penalty=2.0),
    "word": BeamOptions(lm_weight=1.0, word_score=1.5, blank_penalty=0.0),
}


# A frame whose blank is this sure (log-probability; p > 0.999) carries no choice for the search.
SURE_BLANK_LOG_PROB = math.log(0.999)


def squeeze_sure_blanks(emissions: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """emissions (N, T, C) with each run of sure-blank frames cut to its first frame, and the
    new lengths (a copy: the caller may change it). Nearly half of a line's frames are such runs
    (the gaps between letters and words); the beam search costs the same for each of them and
    in practice extends every hypothesis by a blank there, so cutting the run to one frame (which
    still separates a doubled letter) reads the same text at about 1.3 times the speed (the
    harder set: one character of 22,095 read otherwise)."""
    n, t, c = emissions.shape
    sure = emissions[:, :, BLANK_ID] > SURE_BLANK_LOG_PROB
    repeat = torch.zeros_like(sure)
    repeat[:, 1:] = sure[:, 1:] & sure[:, :-1]
    inside = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
    keep = inside & ~repeat
    kept = keep.sum(dim=1).to(torch.int32)
    out = torch.zeros((n, max(1, int(kept.max())) if n else 1, c), dtype=emissions.dtype)
    for i in range(n):
        out[i, : int(kept[i])] = emissions[i][keep[i]]
    return out, kept


class BeamDecoder:
    """CTC beam search with an n-gram LM (mode "char" or "word", see the module docstring).

    lm: ARPA file, "none" for a plain beam search, or None for the shipped default of the
    mode. lexicon: lexicon file (word mode); given without a mode it selects word mode.
    Unset search options take the mode's tuned defaults (MODE_DEFAULTS)."""

    name = "beam"

    def __init__(self, charset: Charset, mode: str | None = None, lm: str | None = None,
                 lexicon: str | None = None, **options):
        mode = mode or ("word" if lexicon else "char")
        if mode not in MODE_DEFAULTS:
            raise ConfigError(f"unknown beam mode {mode!r}; expected 'char' or 'word'")
        if mode == "char" and lexicon:  # had been ignored, a lexicon that does not exist too
            raise ConfigError("--lexicon is for the word search (--decoder beam-word or beam); beam-char reads "
                              "characters with a character LM and no lexicon")
        unknown = set(options) - set(BeamOptions.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown beam decoder options {sorted(unknown)}")
        self.charset = charset
        self.mode = mode
        defaults = MODE_DEFAULTS[mode]
        self.options = BeamOptions(**{k: (options[k] if options.get(k) is not None else getattr(defaults, k))
                                      for k in BeamOptions.__dataclass_fields__})
        if mode == "char" and options.get("word_score") is not None:  # had been ignored
            raise ConfigError("--word-score is for the word search (--decoder beam-word): the character search "
                              "adds no score per word (--sil-score is its score per word separator)")
        self.lm_path = self._resolve("lm", lm)
        if self.lm_path is None and options.get("lm_weight") is not None:  # had been ignored
            raise ConfigError("--lm-weight weighs a language model's scores, and --lm none searches without one")
        self.lexicon_path = self._resolve("lexicon", lexicon) if mode == "word" else None
        if mode == "word" and self.lexicon_path is None:
            raise ConfigError("word mode needs a lexicon")
        if self.lm_path:
            check_arpa_start(self.lm_path)
            check_arpa_counts(self.lm_path)
            check_lm_unit(self.lm_path, mode, self.charset)
        self._decoder = self._build()

    def describe(self) -> dict:
        """What reports record of how lines were read: the mode, the LM and lexicon files, the
        search settings (a figure read with another LM or weight is another figure)."""
        return {"decoder": self.name, "mode": self.mode,
                "lm": Path(self.lm_path).name if self.lm_path else None,
                "lexicon": Path(self.lexicon_path).name if self.lexicon_path else None, **asdict(self.options)}

    def spec(self) -> dict:
        """Plain values another process builds this same decoder from (`from_spec`; the search
        workers of hwr.recognition.search_workers): the files are resolved and checked here."""
        # Without the settings this search does not use, which the constructor refuses.
        unused = unused_settings(self.mode == "char", bool(self.lm_path))
        options = {key: value for key, value in asdict(self.options).items() if key not in unused}
        return {"symbols": list(self.charset.symbols), "mode": self.mode, "lm": self.lm_path or "none",
                "lexicon": self.lexicon_path, **options}

    @classmethod
    def from_spec(cls, spec: dict) -> BeamDecoder:
        spec = dict(spec)
        return cls(Charset(spec.pop("symbols")), **spec)

    def _resolve(self, kind: str, value: str | None) -> str | None:
        if value is not None:
            if value.lower() == "none" and kind == "lm":
                return None
            check_readable_file(value, kind)
            return str(value)
        name = DEFAULT_FILES[self.mode][kind]
        if name is None:
            return None
        path = default_lm_dir() / name
        if not path.is_file():
            raise MissingFileError(f"{path}: shipped {KIND_NAMES[kind]} file not found (pass --{kind})")
        return str(path)

    def _build(self):
        from torchaudio.models.decoder import ctc_decoder

        tokens = decoder_tokens(self.charset)
        # Without a space symbol there is no word separator; the blank stands in for it.
        sil = SPACE_TOKEN if SPACE_TOKEN in tokens else BLANK_TOKEN
        o = self.options
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            lexicon = None
            if self.lexicon_path:
                # flashlight reads plain-text lexicons only (the shipped one is gzipped) and fails
                # on a bad line without naming it: it gets the checked, spellable entries.
                lexicon = os.path.join(tmp, "lexicon.txt")
                entries = read_lexicon(self.lexicon_path, self.charset)
                if len(entries) >= LARGE_LEXICON_WORDS:
                    # flashlight's trie of millions of words takes minutes and gigabytes to build (906,524
                    # random words: 45 s, 2.7 GB), with nothing on the screen meanwhile.
                    log.info("%s: building the word search over %s words (about a minute and 3 GB per million)",
                             self.lexicon_path, f"{len(entries):,}")
                Path(lexicon).write_text("\n".join(entries) + "\n", encoding="utf-8")
            lm_dict = None
            if self.mode == "char" and self.lm_path:
                # Trap: lexicon-free flashlight scores the LM with the *token* index, but
                # torchaudio builds its word dictionary from a Python dict whose order differs
                # from the token order, so every character would be scored as another one.
                # A word list in token order keeps the two indices the same.
                lm_dict = os.path.join(tmp, "lm_dict.txt")
                Path(lm_dict).write_text("\n".join(tokens + [UNK_WORD]) + "\n", encoding="utf-8")
            try:
                with kenlm_chatter_held_back():
                    decoder = ctc_decoder(
                        lexicon=lexicon, tokens=tokens, lm=self.lm_path, lm_dict=lm_dict, nbest=1,
                        beam_size=o.beam_size, beam_size_token=min(o.beam_size_token, len(tokens)),
                        beam_threshold=o.beam_threshold, lm_weight=o.lm_weight, word_score=o.word_score,
                        sil_score=o.sil_score, blank_token=BLANK_TOKEN, sil_token=sil, unk_word=UNK_WORD)
            except (RuntimeError, UnicodeDecodeError) as exc:
                # The lexicon was checked above, so what fails here is KenLM reading the LM.
                raise ConfigError(f"{self.lm_path}: cannot load the language model: {kenlm_reason(exc)}") from None
        seconds = time.perf_counter() - started
        log.log(logging.INFO if seconds >= SLOW_BUILD_SECONDS else logging.DEBUG,
                "beam decoder (%s) ready in %.1f s", self.mode, seconds)
        return decoder

    def start(self, log_probs: torch.Tensor, lengths: torch.Tensor,
              frame_width: float = 1.0) -> Callable[[], list[Recognition]]:
        """Queue the scores' copy to the host and return the search, to call later (as
        GreedyDecoder.start: on CUDA the copy does not wait for the GPU)."""
        if not log_probs.is_cuda:
            return lambda: self.decode(log_probs, lengths, frame_width)
        copied, (host_scores, host_lengths) = copy_to_host_async(log_probs.detach().float(), lengths)

        def finish() -> list[Recognition]:
            copied.synchronize()
            return self.decode(host_scores, host_lengths, frame_width)
        return finish

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor, frame_width: float = 1.0) -> list[Recognition]:
        """log_probs (T, N, C) log-softmax scores; lengths (N,) valid frames per line."""
        emissions = log_probs.detach().float().cpu().transpose(0, 1).contiguous()
        lengths = lengths.detach().cpu().to(torch.int32)
        search, search_lengths = squeeze_sure_blanks(emissions, lengths)
        if self.options.blank_penalty:
            search[:, :, BLANK_ID] -= self.options.blank_penalty
        hypotheses = self._decoder(search, search_lengths)
        # The text's frames and confidences come from the whole line, not the squeezed one.
        return [self._recognition(emissions[n, : int(lengths[n])], hyps, frame_width)
                for n, hyps in enumerate(hypotheses)]

    def _recognition(self, emissions: torch.Tensor, hyps, frame_width: float) -> Recognition:
        labels = self._clean_labels(hyps[0].tokens.tolist()) if hyps else []
        aligned = align_labels(emissions, labels)
        if aligned is None:  # cannot happen for a decoded path; kept as a guard, not a crash
            log.warning("forced alignment failed for %r; falling back to greedy", self.charset.decode(labels))
            return GreedyDecoder(self.charset).decode(emissions.unsqueeze(1), torch.tensor([emissions.shape[0]]),
                                                      frame_width)[0]
        confs = [a.confidence for a in aligned]
        if confs:
            line_conf = float(np.mean(confs))
        else:  # empty output: as sure as the frames are blank
            line_conf = float(emissions[:, BLANK_ID].exp().mean()) if emissions.shape[0] else 0.0
        return Recognition(
            text=self.charset.decode(labels), confidence=line_conf, char_confidences=confs,
            char_frames=[(a.first, a.last) for a in aligned], frame_width=frame_width)

    def _clean_labels(self, labels: list[int]) -> list[int]:
        """Drop blanks the search may report, and the word separator at the line's ends or
        doubled (a separator is a boundary, not content)."""
        space = self.charset.encode(" ")[0] if " " in self.charset else None
        out: list[int] = []
        for label in labels:
            if label == BLANK_ID or (label == space and (not out or out[-1] == space)):
                continue
            out.append(label)
        while out and out[-1] == space:
            out.pop()
        return out


def _beam_mode(mode: str):
    def factory(charset: Charset, **options) -> BeamDecoder:
        return BeamDecoder(charset, mode=mode, **options)

    return factory


def auto_decoder(charset: Charset, **options):
    """The default reading: beam search with the shipped character LM when the model writes only
    characters that LM was built over (printable ASCII: the shipped models do), since it reads
    about a quarter fewer characters wrong (README, "Decoding"); greedy for a model of other
    characters, which an English LM would push towards English spellings. Beam options given
    (an LM of the user's own, a beam width) ask for the beam search whatever the charset. A missing
    shipped LM reads greedily with a warning (explicit `--decoder beam` fails on it instead)."""
    if options:
        return BeamDecoder(charset, **options)
    # Any of printable ASCII, in any order: a model trained with --charset data on English text
    # writes a sorted part of it, and had been read greedily as if it wrote other characters.
    if set(charset.symbols) <= set(Charset().symbols):
        shipped_lm = default_lm_dir() / DEFAULT_FILES["char"]["lm"]
        if shipped_lm.is_file():
            return BeamDecoder(charset)
        # A source checkout without data/, or an install that lost it: reading on, greedily, beats
        # refusing every image; `--decoder beam` still fails on the missing file.
        log.warning("%s: the shipped language model is missing; greedy decoding (--decoder beam --lm FILE "
                    "searches with one of your own)", shipped_lm)
        return GreedyDecoder(charset)
    log.info("the shipped language model covers printable ASCII and this model writes other characters: greedy "
             "decoding (--decoder beam --lm FILE searches with a language model of your own)")
    return GreedyDecoder(charset)


DECODERS = {
    # The default of every command that reads (RecognizerSettings.decoder).
    "auto": auto_decoder,
    "greedy": GreedyDecoder,
    # "beam" picks its mode from its options (a lexicon means word mode) and defaults to char.
    "beam": BeamDecoder,
    "beam-char": _beam_mode("char"),
    "beam-word": _beam_mode("word"),
}


def check_decoder_name(name: str) -> None:
    if name not in DECODERS:
        raise ConfigError(f"unknown decoder {name!r}; available: {sorted(DECODERS)}")


def check_decoder_settings(settings) -> None:
    """The decoder name and search numbers of a RecognizerSettings, checked when parsed: the UI
    builds its decoders only when a request comes, so `hwr ui --lm-weight nan` would otherwise
    serve, then fail every beam request."""
    check_decoder_name(settings.decoder)
    numbers = {name: getattr(settings, name) for name in BeamOptions.__dataclass_fields__
               if getattr(settings, name, None) is not None}
    BeamOptions(**numbers)  # raises ConfigError naming the flag


def make_decoder(name: str, charset: Charset, **options):
    """A decoder by name; options that are None mean "the decoder's default"."""
    check_decoder_name(name)
    options = {k: v for k, v in options.items() if v is not None}
    if name == "greedy" and options:
        raise ConfigError(f"decoder options {sorted(options)} apply to beam decoders only")
    return DECODERS[name](charset, **options)


# Settings that config dataclasses (TranscribeConfig, EvalConfig) carry for the decoder; None
# means "the decoder's default", so the tuned defaults live in one place (MODE_DEFAULTS).
DECODER_OPTION_FIELDS = ("lm", "lexicon", "beam_size", "lm_weight", "word_score", "sil_score", "blank_penalty")


def usable_options(name: str, options: dict) -> dict:
    """Of `options` (decoder_options), those the decoder `name` reads with: none for greedy, no
    word score or lexicon for the character search, no LM weight without an LM. For settings
    shared by readings with different decoders (the web app's server-wide search settings,
    `hwr eval --compare-decoder`); a single reading refuses the others (BeamDecoder)."""
    if name == "greedy":
        return {}
    char_search = name == "beam-char" or (name in ("beam", "auto") and not options.get("lexicon"))
    unused = unused_settings(char_search, str(options.get("lm", "")).lower() != "none")
    return {key: value for key, value in options.items() if key not in unused}


def unused_settings(char_search: bool, with_lm: bool) -> set[str]:
    """The search settings a beam search of that kind does not use: the word score and lexicon
    in the character search, the LM weight without an LM."""
    return ({"word_score", "lexicon"} if char_search else set()) | (set() if with_lm else {"lm_weight"})


def decoder_options(config) -> dict:
    """The decoder options set on a config object (unset ones are left to the decoder)."""
    return {name: getattr(config, name) for name in DECODER_OPTION_FIELDS if getattr(config, name, None) is not None}


def describe_decoding(decoding: dict) -> str:
    """A decoder's `describe()` (or a Recognizer's `describe_reading()`) in words, for a printed
    summary or an HTML row."""
    if decoding.get("decoder") != "beam":
        words = decoding.get("decoder", "?")
    else:
        # Without an LM its weight weighs nothing: not shown (describe() keeps it, for the
        # settings record that --resume compares).
        lm = (f"{decoding['lm']}, LM weight {decoding['lm_weight']:g}" if decoding.get("lm") else "no LM")
        words = f"beam search ({decoding['mode']} mode, {lm}, beam {decoding['beam_size']})"
    if decoding.get("width_variants"):
        widths = ", ".join(f"{f:g}" for f in decoding["width_variants"])
        words += (f"; lines read with confidence below {decoding['width_variants_below']:g} read again at "
                  f"{widths} times their width")
    return words
