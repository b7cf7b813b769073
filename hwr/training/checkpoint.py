"""Training checkpoints without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

`--resume` restores a `TrainerState` (optimizer, LR schedule, step, best CER); `--init-from`
loads only the weights of a model directory (see `hwr.recognition.model.load_model`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from hwr.fileio import atomic_write_bytes

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


@dataclass
class TrainerState:
    step: int = 0
    epoch: int = 0
    best_cer: float = float("inf")
    best_step: int = -1
    evals_since_best: int = 0
    elapsed_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


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
    json_path, tensor_path = directory / STATE_JSON, directory / STATE_TENSORS
    for path in (json_path, tensor_path):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no trainer state to resume from")
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    optimizer.load_state_dict(_join_optimizer_state(load_file(str(tensor_path)), payload["optimizer"]))
    if scheduler is not None and payload.get("scheduler"):
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(torch.tensor(payload["torch_rng"], dtype=torch.uint8))
    return TrainerState(**payload["trainer"])
