"""Training checkpoints: one atomic unit (staging folder, manifest, renames) and clear errors
for truncated or damaged state files. Not tested here: the training loop that calls them
(tests/training/test_train.py, tests/test_cli.py)."""
from __future__ import annotations

import json
import signal

import pytest
import torch

from hwr.recognition.charset import Charset
from hwr.recognition.model import ModelConfig, load_model
from hwr.recognition.nets import build_network, make_config
from hwr.training import checkpoint
from hwr.training.checkpoint import (
    MANIFEST,
    STATE_JSON,
    STATE_TENSORS,
    CheckpointError,
    TrainerState,
    load_trainer_state,
    recover_checkpoint,
    save_checkpoint,
)


def _run(seed: int = 0):
    """A tiny network with an optimizer that has taken a step (so it has state tensors)."""
    torch.manual_seed(seed)
    cfg = make_config("crnn", "tiny")
    net = build_network("crnn", cfg, len(Charset()))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    logits, _ = net(torch.rand(2, 1, cfg.line_height, 64), torch.tensor([64, 40]))
    logits.float().pow(2).mean().backward()
    optimizer.step()
    config = ModelConfig(arch="crnn", net=cfg.to_dict(), charset=Charset().to_json(),
                         normalize={"line_height": cfg.line_height})
    return net, optimizer, config


def _save(directory, step: int, seed: int = 0):
    net, optimizer, config = _run(seed)
    save_checkpoint(directory, net, config, optimizer, None, None, TrainerState(step=step))
    return net, optimizer


def _saved_at_step_5(tmp_path):
    last = tmp_path / "last"
    _save(last, step=5)
    return last


def _load_state(directory):
    _, optimizer, _ = _run()
    return load_trainer_state(directory, optimizer, None, None)


def test_checkpoint_round_trip_with_manifest(tmp_path):
    last = tmp_path / "last"
    _save(last, step=7)
    assert _load_state(last).step == 7
    manifest = json.loads((last / MANIFEST).read_text())["files"]
    assert set(manifest) == {"model.safetensors", "config.json", STATE_TENSORS, STATE_JSON}
    assert not list(tmp_path.glob(".last.*"))  # no staging or previous folder left behind


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    last = tmp_path / "last"
    old_net, _ = _save(last, step=1, seed=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if SIGINT/SIGKILL struck after the new weights were written

    monkeypatch.setattr(checkpoint, "save_trainer_state", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(last, step=2, seed=2)
    # The old weights still pair with the old optimizer state: nothing of the new save got in.
    net, _ = load_model(last)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), old_net.state_dict().values()))
    assert _load_state(last).step == 1
    recover_checkpoint(last)
    assert not list(tmp_path.glob(".last.saving-*"))


def test_a_kill_between_the_renames_is_recovered(tmp_path):
    last = tmp_path / "last"
    _save(last, step=3)
    last.rename(tmp_path / ".last.previous")  # the state right after the first rename
    recover_checkpoint(last)
    assert _load_state(last).step == 3


@pytest.mark.parametrize("name", [STATE_TENSORS, STATE_JSON])
@pytest.mark.parametrize("manifest", [True, False])
def test_truncated_state_files_are_named(tmp_path, name, manifest):
    last = _saved_at_step_5(tmp_path)
    if not manifest:
        (last / MANIFEST).unlink()  # a checkpoint from before manifests: the parsers must name it
    data = (last / name).read_bytes()
    (last / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.") + ": (truncated|damaged)"):
        _load_state(last)


def test_a_changed_file_is_caught_by_the_manifest(tmp_path):
    last = _saved_at_step_5(tmp_path)
    payload = json.loads((last / STATE_JSON).read_text())
    payload["trainer"]["step"] = 50000  # same kind of content, different bytes
    text = json.dumps(payload)
    (last / STATE_JSON).write_text(text)
    with pytest.raises(CheckpointError, match=f"{STATE_JSON}: (damaged|truncated or replaced)"):
        _load_state(last)


@pytest.mark.parametrize("field, value", [("step", "x"), ("best_cer", None), ("epoch_shape", ["a"])])
def test_a_trainer_state_of_wrong_types_is_named(tmp_path, field, value):
    last = _saved_at_step_5(tmp_path)
    (last / MANIFEST).unlink()  # edited by hand, or from before manifests: only the parser sees it
    payload = json.loads((last / STATE_JSON).read_text())
    payload["trainer"][field] = value
    (last / STATE_JSON).write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match=f"{STATE_JSON}: truncated or damaged trainer state .*{field}"):
        _load_state(last)


