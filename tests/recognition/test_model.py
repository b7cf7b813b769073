import json

import pytest
import torch

from hwr.recognition.charset import Charset
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
