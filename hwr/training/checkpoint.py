"""Training checkpoints without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

`--resume` restores a `TrainerState` (optimizer, LR schedule, step, best CER); `--init-from`
loads only the weights of a model directory (see `hwr.recognition.model.load_model`).

A checkpoint is one unit: `save_checkpoint` writes the model (weights, config) and the trainer
state (optimizer tensors, the rest) into a staging folder beside it, then a manifest naming
each file with its size and SHA-256, and only then swaps the folder into place by renames. A
kill at any moment leaves the previous checkpoint or the new one, never new weights with old
optimizer state; a kill between the two renames leaves `.<name>.previous`, which
`recover_checkpoint` puts back. Loading checks the manifest, so a file truncated or replaced
afterwards is named instead of failing deep inside safetensors or json.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from hwr.config_args import check_fields, parse_json
from hwr.fileio import atomic_write_bytes, file_sha256, recover_folder, utf8_named, written_whole
from hwr.interrupts import stops_held_back
from hwr.recognition.model import ModelError, save_model

log = logging.getLogger("hwr.training.checkpoint")

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
MANIFEST = "manifest.json"


class CheckpointError(ModelError):
    """A training checkpoint is missing, truncated or inconsistent; the message names the file."""


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    # Loader items (batches, or pools of batches) of this epoch already trained on: a resumed
    # run goes on from there instead of training the epoch's first part again.
    epoch_items: int = 0
    epoch_shape: list[int] = field(default_factory=list)  # train.epoch_shape when epoch_items was counted
    best_cer: float = float("inf")
    best_step: int = -1
    evals_since_best: int = 0
    elapsed_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    # The training loss's moving average at the save: a resumed run's first log lines and
    # validation record go on from it instead of showing no loss, then one batch's loss.
    loss_average: float | None = None


def _split_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state_dict -> flat tensors + JSON-able rest (param groups, scalars)."""
    tensors, scalars = {}, {}
    for param_id, slots in state_dict["state"].items():
        for name, value in slots.items():
            key = f"optim.{param_id}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    items = list(tensors.items()) + list(rest["scalars"].items())
    for key, value in items:
        if not key.startswith("optim."):
            continue
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


# How an optimizer steps, not what it learned: a run resumed on another device keeps its own
# choice (make_optimizer picks the fused kernel on a GPU only).
KERNEL_OPTIONS = ("fused", "foreach", "capturable")


def _with_this_runs_kernels(saved: dict, optimizer) -> dict:
    """The saved state with this optimizer's kernel options in place of the checkpoint's.

    Without this, a checkpoint from a CPU run resumed on a GPU turns the fused Adam back into
    the plain one, which still announces AMP support to the loss scaler and then fails its first
    step; and the emergency checkpoint would save that state again, failing every resume."""
    for group, current in zip(saved["param_groups"], optimizer.param_groups):
        group.update({key: current[key] for key in KERNEL_OPTIONS if key in current})
    return saved


def save_trainer_state(directory: Path, optimizer, scheduler, scaler, state: TrainerState) -> None:
    tensors, optim_rest = _split_optimizer_state(optimizer.state_dict())
    atomic_write_bytes(directory / STATE_TENSORS, save_safetensors(tensors))
    payload = {
        "trainer": asdict(state),
        "optimizer": optim_rest,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "torch_rng": torch.get_rng_state().tolist(),
    }
    atomic_write_bytes(directory / STATE_JSON, json.dumps(payload, default=float).encode("utf-8"))


def load_trainer_state(directory: Path, optimizer, scheduler, scaler) -> TrainerState:
    """Restore optimizer, schedule, scaler and RNG from `directory`; CheckpointError naming the
    file when a state file is missing, truncated, damaged or does not fit the optimizer."""
    directory = Path(directory)
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    for path in (json_path, tensor_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: no trainer state to resume from")
    verify_manifest(directory)
    try:
        payload = parse_json(json_path.read_text(encoding="utf-8"))
        trainer = TrainerState(**payload["trainer"])
        check_fields(trainer)  # a "step" that is no number would fail the training loop's first comparison
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{json_path}: truncated or damaged trainer state ({type(exc).__name__}: {exc}); "
                              "resume from an intact checkpoint or start without --resume") from None
    try:
        with stops_held_back():  # a Ctrl-C mid-load is no damaged checkpoint (hwr.interrupts)
            with utf8_named(tensor_path) as name:
                tensors = load_file(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{tensor_path}: truncated or damaged optimizer tensors ({exc}); "
                              "resume from an intact checkpoint or start without --resume") from None
    try:
        optimizer.load_state_dict(_with_this_runs_kernels(_join_optimizer_state(tensors, payload["optimizer"]),
                                                          optimizer))
        if scheduler is not None and payload.get("scheduler"):
            scheduler.load_state_dict(payload["scheduler"])
        if scaler is not None and payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
        torch.set_rng_state(torch.tensor(payload["torch_rng"], dtype=torch.uint8))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{directory}: trainer state does not fit this run's optimizer or schedule "
                              f"({type(exc).__name__}: {exc})") from None
    return trainer


# --- the checkpoint as one unit ------------------------------------------------------------

def save_checkpoint(directory: Path, net, model_config, optimizer, scheduler, scaler, state: TrainerState) -> None:
    """Weights, model config and trainer state, swapped into `directory` as one unit (module docstring)."""
    with written_whole(directory) as staging:
        save_model(staging, net, model_config)
        save_trainer_state(staging, optimizer, scheduler, scaler, state)
        write_manifest(staging)  # last: a folder with a manifest is complete


def recover_checkpoint(directory: Path) -> None:
    """Put back the previous checkpoint if a kill struck between save_checkpoint's two renames,
    and drop staging folders of saves that never finished."""
    if recover_folder(directory):
        log.warning("%s: restored the previous checkpoint (the last save was interrupted)", directory)


def write_manifest(directory: Path) -> None:
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    entries = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files}
    atomic_write_bytes(directory / MANIFEST, json.dumps({"files": entries}, indent=1).encode("utf-8"))


def verify_manifest(directory: Path) -> None:
    """Every file the manifest names is there, whole and unchanged; CheckpointError naming the
    first that is not. Checkpoints written before manifests existed pass unchecked."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return
    try:
        entries = parse_json(path.read_text(encoding="utf-8"))["files"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint manifest ({exc})") from None
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise CheckpointError(f"{path}: damaged checkpoint manifest (files must map each name to its bytes "
                              "and sha256)")
    for name, expected in entries.items():
        file = Path(directory) / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing from the checkpoint (its manifest lists it)")
        size = file.stat().st_size
        if size != expected.get("bytes"):
            raise CheckpointError(f"{file}: truncated or replaced ({size} bytes, the checkpoint wrote "
                                  f"{expected.get('bytes')})")
        if file_sha256(file) != expected.get("sha256"):
            raise CheckpointError(f"{file}: damaged (its SHA-256 differs from the one the checkpoint wrote)")
