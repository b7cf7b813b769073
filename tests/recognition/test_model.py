import json
import signal
import time

import numpy as np
import pytest
import torch

from hwr.recognition.charset import Charset
from hwr.recognition.feed import lines_to_device
from hwr.recognition.imaging import ImageError
from hwr.recognition.model import ModelConfig, ModelError, Recognizer, load_model, save_model
from hwr.recognition.nets import build_network, make_config


def _tiny_model(tmp_path, half=False):
    torch.manual_seed(0)
    cfg = make_config("crnn", "tiny")
    net = build_network("crnn", cfg, len(Charset()))
    config = ModelConfig(arch="crnn", net=cfg.to_dict(), charset=Charset().to_json(),
                         normalize={"line_height": cfg.line_height})
    return net, save_model(tmp_path / "m", net.eval(), config, half=half)


def test_save_load_roundtrip_same_outputs(tmp_path):
    net, path = _tiny_model(tmp_path)
    loaded, config = load_model(path)
    x = torch.rand(1, 1, 32, 64)
    w = torch.tensor([64])
    assert torch.allclose(net(x, w)[0], loaded(x, w)[0])
    assert config.arch == "crnn" and Charset(config.charset) == Charset()
    assert not any(p.suffix == ".pt" or p.suffix == ".pkl" for p in path.iterdir())


