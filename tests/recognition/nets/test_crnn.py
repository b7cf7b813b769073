import pytest
import torch

from hwr.recognition.nets import build_network, count_parameters, make_config, prepare_for_inference
from hwr.recognition.nets.crnn import ConvBlock, mask_columns, strided_max_pool


def _net(preset="tiny", **overrides):
    torch.manual_seed(0)
    cfg = make_config("crnn", preset, **overrides)
    return build_network("crnn", cfg, 20).eval(), cfg


def test_output_shape_and_lengths():
    net, cfg = _net()
    images = torch.rand(3, 1, cfg.line_height, 120)
    logits, lengths = net(images, torch.tensor([120, 80, 33]))
    assert logits.shape == (60, 3, 20)
    assert lengths.tolist() == [60, 40, 16]


@pytest.mark.parametrize("preset", ["tiny", "small", "base"])
def test_frame_counts_from_the_widths_alone_match_the_conv_stack(preset):
    """On a GPU the packed kernel takes these host-side counts instead of copying the frames back."""
    net, cfg = _net(preset)
    widths = torch.tensor([1, 7, 8, 9, 63, 64, 65, 200, 255])
    images = torch.rand(len(widths), 1, cfg.line_height, 256)
    _, frames = net(images, widths)
    assert net.frame_counts(widths).tolist() == frames.tolist()


@pytest.mark.gpu
def test_on_cuda_host_widths_give_the_same_scores_as_device_widths():
    net, cfg = _net("tiny")
    net = net.cuda()
    images = torch.rand(3, 1, cfg.line_height, 120, device="cuda")
    widths = torch.tensor([120, 80, 33])
    host_logits, host_frames = net(images, widths)
    device_logits, device_frames = net(images, widths.cuda())
    assert host_frames.is_cuda and host_frames.tolist() == device_frames.tolist()
    assert torch.allclose(host_logits, device_logits)


@pytest.mark.gpu
def test_on_cuda_a_training_pass_from_host_widths_never_waits_for_the_gpu():
    """Forward and backward with the widths on the host: packing, unpacking and the frame counts
    stay off the GPU's queue (unpacking torch's unsorted packing copied the order back)."""
    net, cfg = _net("tiny")
    net = net.cuda().train()
    images = torch.rand(3, 1, cfg.line_height, 120, device="cuda")
    widths = torch.tensor([120, 80, 33])
    net(images, widths)[0].float().square().mean().backward()  # cuDNN and cuBLAS set up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        logits, _ = net(images, widths)
        logits.float().square().mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_padding_never_changes_a_lines_output(cell):
    """A line alone and the same line in a wider padded batch give the same scores."""
    net, cfg = _net(rnn_cell=cell)
    short = torch.rand(1, 1, cfg.line_height, 47)
    wide = torch.rand(1, 1, cfg.line_height, 130)
    batch = torch.zeros(2, 1, cfg.line_height, 130)
    batch[0, :, :, :47] = short[0]
    batch[1] = wide[0]
    alone, n_alone = net(short, torch.tensor([47]))
    together, n_together = net(batch, torch.tensor([47, 130]))
    n = int(n_alone[0])
    assert int(n_together[0]) == n
    assert torch.allclose(alone[:n, 0], together[:n, 0], atol=1e-5)


def test_presets_build_with_expected_sizes():
    small = build_network("crnn", make_config("crnn", "small"), 96)
    big = build_network("crnn", make_config("crnn", "puigcerver2017"), 96)
    assert 1_000_000 < count_parameters(small) < 5_000_000
    assert count_parameters(big) > count_parameters(small)
    assert make_config("crnn", "puigcerver2017").line_height == 128
    # `base` is the larger CPU-servable model of issue 19: 5-10 M parameters, same input as small.
    base = build_network("crnn", make_config("crnn", "base"), 96)
    assert 5_000_000 < count_parameters(base) < 10_000_000
    assert make_config("crnn", "base").line_height == make_config("crnn", "small").line_height


