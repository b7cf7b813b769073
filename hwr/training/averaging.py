"""Checkpoint averaging: one model whose weights are the mean of several snapshots.

Snapshots taken late in one training run (`hwr train --keep-snapshots`) sit around the same
minimum; their mean lies nearer its centre than any one of them, which usually reads unseen
data a little better (Polyak averaging; SWA, Izmailov et al. 2018). BatchNorm's running
statistics are averaged like the weights: an approximation that holds when the snapshots
come from one run at a low learning rate, as they should.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from hwr.errors import ConfigError, name_some
from hwr.recognition.imaging import NormalizeConfig
from hwr.recognition.model import ModelConfig, ModelError, beside_dir, load_model
from hwr.training.settings import AverageConfig  # noqa: F401 - its settings, imported from here before

log = logging.getLogger("hwr.training.averaging")


def _same_network(first: ModelConfig, other: ModelConfig) -> bool:
    def key(config: ModelConfig) -> tuple:
        # Normalisation by meaning: a config saved before a setting existed reads as that model was trained.
        # The network as built (net_config), not the raw dict: keys an architecture ignores (left
        # by an older version, or a hand edit) make no other network.
        return config.arch, config.net_config(), config.charset, NormalizeConfig.from_dict(config.normalize)

    return key(first) == key(other)


def _run_of(config: ModelConfig) -> tuple:
    """The training run a model came from, as its saved training settings name it (out, seed)."""
    settings = (config.training or {}).get("config") or {}
    return settings.get("out"), settings.get("seed")


def _fine_tuned_from(config: ModelConfig) -> Path | None:
    """The model a run started from (--init-from; hwr adapt's base model), resolved."""
    source = ((config.training or {}).get("config") or {}).get("init_from")
    return Path(source).resolve() if source else None


def _one_lineage(a: str | Path, a_config: ModelConfig, b: str | Path, b_config: ModelConfig) -> bool:
    """Whether one model was fine-tuned from the other, or both from one model: an adapted model
    and its own base had been warned of as another training run."""
    a_from, b_from = _fine_tuned_from(a_config), _fine_tuned_from(b_config)
    return (a_from == Path(b).resolve() or b_from == Path(a).resolve()
            or (a_from is not None and a_from == b_from))


def average_models(directories: Sequence[str | Path]) -> tuple[torch.nn.Module, ModelConfig]:
    """The mean of the models in `directories`, which must share architecture, charset and
    normalisation. Returns the network and the last model's config, whose training summary
    names the snapshots that went in."""
    if len(directories) < 2:
        raise ConfigError("averaging needs at least two model directories")
    seen: dict[Path, str | Path] = {}
    for directory in directories:
        # A snapshot named twice (overlapping globs) would silently count double in the mean.
        key = Path(directory).resolve()
        if key in seen:
            raise ConfigError(f"{directory}: given twice (also as {seen[key]}); name each snapshot once")
        seen[key] = directory
    net, config = load_model(directories[0])
    # Sum in float64 so that the order and number of snapshots do not round the mean.
    sums = {name: t.double() for name, t in net.state_dict().items() if t.is_floating_point()}
    for directory in directories[1:]:
        other, other_config = load_model(directory)
        if not _same_network(config, other_config):
            raise ModelError(f"{directory}: not the same network as {directories[0]} "
                             "(architecture, charset or normalisation differ); only snapshots of one run average")
        if _run_of(other_config) != _run_of(config) and not _one_lineage(directory, other_config, directories[0],
                                                                         config):
            # Allowed (stages fine-tuned from one model average too), but two runs trained apart
            # from scratch have unaligned units, and their mean reads nothing.
            log.warning("%s comes from another training run than %s (%s against %s): the mean is only "
                        "meaningful for models fine-tuned from one ancestor; check it with hwr eval",
                        directory, directories[0], _run_of(other_config), _run_of(config))
        for name, tensor in other.state_dict().items():
            if name in sums:
                sums[name] += tensor.double()
        config = other_config
    state = net.state_dict()
    for name, total in sums.items():
        state[name] = (total / len(directories)).to(state[name].dtype)
    # Integer buffers (BatchNorm's batch counters) are not weights: the last snapshot's stand.
    state.update({name: t for name, t in other.state_dict().items() if not t.is_floating_point()})
    net.load_state_dict(state)
    with_beside = [str(d) for d in directories if beside_dir(Path(d)) is not None]
    if with_beside:  # the mean is one network: no base model reads its doubtful lines again
        log.warning("%s read doubtful lines beside %s base model (beside/); the mean is written without it",
                    name_some(with_beside, 3), "its" if len(with_beside) == 1 else "their")
    training = {k: v for k, v in config.training.items() if not k.startswith("snapshot_")}
    training["averaged_from"] = [str(d) for d in directories]
    config.training = training
    return net, config
