"""The 2D-LSTM wavefront layer against a per-pixel reference, and the MDLSTM networks."""
import pytest
import torch
import torch.nn as nn

from hwr.recognition.nets import build_network, count_parameters, make_config, prepare_for_inference
from hwr.recognition.nets.mdlstm import MDLSTMConfig
from hwr.recognition.nets.mdlstm_layer import DIRECTIONS, MDLSTM2d


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The scan is hundreds of small ops; on a busy 2-core machine OpenMP's barriers between
    two threads cost far more than they save (measured ~8x slower), so run these on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_mdlstm(layer: MDLSTM2d, x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Graves' 2D-LSTM written pixel by pixel, each image cut to its width and flipped whole."""
    n, h, _, _ = x.shape
    hidden, gates = layer.hidden_size, 5 * layer.hidden_size
    out = x.new_zeros(n, h, x.shape[2], 4 * hidden)
    zero = x.new_zeros(hidden)
    for k, (flip_rows, flip_cols) in enumerate(DIRECTIONS):
        weight = layer.input_proj.weight[k * gates:(k + 1) * gates]
        bias = layer.input_proj.bias[k * gates:(k + 1) * gates]
        for b in range(n):
            w = int(widths[b])
            img = x[b, :, :w]
            img = img.flip(0) if flip_rows else img
            img = img.flip(1) if flip_cols else img
            hs, cs = {}, {}
            for i in range(h):
                for j in range(w):
                    h_up, c_up = hs.get((i - 1, j), zero), cs.get((i - 1, j), zero)
                    h_left, c_left = hs.get((i, j - 1), zero), cs.get((i, j - 1), zero)
                    pre = weight @ img[i, j] + bias + torch.cat([h_up, h_left]) @ layer.recurrent[k]
                    ig, f_up, f_left, o = torch.sigmoid(pre[: 4 * hidden]).chunk(4)
                    cs[i, j] = ig * torch.tanh(pre[4 * hidden:]) + f_up * c_up + f_left * c_left
                    hs[i, j] = o * torch.tanh(cs[i, j])
            res = torch.stack([torch.stack([hs[i, j] for j in range(w)]) for i in range(h)])
            res = res.flip(0) if flip_rows else res
            res = res.flip(1) if flip_cols else res
            out[b, :, :w, k * hidden:(k + 1) * hidden] = res
    return out


def _layer(cin=3, hidden=2, seed=0):
    torch.manual_seed(seed)
    layer = MDLSTM2d(cin, hidden).double()
    with torch.no_grad():  # non-zero biases exercise the border and padding logic harder
        layer.input_proj.bias.normal_()
    return layer


@pytest.mark.parametrize(
    "h,w,widths", [(3, 5, [5, 3]), (4, 7, [7, 6, 2]), (1, 6, [6]), (5, 1, [1, 1])]
)
def test_wavefront_matches_per_pixel_reference(h, w, widths):
    layer = _layer()
    widths = torch.tensor(widths)
    x = torch.randn(len(widths), h, w, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(len(widths), h, w, 8, dtype=torch.float64)
    fast, slow = layer(x, widths), reference_mdlstm(layer, x, widths)
    assert torch.allclose(fast, slow, atol=1e-12)
    grads_fast = torch.autograd.grad((fast * weights).sum(), [x, *layer.parameters()])
    grads_slow = torch.autograd.grad((slow * weights).sum(), [x, *layer.parameters()])
    for g_fast, g_slow in zip(grads_fast, grads_slow):
        assert torch.allclose(g_fast, g_slow, atol=1e-10)


def test_gradcheck_all_directions_ragged_widths():
    layer = _layer(cin=2)
    widths = torch.tensor([5, 3])
    x = torch.randn(2, 3, 5, 2, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (x, widths))

    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("direction", range(4))
def test_padding_never_leaks_into_valid_pixels(direction):
    """A short image alone and at the front of a wide padded batch: same states, no gradient
    from its valid outputs into its padded columns, for each scan direction."""
    layer = _layer(seed=direction)
    short = torch.randn(1, 4, 5, 3, dtype=torch.float64)
    batch = torch.randn(2, 4, 9, 3, dtype=torch.float64)  # random (not zero) padding
    batch[0, :, :5] = short[0]
    batch.requires_grad_(True)
    block = slice(2 * direction, 2 * direction + 2)
    alone = layer(short, torch.tensor([5]))[..., block]
    together = layer(batch, torch.tensor([5, 9]))[..., block]
    assert torch.allclose(alone[0], together[0, :, :5], atol=1e-12)
    assert together[0, :, 5:].abs().max() == 0  # padded columns come out as zeros
    (grad,) = torch.autograd.grad(together[0].sum(), batch)
    assert grad[0, :, 5:].abs().max() == 0


def _net(preset, **overrides):
    torch.manual_seed(0)
    cfg = make_config("mdlstm", preset, **overrides)
    return build_network("mdlstm", cfg, 12), cfg


@pytest.mark.parametrize("preset,overrides", [("tiny", {}), ("tiny", {"direction_merge": "sum"}), (
    "voigtlaender2016", {"hidden_sizes": [2, 3], "conv_channels": [3, 4], "line_height": 16})])
def test_network_padding_never_changes_a_lines_output(preset, overrides):
    net, cfg = _net(preset, **overrides)
    net.eval()
    short = torch.rand(1, 1, cfg.line_height, 45)
    batch = torch.zeros(2, 1, cfg.line_height, 101)
    batch[0, :, :, :45] = short[0]
    batch[1] = torch.rand(1, cfg.line_height, 101)
    alone, n_alone = net(short, torch.tensor([45]))
    together, n_together = net(batch, torch.tensor([45, 101]))
    n = int(n_alone[0])
    assert int(n_together[0]) == n
    assert torch.allclose(alone[:n, 0], together[:n, 0], atol=1e-5)


@pytest.mark.parametrize("preset,overrides", [("tiny", {}), ("graves2009", {"hidden_sizes": [2, 3, 4]}), (
    "voigtlaender2016", {"hidden_sizes": [2, 3], "conv_channels": [3, 4], "line_height": 16})])
def test_frame_counts_from_the_widths_alone_match_the_network(preset, overrides):
    """The training step counts frames on the host from these, never waiting for the GPU."""
    net, cfg = _net(preset, **overrides)
    widths = torch.tensor([1, 3, 4, 5, 17, 40, 63, 64])
    _, frames = net(torch.rand(len(widths), 1, cfg.line_height, 64), widths)
    assert net.frame_counts(widths).tolist() == frames.tolist()


@pytest.mark.parametrize("preset,overrides,factor", [
    ("tiny", {}, None), ("graves2009", {"hidden_sizes": [2, 3, 4]}, 8),
    ("voigtlaender2016", {"hidden_sizes": [2, 3], "conv_channels": [3, 4], "line_height": 16}, 4)])
def test_the_width_factor_is_the_input_pixels_of_a_frame(preset, overrides, factor):
    """Word boxes and windowed reading (hwr.recognition.line_windows) map frames to pixels by it."""
    net, cfg = _net(preset, **overrides)
    assert factor is None or net.width_factor == factor
    widths = torch.tensor([net.width_factor * 16, net.width_factor * 16 + 1])
    frames = net.frame_counts(widths).tolist()
    assert frames[0] == 16 and frames[1] in (16, 17)  # a ragged edge: floored or rounded up


def _ctc_loss(logits, lengths, targets, target_lengths):
    log_probs = logits.log_softmax(-1)
    return nn.CTCLoss(blank=0, zero_infinity=False)(log_probs, targets, lengths, target_lengths)


@pytest.mark.parametrize(
    "preset,frames", [("graves2009", [25, 19]), ("voigtlaender2016", [50, 37])]
)
def test_presets_forward_backward_on_64px_lines(preset, frames):
    net, cfg = _net(preset)
    assert cfg.line_height == 64
    images = torch.rand(2, 1, 64, 200)
    images[1, :, :, 150:] = 0
    logits, lengths = net(images, torch.tensor([200, 150]))
    assert logits.shape == (max(frames), 2, 12)
    assert lengths.tolist() == frames
    targets = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 0]])
    loss = _ctc_loss(logits, lengths, targets, torch.tensor([4, 3]))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("preset", ["graves2009", "voigtlaender2016"])
