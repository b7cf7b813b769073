import numpy as np
import pytest
import torch

from hwr.recognition.line_windows import window_geometry, windowed_scores

FRAME = 4


def column_scores(calls=None):
    """A network whose frame t scores only its own FRAME columns: read in windows, it must give
    exactly what it gives for the whole line. Records the widths of each batch it reads."""

    def scores(images, widths):
        if calls is not None:
            calls.append((images.shape[-1], widths.tolist()))
        frames = images.shape[-1] // FRAME
        columns = images[:, 0, :, : frames * FRAME].float().mean(1)  # (N, W)
        per_frame = columns.reshape(images.shape[0], frames, FRAME).mean(-1)  # (N, T)
        log_probs = torch.stack([per_frame, -per_frame, per_frame * 2], -1).permute(1, 0, 2)
        return log_probs, torch.div(widths, FRAME, rounding_mode="floor").clamp(min=1)
    return scores


def test_a_line_read_in_windows_has_the_frames_of_the_whole_line():
    torch.manual_seed(0)
    widths = torch.tensor([40, 1000, 333, 2500, 520])
    images = torch.zeros(len(widths), 1, 8, int(widths.max()))
    for k, width in enumerate(widths.tolist()):
        images[k, ..., :width] = torch.rand(1, 8, width)
    calls = []
    whole, whole_lengths = column_scores()(images, widths)
    joined, lengths = windowed_scores(column_scores(calls), images, widths, window=512, overlap=64, frame_width=FRAME)
    assert lengths.tolist() == whole_lengths.tolist() == [10, 250, 83, 625, 130]
    for k, length in enumerate(lengths.tolist()):
        assert torch.equal(joined[:length, k], whole[:length, k])
        assert not joined[length:, k].any()  # nothing past the line's end
    # The network never saw more than a window, and a window only the lines that reach into it.
    assert max(width for width, _ in calls) == 512
    assert calls[0][1] == [40, 512, 333, 512, 512]
    assert calls[1][1] == [512, 512, 72]  # from 448: the 1000 and 2500 lines, and the 520 one's last 72 pixels
    assert all(len(batch) == 1 for _, batch in calls[3:])  # past 1000 pixels the 2500 line alone


def test_window_joins_are_whole_frames_and_need_a_window_wider_than_the_overlap():
    assert window_geometry(4096, 192, 4.0) == (4096, 192)
    assert window_geometry(4099, 190, 4.0) == (4096, 184)  # the overlap an even number of frames
    assert window_geometry(4096, 192, 1.0) == (4096, 192)
    assert window_geometry(4096, 192, 2.5) is None  # frames that are not whole pixels
    assert window_geometry(200, 200, 4.0) is None


def test_a_recognizer_reads_a_line_wider_than_its_max_width_whole_and_the_network_in_windows(tmp_path):
    from hwr.recognition.model import Recognizer

    from helpers import make_untrained_model

    folder = make_untrained_model(tmp_path / "tiny")
    config = Recognizer.load(folder, device="cpu").config
    config.normalize = {**config.normalize, "max_width": 512}
    (folder / "config.json").write_text(config.to_json())
    recognizer = Recognizer.load(folder, device="cpu")
    height = recognizer.normalize_config.line_height
    rng = np.random.default_rng(0)
    page = np.full((height * 2, 3000), 255, np.uint8)
    page[height // 2 : height * 3 // 2, 10:2990] = rng.integers(0, 120, (height, 2980))
    seen = []
    forward = recognizer.net.forward
    recognizer.net.forward = lambda images, widths: (seen.append(images.shape[-1]), forward(images, widths))[1]
    line = recognizer.preprocess(page)
    assert line.shape[1] > 2 * 512  # not squeezed to the model's max_width
    log_probs, lengths = recognizer.log_probs([line])
    assert lengths.tolist() == [line.shape[1] // int(recognizer.frame_width)]
    assert seen and max(seen) <= 512
    squeezing = Recognizer.load(folder, device="cpu", windowed=False)
    assert squeezing.preprocess(page).shape[1] == 512


@pytest.mark.parametrize("width", [511, 512, 513])
def test_a_batch_no_wider_than_the_window_is_read_at_once(width):
    calls = []
    images = torch.rand(2, 1, 8, width)
    widths = torch.tensor([width, 100])
    joined, lengths = windowed_scores(column_scores(calls), images, widths, window=512, overlap=64, frame_width=FRAME)
    assert len(calls) == (1 if width <= 512 else 2)
    assert lengths.tolist() == [width // FRAME, 25]


@pytest.mark.parametrize("preset,overrides", [("graves2009", {"hidden_sizes": [2, 3, 4]}), (
    "voigtlaender2016", {"hidden_sizes": [2, 3], "conv_channels": [3, 4], "line_height": 16})])
def test_an_mdlstm_read_in_windows_counts_the_frames_it_counts_for_the_whole_line(preset, overrides):
    """Its frames are 8 or 4 pixels (rounded up or floored at a ragged edge): windows that took a
    window's first pixel for its first frame had read most of a line as empty frames."""
    from hwr.recognition.nets import build_network, make_config

    torch.manual_seed(0)
    net = build_network("mdlstm", make_config("mdlstm", preset, **overrides), 12).eval()
    window, overlap = window_geometry(128, 32, float(net.width_factor))
    widths = torch.tensor([403, 90, 261])
    images = torch.rand(3, 1, net.config.line_height, 403)
    with torch.no_grad():
        joined, lengths = windowed_scores(net, images, widths, window, overlap, net.width_factor)
        whole, whole_lengths = net(images, widths)
    assert lengths.tolist() == whole_lengths.tolist() == net.frame_counts(widths).tolist()
    assert joined.shape[0] >= int(lengths.max()) and joined[: int(lengths[1]), 1].abs().sum() > 0