def test_half_storage_loads_as_float32(tmp_path):
    _, path = _tiny_model(tmp_path, half=True)
    loaded, _ = load_model(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_missing_and_corrupt_weights_fail_clearly(tmp_path):
    _, path = _tiny_model(tmp_path)
    (path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="model.safetensors: corrupt"):
        load_model(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="weights file not found"):
        load_model(path)
    with pytest.raises(ModelError, match="model directory not found"):
        Recognizer.load(tmp_path / "absent")


def test_a_model_named_by_something_other_than_a_path_is_refused_as_a_model_error():
    for value in (b"models/hwr-en-small", 42, ["hwr-en-small"], 0, b"", []):  # none of them the default
        with pytest.raises(ModelError, match="not a model: expected a model folder's path"):
            Recognizer.load(value, device="cpu")


def test_a_model_folder_named_in_latin1_loads(tmp_path):
    """safetensors takes UTF-8 names only: a folder named in Latin-1 (an old archive's modèle)
    had its intact weights called "corrupt or unreadable"."""
    import os
    import shutil

    net, path = _tiny_model(tmp_path)
    latin1 = tmp_path / os.fsdecode(b"mod\xe8le")
    shutil.copytree(path, latin1)
    loaded, _ = load_model(latin1)
    x, w = torch.rand(1, 1, 32, 64), torch.tensor([64])
    assert torch.allclose(net(x, w)[0], loaded(x, w)[0])


def test_a_model_path_that_is_a_link_leading_nowhere_is_named_so(tmp_path):
    """A symbolic link loop was "not found", though the link is there in a listing."""
    from hwr.training.adapt import resolve_model

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for load in (Recognizer.load, resolve_model):
        with pytest.raises(ModelError, match="a: model directory is a symbolic link that leads nowhere"):
            load(str(tmp_path / "a"))


def test_a_model_a_stopped_save_left_aside_is_named(tmp_path):
    """A kill between a save's two renames leaves the whole model in .best.previous: "model
    directory not found" had sent the user looking for a folder they had (a probe helper)."""
    _, path = _tiny_model(tmp_path)
    path.rename(path.with_name(f".{path.name}.previous"))
    with pytest.raises(ModelError, match=f"left the model in .{path.name}.previous beside it: rename that back"):
        Recognizer.load(path)


def test_a_model_name_whose_folder_a_stopped_save_left_aside_is_named_too(tmp_path, monkeypatch):
    """By name (a folder under models/, as `hwr adapt --out models/my-hand` makes one) it had been
    the plain "not found (nor a model name in ...)"."""
    import hwr.recognition.model as model_module

    monkeypatch.setattr(model_module, "models_dir", lambda: tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # no my-hand here either
    _, path = _tiny_model(tmp_path)
    path.rename(path.with_name(".my-hand.previous"))
    with pytest.raises(ModelError, match="my-hand: not found, but a save stopped .* left the model in "
                                         ".my-hand.previous beside it"):
        Recognizer.load("my-hand")


def test_weights_of_nan_or_of_integers_are_refused_naming_the_tensor(tmp_path):
    """They had loaded, and every line read "" with a NaN confidence (invalid JSON outputs)."""
    from safetensors.torch import load_file, save_file

    _, path = _tiny_model(tmp_path)
    weights = path / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k, v in state.items() if v.is_floating_point())
    save_file({**state, key: state[key] * float("nan")}, str(weights))
    with pytest.raises(ModelError, match=f"{key} holds NaN or infinite values"):
        load_model(path)
    save_file({**state, key: state[key].to(torch.int64)}, str(weights))
    with pytest.raises(ModelError, match=f"{key} is stored as torch.int64"):
        load_model(path)


def test_config_mismatch_fails_clearly(tmp_path):
    _, path = _tiny_model(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["net"]["rnn_hidden"] = 7
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="do not match"):
        load_model(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="invalid model config"):
        load_model(path)


def test_recognizer_keeps_input_order_across_width_batches(tmp_path, line_image):
    _, path = _tiny_model(tmp_path)
    rec = Recognizer.load(path, device="cpu")
    images = [line_image(t) for t in ["a", "a much longer line here", "mid size"]]
    together = rec.recognize(images, batch_size=2)
    alone = [rec.recognize([im])[0] for im in images]
    assert [r.text for r in together] == [r.text for r in alone]
    for a, b in zip(together, alone):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_log_probs_reads_uint8_lines_as_their_float_ink(tmp_path, line_image):
    """uint8 lines (as `prepare` keeps them) had been padded into a float batch unscaled: the
    network read ink of up to 255."""
    from hwr.documents.prepare import ink_to_uint8

    _, path = _tiny_model(tmp_path)
    rec = Recognizer.load(path, device="cpu")
    floats = [rec.preprocess(line_image(t)) for t in ["ab", "a longer line"]]
    as_uint8 = [ink_to_uint8(line) for line in floats]
    scores, frames = rec.log_probs(as_uint8)
    expected, expected_frames = rec.log_probs([line.astype(np.float32) / 255 for line in as_uint8])
    assert torch.equal(frames, expected_frames) and torch.allclose(scores, expected, atol=1e-5)
    as_float64 = rec.log_probs([line.astype(np.float64) / 255 for line in as_uint8])[0]  # a caller's own floats
    assert torch.allclose(as_float64, expected, atol=1e-5)


def test_read_batches_queues_the_next_batch_before_decoding_this_one_and_keeps_order(tmp_path, line_image):
    _, path = _tiny_model(tmp_path)
    rec = Recognizer.load(path, device="cpu")
    lines = [rec.preprocess(line_image(t)) for t in ["ab", "a longer line", "mid", "x"]]
    pulled = []

    def batches():
        for k in range(0, 4, 2):
            pulled.append(k)
            images, widths = lines_to_device(lines[k : k + 2], torch.device("cpu"))
            yield k, images, widths

    read = []
    for key, recognitions in rec.read_batches(batches()):
        # The network of the batch after `key` was queued before `key` was decoded (on a GPU
        # the host decodes while the device reads on); the last batch is decoded at the end.
        assert pulled[-1] == min(key + 2, 2)
        read.append((key, [r.text for r in recognitions]))
    alone = [r.text for r in rec.recognize_normalized(lines, batch_size=1)]
    assert read == [(0, alone[:2]), (2, alone[2:])]


def test_read_batches_hands_over_the_batches_read_before_one_that_fails(tmp_path, line_image, monkeypatch):
    _, path = _tiny_model(tmp_path)
    rec = Recognizer.load(path, device="cpu")
    lines = [rec.preprocess(line_image(t)) for t in ["ab", "a longer line", "mid", "x"]]
    network = rec.padded_scores

    def fails_on_two_lines(images, widths):
        if len(widths) == 2:
            raise RuntimeError("out of memory")
        return network(images, widths)

    monkeypatch.setattr(rec, "padded_scores", fails_on_two_lines)

    def batches():
        for k, size in ((0, 1), (1, 1), (2, 2)):
            images, widths = lines_to_device(lines[k : k + size], torch.device("cpu"))
            yield k, images, widths

    read = []
    with pytest.raises(RuntimeError, match="out of memory"):
        for key, _ in rec.read_batches(batches()):
            read.append(key)
    # Batch 1 was read (one behind) when batch 2 failed: it comes out before the error, so a
    # retry from the first unfinished batch does not read it again.
    assert read == [0, 1]


def _paired_untrained_models(tmp_path):
    """An untrained model with another of another seed in its beside/ folder: (the pair, the
    lines, each model's own readings of them)."""
    import shutil

    from helpers import make_untrained_model, render_line

    own, other = make_untrained_model(tmp_path / "own", seed=0), make_untrained_model(tmp_path / "other", seed=4)
    alone = [Recognizer.load(path, device="cpu") for path in (own, other)]
    texts = ["ab", "a longer line", "mid size", "x", "the cat sat", "quick brown fox", "0123", "jumps over"]
    lines = [alone[0].preprocess(render_line(t)) for t in texts]
    readings = [r.recognize_normalized(lines, batch_size=2) for r in alone]
    shutil.copytree(other, own / "beside")
    return Recognizer.load(own, device="cpu"), lines, readings


def test_a_model_read_beside_another_takes_each_line_from_the_surer_network(tmp_path):
    paired, lines, readings = _paired_untrained_models(tmp_path)
    expected = [a.text if a.confidence >= b.confidence else b.text for a, b in zip(*readings)]
    # Untrained networks of two seeds: each is surer of some of the lines (else the test proves little).
    assert {a.confidence >= b.confidence for a, b in zip(*readings)} == {True, False}
    assert paired.beside is not None
    paired.beside_below = 2.0  # every line read by both
    assert [r.text for r in paired.recognize_normalized(lines, batch_size=2)] == expected
    assert paired.describe_reading()["beside_below"] == 2.0


def test_a_model_read_beside_another_has_it_read_only_the_lines_it_is_unsure_of(tmp_path):
    paired, lines, readings = _paired_untrained_models(tmp_path)
    # Only the lines the own network reads less surely than beside_below go to the other one too.
    threshold = float(np.median([a.confidence for a in readings[0]]))
    paired.beside_below = threshold
    seen = []
    network = paired.beside
    paired.beside = lambda images, widths: seen.append(len(widths)) or network(images, widths)
    doubtful = [a.confidence < threshold for a in readings[0]]
    expected = [b.text if low and b.confidence > a.confidence else a.text
                for a, b, low in zip(*readings, doubtful)]
    assert [r.text for r in paired.recognize_normalized(lines, batch_size=len(lines))] == expected
    assert seen == [sum(doubtful)] and 0 < sum(doubtful) < len(lines)
    assert expected != [a.text for a in readings[0]]  # the other network still read some lines

    # The widest line read surely: the other network reads a narrower batch, with fewer frames.
    # The widest lines the own network reads least surely of all are left out until one is not.
    by_width = sorted(range(len(lines)), key=lambda k: lines[k].shape[1])
    while readings[0][by_width[-1]].confidence <= min(readings[0][k].confidence for k in by_width[:-1]):
        by_width.pop()
    assert len(by_width) >= 3
    lines = [lines[k] for k in by_width]
    readings = [[reading[k] for k in by_width] for reading in readings]
    paired.beside_below = readings[0][-1].confidence
    shapes = []
    paired.beside = lambda images, widths: shapes.append(images.shape[-1]) or network(images, widths)
    doubtful = [a.confidence < paired.beside_below for a in readings[0]]
    assert 0 < sum(doubtful) and not doubtful[-1]
    expected = [b.text if low and b.confidence > a.confidence else a.text
                for a, b, low in zip(*readings, doubtful)]
    assert [r.text for r in paired.recognize_normalized(lines, batch_size=len(lines))] == expected
    assert len(shapes) == 1 and shapes[0] < lines[-1].shape[1]
    assert expected != [a.text for a in readings[0]]  # a reading of fewer frames was kept


def test_a_model_beside_that_normalises_lines_otherwise_is_refused_naming_it(tmp_path):
    import shutil

    from helpers import make_untrained_model

    own, other = make_untrained_model(tmp_path / "own"), make_untrained_model(tmp_path / "other", seed=1)
    _with_config(other, normalize__margin=7)  # the same weights fit, but it reads other line images
    shutil.copytree(other, own / "beside")
    with pytest.raises(ModelError, match="beside: the model beside .* must be the same network .* normalize differ"):
        Recognizer.load(own, device="cpu")


# --- bad configs and bad images (issue 21) -----------------------------------------------------

def _with_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        (config[section] if section else config)[key] = value
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("changes, key", [
    ({"normalize__line_height": 0}, "normalize.line_height"),
    ({"normalize__line_height": "48"}, "normalize.line_height"),
    ({"normalize__margin": -1}, "normalize.margin"),
    ({"normalize__flatten_background": "yes"}, "normalize.flatten_background must be true or false"),
    ({"normalize__low_percentile": 99.0}, "low_percentile"),
    ({"net__rnn_hidden": "many"}, "net.rnn_hidden"),
    ({"net__rnn_layers": 0}, "net.rnn_layers"),
    ({"net__conv_channels": ["a", "b"]}, "net.conv_channels"),
    ({"net__dropout": True}, "net.dropout"),
    ({"format_version": 999}, "format_version 999"),
    ({"format_version": "1"}, "format_version"),
    ({"charset": "abc"}, "charset"),
    ({"charset": []}, "charset"),
    # Refused by Charset only when the network was built: a ValueError traceback.
    ({"charset": ["a", "b", "a"]}, "config: charset has duplicate symbols: 'a'"),
    ({"charset": ["a", "<blank>"]}, "config: charset symbols must be single characters, not '<blank>'"),
    ({"net": [1, 2]}, "net must be a JSON object"),
    ({"normalize": "tall"}, "normalize must be a JSON object"),
    ({"arch": 3}, "arch"),
    ({"arch": "transformer"}, "unknown architecture"),
])
def test_bad_config_values_name_the_file_and_key(tmp_path, changes, key):
    _, path = _tiny_model(tmp_path)
    _with_config(path, **changes)
    with pytest.raises(ModelError, match="config.json") as caught:
        Recognizer.load(path, device="cpu")
    assert key in str(caught.value)


@pytest.mark.parametrize("changes, message", [
    # A billion layers took hours to build (and the memory to hold them) before it failed.
    ({"net__rnn_layers": 10**9}, "config.json: describes a network of 1000000002 layers, but model.safetensors holds"),
    ({"net__conv_channels": [8] * 100_000}, "config.json: describes a network of 100001 layers"),
    # Sizes are compared with the weights' header before a tensor is allocated.
    ({"net__rnn_hidden": 10**6}, r"rnn.weight_hh_l0 is \[128, 32\] there, \[4000000, 1000000\] in the config"),
    ({"net__conv_channels": [8, 10**7]}, r"blocks.1.conv.weight is \[16, 8, 3, 3\] there"),
    ({"net__line_height": 10**7, "normalize__line_height": 10**7}, "rnn.weight_ih_l0 is"),
    ({"normalize__line_height": 10**7}, "normalize.line_height 10000000 differs from the network's net.line_height 32"),
    ({"net__pool_blocks": [0, 0]}, "pool_blocks must list distinct conv block indices"),
    ({"net__height_pool_blocks": [5]}, "height_pool_blocks must list distinct conv block indices 0..1"),
    ({"net__rnn_cell": "transformer"}, "rnn_cell must be one of"),
])
def test_absurd_network_settings_fail_at_once_naming_the_model(tmp_path, changes, message):
    _, path = _tiny_model(tmp_path)
    _with_config(path, **changes)
    started = time.monotonic()
    with pytest.raises(ModelError, match=message) as caught:
        Recognizer.load(path, device="cpu")
    assert time.monotonic() - started < 2
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_training_runs_folder_given_as_a_model_names_its_best(tmp_path):
    _tiny_model(tmp_path)
    (tmp_path / "m").rename(tmp_path / "best")
    (tmp_path / "run").mkdir()
    (tmp_path / "best").rename(tmp_path / "run" / "best")
    with pytest.raises(ModelError, match=f"holds a training run, whose model is {tmp_path / 'run' / 'best'}"):
        load_model(tmp_path / "run")


def test_a_config_without_its_normalisation_says_the_height_is_missing(tmp_path):
    """It had said "normalize.line_height 48 differs from ... 32", a value the file never held."""
    _, path = _tiny_model(tmp_path)
    config = json.loads((path / "config.json").read_text())
    del config["normalize"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="normalize.line_height is missing \\(the network reads lines 32 px tall"):
        load_model(path)


def test_config_that_is_not_an_object_or_a_file_fails_clearly(tmp_path):
    _, path = _tiny_model(tmp_path)
    (path / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ModelError, match="config.json: invalid model config: expected a JSON object"):
        load_model(path)
    (path / "config.json").unlink()
    (path / "config.json").mkdir()
    with pytest.raises(ModelError, match="config.json: model config is not a file"):
        load_model(path)
    (path / "config.json").rmdir()
    with pytest.raises(ModelError, match="config not found"):
        load_model(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path / "file")


def test_a_charset_symbol_no_text_can_hold_is_refused_or_warned_about_naming_the_config(tmp_path, caplog):
    """A lone surrogate stopped a batch at its first line (stdout cannot encode it): refused. A
    control character an older hwr learnt from labels holding it (--charset data) still loads,
    with a warning naming it."""
    import json
    import re

    _, path = _tiny_model(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["charset"][0] = "\ud800"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"config.json: invalid model config: charset symbols must be characters "
                                         r"a text can hold, not lone surrogates: " + re.escape(ascii("\ud800"))):
        load_model(path)
    config["charset"][0] = "\x1b"
    (path / "config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING"):
        load_model(path)
    assert "lists control characters or line breaks ('\\x1b')" in caplog.text


def test_a_model_config_saved_with_a_byte_order_mark_loads(tmp_path):
    _, path = _tiny_model(tmp_path)
    (path / "config.json").write_bytes(b"\xef\xbb\xbf" + (path / "config.json").read_bytes())
    load_model(path)


def test_a_config_nested_too_deeply_is_invalid_json_naming_the_file(tmp_path):
    from bad_inputs import deeply_nested_json

    _, path = _tiny_model(tmp_path)
    deeply_nested_json(path / "config.json")  # was a RecursionError traceback
    with pytest.raises(ModelError, match=r"config.json: invalid model config: not valid JSON \(nested too deeply\)"):
        load_model(path)


def test_weights_path_that_is_a_folder_fails_clearly(tmp_path):
    _, path = _tiny_model(tmp_path)
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").mkdir()
    with pytest.raises(ModelError, match="model.safetensors: weights file is not a file"):
        load_model(path)


@pytest.fixture(scope="module")
def tiny_recognizer(tmp_path_factory):
    _, path = _tiny_model(tmp_path_factory.mktemp("rec"))
    return Recognizer.load(path, device="cpu")


def test_one_bad_image_costs_only_its_own_slot(tiny_recognizer, line_image, tmp_path):
    from PIL import Image

    from hwr.records import FailedInput, Recognition

    closed = Image.fromarray(line_image("closed"))
    closed.save(tmp_path / "c.png")
    closed = Image.open(tmp_path / "c.png")
    closed.close()
    bad = [None, 7, np.array([[object()]], dtype=object), np.full((20, 50), np.nan, np.float32), closed,
           tmp_path / "missing.png"]
    good = [line_image("the cat"), line_image("sat")]
    results = tiny_recognizer.recognize([good[0], *bad, good[1]], on_error="return")
    assert len(results) == len(bad) + 2
    assert isinstance(results[0], Recognition) and isinstance(results[-1], Recognition)
    alone = tiny_recognizer.recognize(good)
    assert [results[0].text, results[-1].text] == [r.text for r in alone]
    failed = results[1:-1]
    assert all(isinstance(f, FailedInput) and f.stage == "read" and f.message for f in failed)
    assert [f.page_id for f in failed] == [str(k) for k in range(1, len(bad) + 1)]
    assert "missing.png" in failed[-1].source and "NaN" in failed[3].message


def test_raise_mode_names_the_bad_item(tiny_recognizer, line_image):
    with pytest.raises(ImageError, match=r"images\[1\] \(<NoneType>\): not an image"):
        tiny_recognizer.recognize([line_image("ok"), None])
    with pytest.raises(ImageError, match=r"images\[0\].*NaN"):
        tiny_recognizer.recognize([np.full((10, 10), np.nan)])
    with pytest.raises(TypeError, match="list of images"):
        tiny_recognizer.recognize("line.png")
    with pytest.raises(ValueError, match="on_error"):
        tiny_recognizer.recognize([], on_error="ignore")
    assert tiny_recognizer.recognize([]) == []


def _interrupted_as_safetensors_reports_it(*args, **kwargs):
    # safetensors builds tensors through Python callbacks; a KeyboardInterrupt raised in one
    # comes out as this ValueError (seen when interrupting hwr-en-small's load at random).
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        pass  # swallowed in native code
    raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'")


def test_a_ctrl_c_while_weights_load_is_a_stop_not_corrupt_weights(tmp_path, monkeypatch):
    _, path = _tiny_model(tmp_path)
    monkeypatch.setattr("hwr.recognition.model.load_file", _interrupted_as_safetensors_reports_it)
    with pytest.raises(KeyboardInterrupt):
        load_model(path)


def test_under_torchrun_each_process_reads_on_its_own_gpu(monkeypatch):
    from hwr.recognition.model import pick_device

    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)  # a node of four GPUs
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert pick_device("auto") == torch.device("cuda") and current == []  # one process: as asked
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 3)
    assert current == [torch.device("cuda", 3)] * 2
    assert pick_device("cuda:0") == torch.device("cuda", 0)  # a GPU named by index stays named
    assert pick_device("cpu") == torch.device("cpu")