def test_a_few_steps_on_one_example_reduce_the_loss(preset):
    net, _ = _net(preset, dropout=0.0)
    images = (torch.rand(1, 1, 64, 64) > 0.7).float()
    args = (torch.tensor([[3, 1, 4]]), torch.tensor([3]))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        logits, lengths = net(images, torch.tensor([64]))
        loss = _ctc_loss(logits, lengths, *args)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_config_roundtrip_presets_and_validation():
    cfg = make_config("mdlstm", "voigtlaender2016", line_height=128)
    assert MDLSTMConfig.from_dict(cfg.to_dict()) == cfg
    assert MDLSTMConfig() == MDLSTMConfig.preset("graves2009")
    graves = build_network("mdlstm", MDLSTMConfig(), 96)
    voigt = build_network("mdlstm", make_config("mdlstm", "voigtlaender2016"), 96)
    assert count_parameters(graves) < 200_000 < 1_000_000 < count_parameters(voigt)
    with pytest.raises(ValueError, match="preset"):
        make_config("mdlstm", "nope")
    with pytest.raises(ValueError, match="one block per stage"):
        build_network("mdlstm", MDLSTMConfig(blocks=[[2, 4]]), 10)


def test_mixed_precision_keeps_the_scan_in_float32():
    """Under autocast (bf16 here on CPU; the benchmark's AMP on CUDA) the network still trains:
    the gate projections run in low precision, the 2D-LSTM recurrence in float32."""
    net, cfg = _net("tiny")
    images = torch.rand(2, 1, cfg.line_height, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, lengths = net(images, torch.tensor([40, 31]))
    loss = _ctc_loss(logits.float(), lengths, torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_inference_preparation_keeps_the_scores():
    """prepare_for_inference (channels-last conv weights on the CPU) is safe for MDLSTM nets too."""
    torch.manual_seed(0)
    cfg = make_config("mdlstm", "voigtlaender2016")
    net = build_network("mdlstm", cfg, 20).eval()
    images, widths = torch.rand(2, 1, cfg.line_height, 64), torch.tensor([64, 41])
    with torch.no_grad():
        before, _ = net(images, widths)
        after, _ = prepare_for_inference(net, torch.device("cpu"))(images, widths)
    assert torch.allclose(before, after, atol=1e-4)
