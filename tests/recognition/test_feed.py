"""The uint8 feed to the network's device (hwr.recognition.feed): ink scaling, batches in
order, and on CUDA the side-stream copies (those tests skip without a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hwr.documents.line_batches import LineBatch, pad_uint8
from hwr.documents.prepare import ink_from_uint8, ink_to_uint8
from hwr.recognition.feed import device_batches, lines_to_device, recognize_line_batches, to_device
from hwr.recognition.model import Recognizer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_to_device_scales_uint8_ink_to_the_networks_floats():
    images = np.array([[[[0, 51, 255]]]], np.uint8)
    tensor = to_device(images, torch.device("cpu"))
    assert tensor.dtype == torch.float32 and torch.allclose(tensor, torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    assert torch.equal(tensor, torch.from_numpy(ink_from_uint8(images)))


def test_line_batches_are_read_in_order_as_the_recognizer_reads_their_lines(untrained_model):
    recognizer = Recognizer.load(untrained_model, device="cpu")
    batches = _batches(recognizer.normalize_config.line_height)
    read = list(recognize_line_batches(recognizer, batches))
    assert [batch for batch, _ in read] == batches
    for batch, recognitions in read:
        lines = [ink_from_uint8(batch.images[i, 0, :, : w]) for i, w in enumerate(batch.widths)]
        assert [r.text for r in recognitions] == [r.text for r in recognizer.recognize_normalized(lines, 4)]


def _lines(height: int, n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (height, int(w)), dtype=np.uint8) for w in rng.integers(20, 150, n)]


def test_lines_are_padded_on_the_right_to_a_multiple_of_64_with_host_widths():
    lines = _lines(8)
    floats = [ink_from_uint8(line) for line in lines]
    images, widths = lines_to_device(floats, torch.device("cpu"))
    widest = max(line.shape[1] for line in lines)
    expected = torch.zeros((len(lines), 1, 8, -(-widest // 64) * 64))  # few distinct shapes for the CPU kernels
    for i, line in enumerate(floats):
        expected[i, 0, :, : line.shape[1]] = torch.from_numpy(line)
    assert torch.equal(images, expected)
    assert widths.tolist() == [line.shape[1] for line in lines] and widths.device.type == "cpu"
    assert lines_to_device([floats[0][:, :1].repeat(65, 1)], torch.device("cpu"))[0].shape[-1] == 128
    # uint8 ink (what prepare keeps for a GPU) becomes the same floats.
    images8, widths8 = lines_to_device(lines, torch.device("cpu"))
    assert images8.dtype == torch.float32 and torch.equal(images8, expected) and torch.equal(widths8, widths)


def test_lines_of_mixed_heights_or_kinds_are_refused():
    lines = _lines(8, 2)
    with pytest.raises(ValueError, match="share a height"):
        lines_to_device([lines[0], _lines(9, 1)[0]], torch.device("cpu"))
    with pytest.raises(ValueError, match="uint8 or all float32"):
        lines_to_device([lines[0], ink_from_uint8(lines[1])], torch.device("cpu"))


def test_uint8_lines_read_as_their_floats(untrained_model):
    recognizer = Recognizer.load(untrained_model, device="cpu")
    lines = _lines(recognizer.normalize_config.line_height, 9)
    as_uint8 = recognizer.recognize_normalized(lines, 4)
    as_float = recognizer.recognize_normalized([ink_from_uint8(line) for line in lines], 4)
    assert [r.text for r in as_uint8] == [r.text for r in as_float]
    assert [r.confidence for r in as_uint8] == pytest.approx([r.confidence for r in as_float])


def _batches(height: int, n: int = 3) -> list[LineBatch]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        lines = [rng.integers(0, 256, (height, int(w)), dtype=np.uint8) for w in rng.integers(20, 90, 4)]
        images, widths = pad_uint8(lines)
        out.append(LineBatch(images, widths, [(i, k) for k in range(4)]))
    return out


@pytest.mark.gpu
@needs_cuda
def test_cuda_feed_copies_ahead_on_a_side_stream_and_delivers_every_batch_intact():
    device = torch.device("cuda")
    batches = _batches(32)
    delivered = list(device_batches(batches, device))
    assert [b for b, _, _ in delivered] == batches
    for batch, images, widths in delivered:
        assert images.is_cuda and not widths.is_cuda  # the nets count frames from host widths
        assert torch.equal(images.cpu(), torch.from_numpy(ink_from_uint8(batch.images)))
        assert widths.cpu().tolist() == batch.widths.tolist()


@pytest.mark.gpu
@needs_cuda
def test_cuda_feed_reads_the_same_texts_as_the_cpu(untrained_model):
    cpu = Recognizer.load(untrained_model, device="cpu")
    gpu = Recognizer.load(untrained_model, device="cuda")
    for batch in _batches(cpu.normalize_config.line_height):
        widths = torch.from_numpy(batch.widths)
        expected = [r.text for r in cpu.recognize_padded(to_device(batch.images, cpu.device), widths)]
        got = [r.text for r in gpu.recognize_padded(to_device(batch.images, gpu.device), widths.cuda())]
        assert got == expected


@pytest.mark.gpu
@needs_cuda
def test_cuda_lines_are_padded_in_pinned_memory_and_match_the_cpus():
    lines = _lines(32)
    for kind in (lines, [ink_from_uint8(line) for line in lines]):
        images, widths = lines_to_device(kind, torch.device("cuda"))
        expected, expected_widths = lines_to_device(kind, torch.device("cpu"))
        assert images.is_cuda and not widths.is_cuda
        assert torch.equal(images.cpu(), expected) and torch.equal(widths, expected_widths)


@pytest.mark.gpu
@needs_cuda
def test_cuda_recognizer_keeps_prepared_lines_as_uint8_and_reads_what_the_cpu_reads(untrained_model):
    cpu = Recognizer.load(untrained_model, device="cpu")
    gpu = Recognizer.load(untrained_model, device="cuda")
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (40, int(w)), dtype=np.uint8) for w in (60, 120, 200)]
    prepared = gpu.prepare(images)
    assert all(a.dtype == np.uint8 for a in prepared.arrays)
    quantised = [ink_from_uint8(ink_to_uint8(cpu.preprocess(image))) for image in images]
    expected = [r.text for r in cpu.recognize_normalized(quantised, 2)]
    assert [r.text for r in gpu.recognize_prepared(prepared, 2)] == expected