def test_hwr_model_takes_a_shipped_models_name_as_model_does(monkeypatch, tmp_path):
    from hwr.recognition.model import default_model_dir, models_dir

    monkeypatch.setenv("HWR_MODEL", "hwr-en-base")
    assert default_model_dir() == models_dir() / "hwr-en-base"
    monkeypatch.setenv("HWR_MODEL", str(tmp_path / "mine"))
    assert default_model_dir() == tmp_path / "mine"


def test_a_batch_size_below_one_is_refused_not_read_as_nothing(tmp_path):
    _, path = _tiny_model(tmp_path)
    line = np.full((32, 64), 255, np.uint8)
    line[10:20, 5:60] = 0
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        Recognizer.load(path).recognize([line, line], batch_size=-1)  # had returned [None, None]


def test_a_device_that_is_none_or_not_here_is_a_config_error_naming_it(monkeypatch):
    from hwr.errors import ConfigError
    from hwr.recognition.model import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device 'gpu' is not one"):
        pick_device("gpu")
    # No CUDA here (as in CI), or one GPU: torch's own error had come mid-run as a traceback.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda': torch finds no CUDA GPU"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"device 'cuda:3': this machine has 1 CUDA GPU\(s\)"):
        pick_device("cuda:3")


def test_cli_names_a_device_that_is_not_here_and_exits_2(monkeypatch, capsys, line_image, tmp_path):
    from hwr.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from PIL import Image

    path = tmp_path / "line.png"
    Image.fromarray(line_image("the cat")).save(path)
    assert main(["transcribe", str(path), "--device", "cuda"]) == 2
    assert "device 'cuda'" in capsys.readouterr().err


def test_a_model_out_folder_is_checked_before_the_work_and_returned_resolved(tmp_path, monkeypatch):
    from hwr.errors import ConfigError
    from hwr.recognition.model import checked_model_out

    source = tmp_path / "base"
    source.mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "model")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    cases = {".": "is the current folder or holds it", str(tmp_path): "is the current folder or holds it",
             str(tmp_path / "afile"): "is a file", str(source): "is the base model",
             str(tmp_path / "notes"): "not empty", str(tmp_path / "link"): "not empty"}
    for given, message in cases.items():
        with pytest.raises(ConfigError, match=f"--out {given}: .*{message}"):
            checked_model_out(given, overwrite=False, sources=[source], source_role="the base model")
    with pytest.raises(ConfigError, match=r"holds files that are not a model's \(notes.txt\)"):
        checked_model_out(tmp_path / "notes", overwrite=True)
    monkeypatch.chdir(tmp_path)
    # A link's target is where the model goes: swapping the link itself out would leave the old model there.
    assert checked_model_out("link", overwrite=True) == tmp_path / "model"
    assert checked_model_out("new", overwrite=False, own=("run",)) == tmp_path / "new"
