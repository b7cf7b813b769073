import numpy as np
import pytest
import torch

from hwr.errors import ConfigError
from hwr.recognition.model import Recognizer
from hwr.recognition.settings import check_width_factors
from hwr.recognition.width_variants import lines_of_batch, stretched, surest_reading


def test_width_factors_are_checked_naming_the_flag():
    assert check_width_factors([1.3, 1.15]) == (1.3, 1.15)
    assert check_width_factors([]) == ()
    for bad, message in [([1.0], "always read"), ([float("nan")], "between"), ([0.2], "between"),
                         ([4.0], "between"), ([1.3, 1.3], "twice")]:
        with pytest.raises(ConfigError, match=f"--width-variants: .*{message}"):
            check_width_factors(bad)


def test_a_stretched_batch_keeps_each_lines_ink_and_scales_its_width():
    images = torch.zeros(2, 1, 8, 20)
    images[0, 0, :, :20] = 1.0
    images[1, 0, 2:6, :10] = 1.0
    wider, widths, ratio = stretched(images, torch.tensor([20, 10]), 1.5)
    assert wider.shape == (2, 1, 8, 30) and ratio == 1.5
    assert widths.tolist() == [30, 15]
    assert torch.all(wider[1, 0, 3, :14] > 0.99) and torch.all(wider[1, 0, :, 16:] == 0)
    assert torch.all(wider[1, 0, 0, :] == 0)  # rows stay rows: only the width changes


def test_a_line_is_stretched_alike_whatever_the_width_of_its_batch():
    """The ratio had been round(W * 1.3) / W of the padded batch width W: 1.296875 for 64, 1.3021 for
    192, so a line read differently beside a wider line (or at another --batch-size)."""
    torch.manual_seed(0)
    line = torch.rand(1, 1, 8, 50)
    alone, beside = torch.zeros(1, 1, 8, 64), torch.zeros(2, 1, 8, 192)
    alone[..., :50] = line
    beside[:1, ..., :50] = line
    wider_alone, widths_alone, ratio_alone = stretched(alone, torch.tensor([50]), 1.3)
    wider_beside, widths_beside, ratio_beside = stretched(beside, torch.tensor([50, 190]), 1.3)
    assert ratio_alone == ratio_beside == 1.3 and widths_alone[0] == widths_beside[0] == 65
    assert torch.allclose(wider_alone[0, ..., :65], wider_beside[0, ..., :65])


def _fake_read(surer_when_wider: list[bool]):
    """A network whose line n reads 'a' in every frame, surer the wider its batch is (or the
    narrower), four input pixels a frame."""
    def read(images, widths):
        frames = images.shape[-1] // 4
        log_probs = torch.full((frames, len(widths), 3), -1e4)
        for n, wider_is_surer in enumerate(surer_when_wider):
            p = 0.5 + images.shape[-1] / 1000 if wider_is_surer else 0.9 - images.shape[-1] / 1000
            log_probs[:, n, 1] = np.log(p)
            log_probs[:, n, 0] = np.log(1 - p)
        return log_probs, widths // 4
    return read


def test_each_line_keeps_the_reading_greedy_decoding_is_surest_of():
    images, widths = torch.rand(2, 1, 8, 40), torch.tensor([40, 24])
    read = _fake_read([True, False])
    log_probs, lengths, frame_widths = surest_reading(read, images, widths, (1.5,), frame_width=4.0)
    wider_scores, wider_lengths = read(*stretched(images, widths, 1.5)[:2])
    plain_scores, plain_lengths = read(images, widths)
    assert log_probs.shape[0] == wider_scores.shape[0] == 15
    assert lengths.tolist() == [wider_lengths[0].item(), plain_lengths[1].item()] == [15, 6]
    assert torch.equal(log_probs[:, 0], wider_scores[:, 0])
    assert torch.equal(log_probs[:10, 1], plain_scores[:, 1])
    assert frame_widths == [4.0 / 1.5, 4.0]


