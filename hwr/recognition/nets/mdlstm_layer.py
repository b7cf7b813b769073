"""Two-dimensional LSTM layer (Graves, Fernandez & Schmidhuber, ICANN 2007; Graves &
Schmidhuber, NIPS 2009), scanned in four directions and computed one anti-diagonal at a time.

At pixel (i, j) of a scan, the gates see the input x(i, j) and the hidden states of the pixel
above, h(i-1, j), and of the pixel to the left, h(i, j-1):

    [i, f1, f2, o, g] = W x(i, j) + U [h(i-1, j), h(i, j-1)] + b
    c(i, j) = s(i) * tanh(g) + s(f1) * c(i-1, j) + s(f2) * c(i, j-1)
    h(i, j) = s(o) * tanh(c(i, j))

with one forget gate per dimension. Four scans, one from each corner (the image flipped along
each axis), give every pixel context from the whole image; the layer returns the four
directions' hidden states side by side, as RNNLIB feeds them to the next layer.

Speed (Voigtlaender, Doetsch & Ney, ICFHR 2016): all pixels with i + j = d depend only on
diagonal d - 1, so the H x W scan is H + W - 1 parallel steps instead of H * W. The four
directions run in the same steps (stacked in the batch, one batched matmul with their four
recurrent matrices), and the input projections of all pixels are one matmul before the scan,
so a step is a single small matmul [h_up, h_left] @ U plus the fused gate arithmetic.

Layout: features last, (N, H, W, C), like `nn.LSTM(batch_first=True)`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

# (flip rows, flip columns) of the four scans: from the top-left, top-right, bottom-left and
# bottom-right corner. The order fixes the channel blocks of the layer's output.
DIRECTIONS = ((False, False), (False, True), (True, False), (True, True))
NUM_DIRECTIONS = len(DIRECTIONS)
NUM_GATES = 5  # input, forget (vertical), forget (horizontal), output, cell input
# Pre-activation given to the input and both forget gates at slots off the image grid: their
# sigmoids are exactly 0 (also in float16), so c = 0 and h = o * tanh(0) = 0 there, and the
# backward's sigmoid derivatives vanish too. This lets every step compute whole columns of the
# skewed grid (fixed shapes, no per-step slicing) while the border still reads as zero state.
OFF_GRID = -1e4


class MDLSTM2d(nn.Module):
    """A 2D-LSTM layer scanning an image from its four corners.

    `forward(x, widths)`: x (N, H, W, input_size), widths (N,) the valid columns of each image.
    Returns (N, H, W, 4 * hidden_size): the four directions' hidden states (direction-major,
    in `DIRECTIONS` order), zero at padded columns.

    Padding never leaks into valid pixels: each image is mirrored within its own valid width
    (not the padded tensor's width), so in every scan its padded columns come after its valid
    ones and cannot reach them.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        gates = NUM_GATES * hidden_size
        # One matmul gives the input part of all gates of all four directions for every pixel.
        self.input_proj = nn.Linear(input_size, NUM_DIRECTIONS * gates)
        # Recurrent weights per direction: rows [h_up; h_left], columns the five gates.
        self.recurrent = nn.Parameter(torch.empty(NUM_DIRECTIONS, 2 * hidden_size, gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot per gate block: Voigtlaender et al. (2016) found that deep MDLSTM stacks do
        # not converge with the fixed-deviation init of RNNLIB but do with Glorot's.
        n = self.hidden_size
        bound_in = math.sqrt(6.0 / (self.input_size + n))
        bound_rec = math.sqrt(6.0 / (2 * n + n))
        nn.init.uniform_(self.input_proj.weight, -bound_in, bound_in)
        nn.init.uniform_(self.recurrent, -bound_rec, bound_rec)
        # Zero bias: both forget gates start at 0.5, so c starts as an average of its two
        # neighbours. With f1 + f2 > 1 the 2D cell state can grow without bound along the
        # diagonal (Leifert et al., JMLR 2016), so no "forget bias 1" trick here.
        nn.init.zeros_(self.input_proj.bias)

    def forward(self, x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        widths = widths.to(device=x.device, dtype=torch.long)
        gate_inputs = self.input_proj(x)  # (N, H, W, 4 * 5 * hidden)
        plan = ScanPlan(n, h, w, widths)
        skewed = plan.skew(gate_inputs.reshape(-1, NUM_GATES * self.hidden_size))
        states = diagonal_scan(skewed, self.recurrent)
        return plan.unskew(states).view(n, h, w, NUM_DIRECTIONS * self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, directions={NUM_DIRECTIONS}"


class ScanPlan:
    """Index maps between image pixels and (diagonal, direction, image, row) scan slots.

    Mirroring, skewing into diagonals and masking of padded columns are each a single
    `index_select` (a gather whose backward is one `index_add`), computed per batch from the
    widths: cheaper and simpler than flipping, padding and masking tensors step by step.
    Slot (d, k, b, i) of direction k holds the pixel at scan coordinates (i, d - i).
    """

    def __init__(self, n: int, h: int, w: int, widths: torch.Tensor):
        self.n, self.h, self.w = n, h, w
        self.num_diagonals = h + w - 1
        device = widths.device
        flip_rows = torch.tensor([fr for fr, _ in DIRECTIONS], device=device)
        flip_cols = torch.tensor([fc for _, fc in DIRECTIONS], device=device)
        self.skew_index, self.on_grid = self._skew_index(widths, flip_rows, flip_cols)
        self.unskew_index = self._unskew_index(widths, flip_rows, flip_cols)

    def _skew_index(self, widths, flip_rows, flip_cols) -> tuple[torch.Tensor, torch.Tensor]:
        n, h, w = self.n, self.h, self.w
        device = widths.device
        d = torch.arange(self.num_diagonals, device=device).view(-1, 1, 1, 1)
        k = torch.arange(NUM_DIRECTIONS, device=device).view(1, -1, 1, 1)
        b = torch.arange(n, device=device).view(1, 1, -1, 1)
        i = torch.arange(h, device=device).view(1, 1, 1, -1)
        j = d - i
        on_grid = (j >= 0) & (j < w)
        j = j.clamp(0, w - 1)
        width = widths.view(1, 1, -1, 1)
        row = torch.where(flip_rows.view(1, -1, 1, 1), h - 1 - i, i)
        # Mirror within the image's own width; padded columns keep their place after it.
        col = torch.where(flip_cols.view(1, -1, 1, 1) & (j < width), width - 1 - j, j)
        source = ((b * h + row) * w + col) * NUM_DIRECTIONS + k
        index = torch.where(on_grid, source, torch.zeros_like(source)).reshape(-1)
        return index, on_grid.view(-1, 1, h, 1)  # on_grid: the same for all directions, images

    def _unskew_index(self, widths, flip_rows, flip_cols) -> torch.Tensor:
        n, h, w = self.n, self.h, self.w
        device = widths.device
        b = torch.arange(n, device=device).view(-1, 1, 1, 1)
        i = torch.arange(h, device=device).view(1, -1, 1, 1)
        j = torch.arange(w, device=device).view(1, 1, -1, 1)
        k = torch.arange(NUM_DIRECTIONS, device=device).view(1, 1, 1, -1)
        width = widths.view(-1, 1, 1, 1)
        row = torch.where(flip_rows.view(1, 1, 1, -1), h - 1 - i, i)
        col = torch.where(flip_cols.view(1, 1, 1, -1), width - 1 - j, j)
        # The scan's states carry a zero row 0 above each diagonal (see diagonal_scan): padded
        # pixels read slot 0 and come out as zeros.
        source = (((row + col) * NUM_DIRECTIONS + k) * n + b) * (h + 1) + row + 1
        return torch.where(j < width, source, torch.zeros_like(source)).reshape(-1)

    def skew(self, gate_inputs: torch.Tensor) -> torch.Tensor:
        """(N*H*W*4, G) pixel-major gate inputs -> (D, 4N, H, G) diagonal-major."""
        gates = gate_inputs.shape[-1]
        out = gate_inputs.index_select(0, self.skew_index)
        out = out.view(self.num_diagonals, NUM_DIRECTIONS * self.n, self.h, gates)
        switched_off = torch.zeros(gates, dtype=out.dtype, device=out.device)
        switched_off[: 3 * gates // NUM_GATES] = OFF_GRID
        return torch.where(self.on_grid, out, switched_off)

    def unskew(self, states: torch.Tensor) -> torch.Tensor:
        """(D, 4N, H+1, hidden) scan states -> (N, H, W, 4, hidden) pixel-major."""
        hidden = states.shape[-1]
        out = states.reshape(-1, hidden).index_select(0, self.unskew_index)
        return out.view(self.n, self.h, self.w, NUM_DIRECTIONS, hidden)


def diagonal_scan(skewed: torch.Tensor, recurrent: torch.Tensor) -> torch.Tensor:
    """Run the 2D-LSTM recurrence over the anti-diagonals of all directions at once.

    skewed: (D, 4N, H, 5*hidden) input part of the gates, slot i of diagonal d = pixel
    (i, d - i) in the direction's scan order, off-grid slots switched off (`OFF_GRID`).
    recurrent: (4, 2*hidden, 5*hidden). Returns the hidden states (D, 4N, H+1, hidden), row 0
    zero.

    Under mixed precision the scan still runs in the weights' precision (float32): the cell
    state is a running sum over up to H + W - 1 steps, and the per-step matmuls are too small
    for half precision to pay off.
    """
    return DiagonalScan.apply(skewed.to(recurrent.dtype), recurrent)


class DiagonalScan(torch.autograd.Function):
    """The scan with a hand-written backward (backpropagation through the diagonals).

    Letting autograd record every step costs a dozen graph nodes per diagonal, and their slice
    backwards allocate state-sized zero tensors; on CPU that bookkeeping, not arithmetic, is
    what takes the time (a line of 512 px is ~300 diagonals over three layers). Here a step
    is ~10 tensor ops writing into preallocated buffers, every per-diagonal view is made up
    front by `unbind`, and all gate derivatives that do not depend on the incoming gradient
    are computed for the whole scan in one vectorised pass before the reverse walk.

    State layout: diagonal d's hidden and cell states are (4N, H+1, hidden) slices of the
    buffers, row r + 1 holding row r and row 0 staying zero. The up-neighbour of (i, d - i) is
    row i-1 of diagonal d-1 and the left-neighbour is row i of diagonal d-1, so they are rows
    0..H-1 and 1..H of the previous slice: plain views, no state grid is ever copied. Every
    row is computed at every step; off-grid rows come out exactly zero (see `OFF_GRID`) and
    read as missing neighbours at the image border.
    """

    @staticmethod
    def forward(ctx, skewed, recurrent):
        # Autocast would run the matmuls below in half precision and clash with the float32
        # out= buffers; the inputs are already in the weights' dtype (see diagonal_scan).
        with torch.autocast(skewed.device.type, enabled=False):
            return DiagonalScan._forward(ctx, skewed, recurrent)

    @staticmethod
    def _forward(ctx, skewed, recurrent):
        num_diagonals, batch, h, gates = skewed.shape
        hidden = gates // NUM_GATES
        dirs = recurrent.shape[0]
        hs = skewed.new_zeros(num_diagonals + 1, batch, h + 1, hidden)  # hs[0]: before the scan
        cs = torch.zeros_like(hs)
        acts = torch.empty_like(skewed)  # sigmoid(i, f1, f2, o) and tanh(g) per slot
        inputs = skewed.view(num_diagonals, dirs, -1, gates).unbind(0)
        h_up, h_left = hs[:-1, :, :-1].unbind(0), hs[:-1, :, 1:].unbind(0)
        c_up, c_left = cs[:-1, :, :-1].unbind(0), cs[:-1, :, 1:].unbind(0)
        h_new, c_new = hs[1:, :, 1:].unbind(0), cs[1:, :, 1:].unbind(0)
        sig_out, tanh_out = (a.unbind(0) for a in acts.split((4 * hidden, hidden), dim=-1))
        i, f_up, f_left, o, g = (a.unbind(0) for a in acts.chunk(NUM_GATES, dim=-1))
        for d in range(num_diagonals):
            neighbours = torch.cat((h_up[d], h_left[d]), dim=2).view(dirs, -1, 2 * hidden)
            pre = torch.baddbmm(inputs[d], neighbours, recurrent).view(batch, h, gates)
            pre_sig, pre_g = pre.split((4 * hidden, hidden), dim=-1)
            torch.sigmoid(pre_sig, out=sig_out[d])
            torch.tanh(pre_g, out=tanh_out[d])
            # c = i * g + f1 * c(i-1, j) + f2 * c(i, j-1); h = o * tanh(c)
            c = torch.mul(i[d], g[d], out=c_new[d])
            c.addcmul_(f_up[d], c_up[d]).addcmul_(f_left[d], c_left[d])
            torch.mul(o[d], torch.tanh(c), out=h_new[d])
        ctx.save_for_backward(recurrent, hs, cs, acts)
        return hs[1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hs):
        with torch.autocast(grad_hs.device.type, enabled=False):
            return DiagonalScan._backward(ctx, grad_hs)

    @staticmethod
    def _backward(ctx, grad_hs):
        recurrent, hs, cs, acts = ctx.saved_tensors
        num_diagonals, batch, h, gates = acts.shape
        hidden = gates // NUM_GATES
        dirs = recurrent.shape[0]
        gate_scale, dc_from_dh = _local_derivatives(acts, cs)
        # gh[d + 1] / gc[d + 1]: gradient wrt diagonal d's states, the output's gradient plus
        # what later diagonals send back through the recurrence.
        gh = torch.cat((torch.zeros_like(grad_hs[:1]), grad_hs))
        gc = torch.zeros_like(gh)
        grad_pre = torch.empty_like(acts)
        gh_here, gc_here = gh[1:, :, 1:].unbind(0), gc[1:, :, 1:].unbind(0)
        gh_up, gh_left = gh[:-1, :, :-1].unbind(0), gh[:-1, :, 1:].unbind(0)
        gc_up, gc_left = gc[:-1, :, :-1].unbind(0), gc[:-1, :, 1:].unbind(0)
        f_up, f_left = (a.unbind(0) for a in acts.chunk(NUM_GATES, dim=-1)[1:3])
        scale, from_dh, out = gate_scale.unbind(0), dc_from_dh.unbind(0), grad_pre.unbind(0)
        recurrent_t = recurrent.transpose(1, 2)
        for d in reversed(range(num_diagonals)):
            dh = gh_here[d]
            dc = gc_here[d].addcmul_(dh, from_dh[d])
            # d(pre): the gates' share of dc (i, f1, f2, g) and of dh (o), times the local
            # derivatives precomputed in `gate_scale`.
            dpre = torch.mul(torch.cat((dc, dc, dc, dh, dc), dim=-1), scale[d], out=out[d])
            # Back to diagonal d-1: the cells through the forget gates, h through U.
            gc_up[d].addcmul_(dc, f_up[d])
            gc_left[d].addcmul_(dc, f_left[d])
            d_neighbours = torch.bmm(dpre.view(dirs, -1, gates), recurrent_t)
            d_up, d_left = d_neighbours.view(batch, h, 2 * hidden).split(hidden, dim=-1)
            gh_up[d].add_(d_up)
            gh_left[d].add_(d_left)
        return grad_pre, _recurrent_weight_grad(hs[:-1], grad_pre, dirs)


def _local_derivatives(acts: torch.Tensor, cs: torch.Tensor):
    """Everything in the backward that does not depend on the incoming gradient, for all slots.

    With s = sigmoid, t = tanh: d(pre_i) = dc * t(g) * s'(i), d(pre_f1) = dc * c_up * s'(f1),
    d(pre_f2) = dc * c_left * s'(f2), d(pre_o) = dh * t(c) * s'(o), d(pre_g) = dc * i * t'(g);
    and dc gets dh * o * t'(c) from its own hidden state.
    """
    i, _, _, o, g = acts.chunk(NUM_GATES, dim=-1)
    sig = acts[..., : 4 * i.shape[-1]]
    tanh_c = torch.tanh(cs[1:, :, 1:])
    gate_scale = torch.cat((g, cs[:-1, :, :-1], cs[:-1, :, 1:], tanh_c, i), dim=-1)
    gate_scale[..., : sig.shape[-1]] *= sig * (1 - sig)
    gate_scale[..., sig.shape[-1]:] *= 1 - g * g
    return gate_scale, o * (1 - tanh_c * tanh_c)


def _recurrent_weight_grad(h_prev: torch.Tensor, grad_pre: torch.Tensor, dirs: int):
    """dU[k] = sum over all slots of [h_up, h_left]^T d(pre), as one batched matmul."""
    num_diagonals, batch, h, gates = grad_pre.shape
    neighbours = torch.cat((h_prev[:, :, :-1], h_prev[:, :, 1:]), dim=3)
    neighbours = neighbours.view(num_diagonals, dirs, -1, neighbours.shape[-1]).transpose(0, 1)
    grad_pre = grad_pre.view(num_diagonals, dirs, -1, gates).transpose(0, 1)
    return torch.bmm(
        neighbours.reshape(dirs, -1, neighbours.shape[-1]).transpose(1, 2),
        grad_pre.reshape(dirs, -1, gates),
    )