def test_a_trainer_state_nested_too_deeply_is_named(tmp_path):
    from bad_inputs import deeply_nested_json

    last = _saved_at_step_5(tmp_path)
    (last / MANIFEST).unlink()
    deeply_nested_json(last / STATE_JSON)  # was a RecursionError traceback
    with pytest.raises(CheckpointError, match=f"{STATE_JSON}: truncated or damaged trainer state .*nested too deeply"):
        _load_state(last)


@pytest.mark.parametrize("files", [[1, 2], {STATE_JSON: 5}, "all"])
def test_a_manifest_of_the_wrong_shape_is_named(tmp_path, files):
    last = _saved_at_step_5(tmp_path)
    (last / MANIFEST).write_text(json.dumps({"files": files}))
    with pytest.raises(CheckpointError, match=f"{MANIFEST}: damaged checkpoint manifest"):
        _load_state(last)


def test_missing_state_is_a_checkpoint_error(tmp_path):
    last = _saved_at_step_5(tmp_path)
    (last / STATE_TENSORS).unlink()
    with pytest.raises(CheckpointError, match="no trainer state"):
        _load_state(last)


@pytest.mark.parametrize("name", [STATE_TENSORS, STATE_JSON, "model.safetensors"])
def test_hwr_train_resume_names_a_truncated_file(pairs_dir, tmp_path, capsys, name):
    from hwr.cli import main

    out = tmp_path / "run"
    common = ["train", "--train", str(pairs_dir), "--val", str(pairs_dir), "--out", str(out), "--preset", "tiny",
              "--val-every", "2", "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    assert main(common + ["--max-steps", "2"]) == 0
    data = (out / "last" / name).read_bytes()
    (out / "last" / name).write_bytes(data[: len(data) // 3])
    capsys.readouterr()
    assert main(common + ["--max-steps", "4", "--resume"]) == 2  # a user error, reported; no traceback
    assert f"last/{name}" in capsys.readouterr().err


@pytest.mark.parametrize("saved_fused, resumed_fused", [(False, True), (True, False)])
def test_a_run_resumed_with_the_other_adam_kernel_keeps_its_own_and_steps(tmp_path, saved_fused, resumed_fused):
    # A CPU run's checkpoint resumed on a GPU (where make_optimizer picks the fused kernel),
    # and back. The fused kernel takes the AMP scaler's inf flag; loading the checkpoint's
    # groups as they were made the plain kernel receive it, and the first step failed.
    net, _, config = _run()
    saved = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=saved_fused)
    net(torch.rand(2, 1, 32, 64), torch.tensor([64, 40]))[0].float().pow(2).mean().backward()
    saved.step()
    save_checkpoint(tmp_path / "last", net, config, saved, None, None, TrainerState(step=3))
    resumed = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=resumed_fused)
    load_trainer_state(tmp_path / "last", resumed, None, None)
    assert bool(resumed.param_groups[0]["fused"]) == resumed_fused
    assert torch.equal(resumed.state[net.output.weight]["exp_avg"], saved.state[net.output.weight]["exp_avg"])
    scaler = torch.amp.GradScaler("cpu")
    resumed.zero_grad()
    scaler.scale(net(torch.rand(2, 1, 32, 64), torch.tensor([64, 40]))[0].float().pow(2).mean()).backward()
    scaler.unscale_(resumed)
    scaler.step(resumed)
    scaler.update()
    assert int(resumed.state[net.output.weight]["step"]) == 2


def test_a_ctrl_c_while_a_checkpoint_loads_is_a_stop_not_a_damaged_checkpoint(tmp_path, monkeypatch):
    last = _saved_at_step_5(tmp_path)

    def interrupted(*args, **kwargs):  # as safetensors reports a KeyboardInterrupt in its callbacks
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # swallowed in native code
        raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'")

    monkeypatch.setattr(checkpoint, "load_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _load_state(last)