def test_unknown_preset_and_setting():
    with pytest.raises(ValueError, match="preset"):
        make_config("crnn", "nope")
    with pytest.raises(ValueError, match="no setting"):
        make_config("crnn", None, bogus=1)
    with pytest.raises(ValueError, match="unknown architecture"):
        make_config("transformer")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cpu_recurrence_matches_the_packed_cudnn_path(cell):
    """The CPU path (per-direction, reversed within each length) is the packed network exactly."""
    net, _ = _net(rnn_layers=2, rnn_cell=cell)
    seq = torch.rand(30, 3, net.feature_size)
    lengths = torch.tensor([30, 12, 1])
    packed = net.recur_packed(seq, lengths)
    reversed_ = net.recur_reversed(seq, lengths)
    assert torch.allclose(packed, reversed_, atol=1e-5)
    # Gradients reach every weight the same way as through the packed kernel.
    grads = []
    for recur in (net.recur_packed, net.recur_reversed):
        net.zero_grad()
        recur(seq, lengths).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in net.rnn.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-4)


def test_inference_preparation_keeps_the_scores():
    """Folding BatchNorm into the convs and going channels-last changes speed, not output."""
    net, cfg = _net("small")
    for module in net.modules():  # non-trivial running statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    images = torch.rand(2, 1, cfg.line_height, 96)
    widths = torch.tensor([96, 61])
    with torch.no_grad():
        before, _ = net(images, widths)
        fast = prepare_for_inference(net, torch.device("cpu"))
        after, _ = fast(images, widths)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert torch.allclose(before, after, atol=1e-4)


@pytest.mark.parametrize("halves_width", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
def test_strided_max_pool_is_max_pool2d(halves_width, channels_last):
    x = torch.randn(3, 5, 13, 27)  # odd height and width: the last row/column is dropped
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reference = torch.nn.MaxPool2d((2, 2) if halves_width else (2, 1))(x)
    assert torch.equal(strided_max_pool(x, halves_width), reference)


@pytest.mark.parametrize("pool, height_pool", [(True, False), (False, True), (False, False)])
def test_conv_block_pools_before_the_activation_without_changing_the_output(pool, height_pool):
    """conv -> norm -> pool -> activation equals the textbook conv -> norm -> activation -> pool,
    on the inference path (strided maxima) and on the training path (autograd)."""
    torch.manual_seed(0)
    block = ConvBlock(4, 6, pool, height_pool, dropout=0.0).eval()
    x = torch.randn(2, 4, 12, 30)
    widths = torch.tensor([30, 17])
    reference = block.act(block.norm(block.conv(x)))
    if block.pool is not None:
        reference = block.pool(reference)
    reference = mask_columns(reference, widths // 2 if pool else widths)
    with torch.no_grad():
        fast, _ = block(x, widths)
    trained, _ = block(x.requires_grad_(), widths)
    assert torch.equal(fast, reference)
    assert torch.equal(trained.detach(), reference)


@pytest.mark.parametrize("overrides, message", [
    ({"rnn_hidden": "64"}, "'rnn_hidden' must be a whole number"),
    ({"rnn_hidden": 64.5}, "'rnn_hidden' must be a whole number"),
    ({"conv_channels": 16}, "'conv_channels' must be a list of whole numbers"),
    ({"dropout": 2}, "dropout must be at least 0 and below 1"),
    ({"rnn_layers": 0}, "rnn_layers must be at least 1"),
    ({"norm": "layer"}, "norm must be batch or none"),
    ({"conv_channels": []}, "conv_channels must list channel counts"),
])
def test_a_network_setting_no_network_can_take_is_refused_naming_it(overrides, message):
    from hwr.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config("crnn", "small", **overrides)
    assert make_config("crnn", "small", dropout=0, rnn_hidden=64).dropout == 0.0  # an int where a float goes
    assert make_config("mdlstm", None, blocks=[[2, 4], [2, 2], [2, 1]]).blocks[0] == [2, 4]
    # Judged by the field's type, not the preset's value (this preset has no blocks at all).
    four = make_config("mdlstm", "voigtlaender2016", front="block", blocks=[[2, 4], [2, 2], [2, 1], [1, 1]],
                       hidden_sizes=[2, 10, 50, 60], subsample_sizes=[6, 20, 30])
    assert four.blocks[3] == [1, 1]
