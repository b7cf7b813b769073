import numpy as np
import pytest

from hwr.recognition.charset import Charset, UnknownCharacterError
from hwr.recognition.imaging import ImageError, NormalizeConfig
from hwr.records import LineSample
from hwr.training.batches import (
    EncodedLines,
    WidthBucketSampler,
    collate_lines,
    collate_pool,
    ctc_frames,
)


def test_encoded_lines_and_collate(line_image):
    samples = [LineSample("a", "hi", line_image("hi")), LineSample("b", "there", line_image("there"))]
    ds = EncodedLines(samples, Charset(), NormalizeConfig(line_height=32))
    batch = collate_lines([ds[0], ds[1]])
    assert batch.images.shape[:3] == (2, 1, 32)
    assert batch.target_lengths.tolist() == [2, 5]
    assert Charset().decode(batch.targets.tolist()) == "hithere"
    # The frames CTC needs are counted by the loader: "there" has no repeated neighbours.
    assert batch.frames_needed.tolist() == [2, 5]


def test_training_batches_cross_as_uint8_ink_and_become_the_normalised_floats(line_image):
    """The loader hands uint8 ink over (a quarter of float32's bytes to pass, pin and copy);
    on the device it is the normalised line again, to within half a grey level."""
    import torch

    from hwr.recognition.feed import ink_to_device
    from hwr.recognition.imaging import normalize_line

    config = NormalizeConfig(line_height=32)
    samples = [LineSample("a", "hi", line_image("hi")), LineSample("b", "there", line_image("there"))]
    batch = collate_lines([EncodedLines(samples, Charset(), config)[i] for i in range(2)])
    assert batch.images.dtype == torch.uint8
    floats = ink_to_device(batch.images, torch.device("cpu"))
    assert floats.dtype == torch.float32
    for i, sample in enumerate(samples):
        expected = normalize_line(sample.image, config)
        width = int(batch.widths[i])
        assert width == expected.shape[1]
        assert np.abs(floats[i, 0, :, :width].numpy() - expected).max() <= 0.5 / 255 + 1e-6
        assert floats[i, 0, :, width:].abs().sum() == 0
    assert ink_to_device(floats, torch.device("cpu")) is floats  # a float batch is only moved


def test_ctc_frames_counts_a_blank_between_repeated_labels():
    assert ctc_frames([1, 2, 2, 3]) == 5  # one repeat
    assert ctc_frames([4, 4, 4, 5]) == 6  # two
    assert ctc_frames([]) == 0


def test_collated_batches_count_the_frames_of_repeated_letters(line_image):
    samples = [LineSample("a", "all", line_image("all")), LineSample("b", "book", line_image("book"))]
    ds = EncodedLines(samples, Charset(), NormalizeConfig(line_height=32))
    batch = collate_lines([ds[0], ds[1]])
    assert batch.frames_needed.tolist() == [4, 5]  # "all": a, l, blank, l; "book": b, o, blank, o, k


def test_a_pool_becomes_width_sorted_batches(line_image):
    texts = ["a long line of text", "hi", "medium text", "x", "tiny", "another long line here", "mid"]
    ds = EncodedLines([LineSample(str(i), t, line_image(t)) for i, t in enumerate(texts)], Charset(),
                      NormalizeConfig(line_height=32))
    lines = [ds[i] for i in range(len(texts))]
    batches = collate_pool(lines, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert sorted(i for b in batches for i in b.ids) == sorted(str(i) for i in range(len(texts)))
    widths = [w for b in batches for w in b.widths.tolist()]
    assert widths == sorted(widths) == sorted(line.image.shape[1] for line in lines)


def test_bad_lines_raise_or_are_reported(tmp_path, line_image):
    samples = [LineSample("ok", "ok", line_image("ok")), LineSample("gone", "x", str(tmp_path / "gone.png")),
               LineSample("euro", "5€", line_image("5"))]
    strict = EncodedLines(samples, Charset(), NormalizeConfig())
    with pytest.raises(ImageError, match="gone.png"):
        strict[1]
    with pytest.raises(UnknownCharacterError):
        strict[2]
    lenient = EncodedLines(samples, Charset(), NormalizeConfig(), skip_bad=True)
    batch = collate_lines([lenient[i] for i in range(3)])
    assert batch.ids == ["ok"]
    assert len(batch.errors) == 2 and batch.errors[0].count("gone.png") == 1, batch.errors
    assert batch.errors[1].startswith("euro: characters not in charset")


def test_width_buckets_cover_every_index_once():
    sizes = [5, 50, 7, 49, 6, 48, 8, 47]
    sampler = WidthBucketSampler(sizes, batch_size=2, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(8))
    # similar widths end up together
    assert all(abs(sizes[b[0]] - sizes[b[-1]]) < 10 for b in batches)


@pytest.mark.gpu
def test_pinning_a_batch_pins_what_the_step_copies_to_the_gpu(line_image):
    samples = [LineSample("a", "ab", line_image("ab")), LineSample("b", "ba", line_image("ba"))]
    ds = EncodedLines(samples, Charset(), NormalizeConfig(line_height=32))
    batch = collate_lines([ds[0], ds[1]]).pin_memory()
    assert batch.images.is_pinned() and batch.targets.is_pinned()
    assert not batch.widths.is_cuda and not batch.target_lengths.is_cuda  # read on the host
