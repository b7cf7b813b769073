"""The uint8 feed to the network's device (hwr.recognition.feed): ink scaling, batches in
order, and on CUDA the side-stream copies (those tests skip without a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hwr.documents.line_batches import LineBatch, pad_uint8
from hwr.documents.prepare import ink_from_uint8
from hwr.recognition.feed import device_batches, recognize_line_batches, to_device
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