def test_only_the_lines_read_with_doubt_are_read_again_and_alone():
    batches = []

    def read(images, widths):  # line 0 read surely (0.99), line 1 with doubt (0.6), wider or not
        batches.append(images.shape)
        log_probs = torch.full((images.shape[-1] // 4, len(widths), 3), -1e4)
        log_probs[:, :, 1] = torch.tensor([0.99, 0.6] if len(widths) == 2 else [0.7]).log()
        log_probs[:, :, 0] = (1 - log_probs[:, :, 1].exp()).log()
        return log_probs, widths // 4

    images, widths = torch.rand(2, 1, 8, 128), torch.tensor([128, 24])
    _, lengths, frame_widths = surest_reading(read, images, widths, (1.5,), 4.0, below=0.95)
    # The doubtful line alone, cropped to its width rounded up as batches are padded (64), stretched.
    assert batches == [(2, 1, 8, 128), (1, 1, 8, 96)]
    assert frame_widths == [4.0, 4.0 / 1.5] and lengths.tolist() == [32, 9]  # 24 * 1.5 = 36 pixels
    batches.clear()
    surest_reading(read, images, widths, (1.5,), 4.0, below=0.5)
    assert batches == [(2, 1, 8, 128)]  # nothing doubtful: one pass


def test_a_tie_keeps_the_line_as_given():
    def same(images, widths):
        return torch.zeros(10, len(widths), 3).log_softmax(-1), torch.full((len(widths),), 5)
    _, _, frame_widths = surest_reading(same, torch.rand(1, 1, 8, 40), torch.tensor([40]), (1.3, 0.8), 4.0)
    assert frame_widths == [4.0]


def test_a_recognizer_with_width_variants_reads_each_line_at_its_surest_width(untrained_model):
    from helpers import render_line

    plain = Recognizer.load(untrained_model, device="cpu")
    varied = Recognizer.load(untrained_model, device="cpu", width_variants=[1.5])
    texts = ["ab", "a longer line", "mid size", "the cat sat", "quick brown fox", "0123"]
    lines, geometries = zip(*(plain.preprocess_with_geometry(render_line(t)) for t in texts))
    ours = varied.recognize_normalized(list(lines), batch_size=3, geometries=list(geometries))
    theirs = plain.recognize_normalized(list(lines), batch_size=3)
    stretched_lines = [frame_width < plain.frame_width for frame_width in (r.frame_width for r in ours)]
    # An untrained network: some lines are surer stretched and some not (else the test proves little).
    assert set(stretched_lines) == {True, False}
    for rec, alone, was_stretched in zip(ours, theirs, stretched_lines):
        if was_stretched:
            assert rec.frame_width == pytest.approx(plain.frame_width / 1.5, rel=0.05)
            assert rec.confidence >= alone.confidence
        else:
            assert rec.frame_width == plain.frame_width and rec.text == alone.text
    for rec, geometry, line in zip(ours, geometries, lines):  # word boxes map back into the line
        for word in rec.words:
            assert -1 <= word.x0 <= word.x1 <= geometry.to_source_x(line.shape[1]) + 1


def test_a_cramped_line_reads_its_spaces_when_also_read_stretched_and_its_words_stay_in_place():
    import cv2

    from helpers import render_line

    line = render_line("the quick brown fox jumps")
    cramped = cv2.resize(line, (int(line.shape[1] * 0.5), line.shape[0]), interpolation=cv2.INTER_AREA)
    plain = Recognizer.load("hwr-en-small", device="cpu")
    # Read surely (its confidence counts the letters read, not the spaces missed), so only a
    # threshold above 1 reads it again.
    varied = Recognizer.load("hwr-en-small", device="cpu", width_variants=[1.8], width_variants_below=2.0)
    assert plain.recognize([cramped])[0].text.count(" ") < varied.recognize([cramped])[0].text.count(" ")
    varied = Recognizer.load("hwr-en-small", device="cpu", width_variants=[1.5], width_variants_below=2.0)
    # Lines read stretched: their word boxes, mapped back through each line's own frame width,
    # are where the plain reading puts them.
    texts = ["the quick brown fox jumps", "over the lazy dog", "a line of words", "read it again"]
    stretched_words = 0
    for text in texts:
        line = render_line(text)
        ours, theirs = varied.recognize([line], words=True)[0], plain.recognize([line], words=True)[0]
        if ours.frame_width == theirs.frame_width or ours.text != theirs.text:
            continue
        stretched_words += len(ours.words)
        for a, b in zip(ours.words, theirs.words, strict=True):
            assert a.text == b.text and abs(a.x0 - b.x0) <= 4 and abs(a.x1 - b.x1) <= 4
    assert stretched_words >= 3


@pytest.mark.parametrize("factor", [1.3, 0.5])
def test_lines_of_a_pixel_or_two_are_read_again_without_failing(untrained_model, factor):
    """Cropped to their own width, 1-2 px lines (a thin rule cut as a line) reached the network
    too narrow for its convolutions: "Calculated padded input size per channel" failed the input."""
    varied = Recognizer.load(untrained_model, device="cpu", width_variants=[factor], width_variants_below=2)
    lines = [np.full((varied.config.normalize["line_height"], width), 0.5, np.float32) for width in (1, 2)]
    assert len(varied.recognize_normalized(lines, batch_size=2)) == 2


def test_some_lines_of_a_batch_are_cropped_to_their_widest_padded_and_lines_of_no_width_to_one_column():
    """A crop to the widest of lines of no width had no columns at all for the network."""
    from hwr.documents.line_batches import WIDTH_MULTIPLE

    images = torch.rand(3, 1, 8, 4 * WIDTH_MULTIPLE)
    widths = torch.tensor([0, 0, 3 * WIDTH_MULTIPLE - 5])
    crop, crop_widths = lines_of_batch(images, widths, torch.tensor([0, 1]))
    assert crop.shape == (2, 1, 8, WIDTH_MULTIPLE) and crop_widths.tolist() == [0, 0]
    crop, crop_widths = lines_of_batch(images, widths, torch.tensor([2, 0]))
    assert crop.shape == (2, 1, 8, 3 * WIDTH_MULTIPLE) and crop_widths.tolist() == [3 * WIDTH_MULTIPLE - 5, 0]
    assert torch.equal(crop[0], images[2, ..., : 3 * WIDTH_MULTIPLE])
