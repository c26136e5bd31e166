"""MobileStyleGAN (Belousov, 2021): a distilled StyleGAN2 that upsamples with inverse Haar wavelets.

Structure (facts in docs WEIGHTS.md section 1):
  const [C0, 4, 4] -> conv1 (modulated full 3x3)
  -> per block i: up (modulate, inverse Haar: C -> C/4 channels at twice the size)
                  conv1, conv2 (modulated depthwise 3x3 + pointwise 1x1, + noise + bias, leaky ReLU)
  -> to_img (modulated 1x1 to 12 channels = 3 colours x 4 Haar bands, inverse Haar -> RGB).

W+ rows: conv1 reads row 0; block i reads row 3i+1 (up and conv1) and 3i+2 (conv2); row 3i+3 fed the
block's image head, which this (pruned) export does not have; to_img reads row num_ws-2, and the
last row is unused. So num_ws = 3 * blocks + 2 (23 for the 1024 px model).

The image is RGB in [-1, 1], not clamped (as from StyleGAN2). On CPU the work is memory passes
over large feature maps more than FLOPs, so the layers keep features channels-last, fold styles
into weights where one sample allows it, and run noise and activation in place
(benchmarks/bench_mobile.py compares against a straightforward port).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .generator import Generator, SynthesisLayer, SynthesisState, register_architecture, tile_to

LEAKY_SLOPE = 0.2
HAAR_BANDS = 4  # LL, LH, HL, HH


# Up to this many output channels, HaarUpsample runs the inverse Haar as a transposed convolution.
DENSE_HAAR_MAX_CHANNELS = 32


def inverse_haar(x: torch.Tensor) -> torch.Tensor:
    """One level of the inverse Haar transform (db1, zero mode): [B, 4C, H, W] -> [B, C, 2H, 2W].

    The channels hold C low-pass maps (LL) and then, channel by channel, the three high bands
    (LH: high-pass along y, HL: along x, HH). Haar filters have length 2, so each 2x2 output block
    mixes the four band values of one pixel. The output is channels-last, like every feature map here.
    """
    return _HaarButterflies.apply(0.5 * x)


class _HaarButterflies(torch.autograd.Function):
    """Twice the inverse Haar transform: the 1/2 of the filters is left to the caller, who folds it
    into a scale it applies anyway. The butterflies write straight into the strided 2x2 sub-grids
    of the output: a few passes over the data instead of the stack/permute copies of a generic
    formulation. Without the 1/2 the 4x4 mix is symmetric and so its own adjoint: the backward
    pass runs the same butterflies from the sub-grids of the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        batch, channels4, height, width = x.shape
        c = channels4 // HAAR_BANDS
        out = torch.empty(batch, c, 2 * height, 2 * width, dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        lh, hl, hh = x[:, c:].unflatten(1, (c, 3)).unbind(2)
        _butterflies(x[:, :c], lh, hl, hh, _subgrids(out))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        batch, c, height2, width2 = grad.shape
        grad_x = torch.empty(batch, HAAR_BANDS * c, height2 // 2, width2 // 2, dtype=grad.dtype,
                             device=grad.device, memory_format=torch.channels_last)
        lh, hl, hh = grad_x[:, c:].unflatten(1, (c, 3)).unbind(2)
        _butterflies(*_subgrids(grad), (grad_x[:, :c], lh, hl, hh))
        return grad_x


def _subgrids(image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Views of the pixels at (even, even), (even, odd), (odd, even), (odd, odd) positions."""
    return tuple(image[:, :, dy::2, dx::2] for dy in (0, 1) for dx in (0, 1))


def _butterflies(a0, a1, b0, b1, outs) -> None:
    """outs = (a0+a1 + b0+b1, a0+a1 - (b0+b1), a0-a1 + b0-b1, a0-a1 - (b0-b1)), written in place."""
    a_sum, a_diff, b_sum, b_diff = a0 + a1, a0 - a1, b0 + b1, b0 - b1
    torch.add(a_sum, b_sum, out=outs[0])
    torch.sub(a_sum, b_sum, out=outs[1])
    torch.add(a_diff, b_diff, out=outs[2])
    torch.sub(a_diff, b_diff, out=outs[3])


def haar_to_subpixels(channels: int) -> torch.Tensor:
    """[4C, 4C] matrix taking C pixels' Haar bands (layout of `inverse_haar`) to their 2x2 output
    blocks in pixel_shuffle order (c, dy, dx): inverse_haar(x) == pixel_shuffle(1x1 conv, 2)."""
    signs = torch.tensor([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]])  # [(dy, dx), band]
    matrix = torch.zeros(HAAR_BANDS * channels, HAAR_BANDS * channels)
    for c in range(channels):
        band_rows = [c] + [channels + 3 * c + k for k in range(3)]
        matrix[HAAR_BANDS * c : HAAR_BANDS * (c + 1), band_rows] = 0.5 * signs.float()
    return matrix


def haar_transposed_conv_weight(channels: int) -> torch.Tensor:
    """The inverse Haar transform of `channels` output channels as a conv_transpose2d weight
    [4C, C, 2, 2] (stride 2)."""
    return haar_to_subpixels(channels).t().reshape(HAAR_BANDS * channels, channels, 2, 2)


class _StyledHaarTransposedConv(torch.autograd.Function):
    """Inverse Haar of x * style as one transposed convolution (weight: haar_transposed_conv_weight).

    Backward: the Haar analysis of the gradient is the strided convolution with the same weights,
    and the style's gradient is that times x, summed over pixels; cheaper than the dense weight
    gradient autograd would compute for style-folded weights.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, style: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, style, weight)
        return modulated(F.conv_transpose2d, x, weight, style, stride=2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, style, weight = ctx.saved_tensors
        bands = F.conv2d(grad, weight, stride=2)  # gradient w.r.t. x * style
        grad_x = bands * style[:, :, None, None] if ctx.needs_input_grad[0] else None
        grad_style = (bands * x).sum((2, 3)) if ctx.needs_input_grad[1] else None
        return grad_x, grad_style, None


def modulated(conv, x: torch.Tensor, weight: torch.Tensor, style: torch.Tensor, **kwargs) -> torch.Tensor:
    """conv(x * style, weight, **kwargs) for a style [B, C_in] and a weight whose first dimension
    indexes the input channels (depthwise and transposed convolutions).

    A convolution is linear in each input channel, so for a single sample the style goes into the
    weights instead: that saves a full pass over x (the feature maps are the expensive part here).
    """
    if x.shape[0] == 1:
        return conv(x, weight * style.view(-1, *[1] * (weight.dim() - 1)), **kwargs)
    return conv(x * style[:, :, None, None], weight, **kwargs)


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C]: the pixels as rows of a matrix (a view for channels-last x)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def rows_to_image(rows: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of pixel_rows: [B, H*W, C] -> channels-last [B, C, H, W] (a view)."""
    return rows.view(rows.shape[0], height, width, -1).permute(0, 3, 1, 2)


def pointwise_noise_act(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor,
                        noise: torch.Tensor) -> torch.Tensor:
    """1x1 convolution (weight_t [C_in, C_out]) + bias, + noise map, leaky ReLU.

    On channels-last data the 1x1 convolution is one GEMM over the pixel rows (conv2d would take a
    slow path for 1x1 kernels on a small batch with one thread). The GEMM accumulates onto
    noise + bias, and the activation runs in place on that same tensor: one pass over the output
    instead of three. (In place on a view of it would make autograd copy the whole tensor.)
    """
    batch, channels, height, width = x.shape
    noise_rows = tile_to(noise, height, width).reshape(1, -1, 1).expand(batch, -1, -1).reshape(-1, 1)
    out = torch.add(noise_rows, bias)  # [B*H*W, C_out]
    out.addmm_(pixel_rows(x).reshape(-1, channels), weight_t)
    F.leaky_relu_(out, LEAKY_SLOPE)
    return rows_to_image(out.view(batch, -1, out.shape[1]), height, width)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """The feature maps are kept channels-last (pixels are rows of a matrix, and oneDNN's depthwise
    convolution is about 3x faster on them); a no-op when x already is."""
    return x.contiguous(memory_format=torch.channels_last)


class StyleAffine(nn.Linear):
    """w -> per-channel style (the 'modulation' linear layer), times a fixed scale."""

    def __init__(self, w_dim: int, channels: int, scale: float):
        super().__init__(w_dim, channels)
        self.scale = scale

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return super().forward(w) * self.scale


class StyledLayer(SynthesisLayer):
    """A MobileStyleGAN layer whose style is `affine` (a StyleAffine) of its one W+ row."""

    affine: StyleAffine

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        return self.affine(ws[:, self.rows[0]])

    def affine_matrix(self) -> torch.Tensor:
        return self.affine.weight * self.affine.scale

    def affine_bias(self) -> torch.Tensor:
        return self.affine.bias * self.affine.scale


def _add_noise_act_(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x + noise, leaky ReLU, in place: x is a fresh convolution output (not a view) nothing else holds."""
    x.add_(tile_to(noise, x.shape[-2], x.shape[-1]))
    return F.leaky_relu_(x, LEAKY_SLOPE)


class ConstConv(StyledLayer):
    """The first layer: a modulated full 3x3 convolution on the learned constant."""

    def __init__(self, row: int, w_dim: int, channels: int, size: int):
        super().__init__()
        self.name, self.rows, self.resolution = "conv1", (row,), size
        self.affine = StyleAffine(w_dim, channels, 1 / math.sqrt(channels * 9))
        self.weight = nn.Parameter(torch.zeros(channels, channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise", torch.zeros(1, 1, size, size))

    def forward(self, state: SynthesisState, style: torch.Tensor) -> SynthesisState:
        x = F.conv2d(state.x * style[:, :, None, None], self.weight, self.bias, padding=1)
        return SynthesisState(_add_noise_act_(x, self.noise))


class HaarUpsample(StyledLayer):
    """'up': modulate the C channels, then read them as Haar bands: C/4 channels at twice the size.

    Two exact implementations; the faster one depends on the width. With few channels, a
    transposed 2x2 convolution (a dense 4C -> C/4 kernel, stride 2) with the style folded into its
    weights runs at GEMM speed and writes the output in one go; its cost grows with C^2, so wider
    layers use the butterflies (a few elementwise passes).
    """

    def __init__(self, name: str, row: int, w_dim: int, channels: int, resolution: int):
        super().__init__()
        self.name, self.rows, self.resolution = name, (row,), resolution
        self.affine = StyleAffine(w_dim, channels, 1.0)
        out_channels = channels // HAAR_BANDS
        dense = haar_transposed_conv_weight(out_channels) if out_channels <= DENSE_HAAR_MAX_CHANNELS else None
        self.register_buffer("haar_weight", dense, persistent=False)

    def forward(self, state: SynthesisState, style: torch.Tensor) -> SynthesisState:
        x = channels_last(state.x)
        if self.haar_weight is not None:
            return SynthesisState(_StyledHaarTransposedConv.apply(x, style, self.haar_weight))
        return SynthesisState(_HaarButterflies.apply(x * (0.5 * style)[:, :, None, None]))


class SeparableConv(StyledLayer):
    """Modulated depthwise 3x3 + pointwise 1x1 (demodulation folded into the pointwise weights),
    + fixed noise + bias, leaky ReLU."""

    def __init__(self, name: str, row: int, w_dim: int, in_channels: int, out_channels: int, resolution: int):
        super().__init__()
        self.name, self.rows, self.resolution = name, (row,), resolution
        self.affine = StyleAffine(w_dim, in_channels, 1 / math.sqrt(in_channels * 9))
        self.weight_dw = nn.Parameter(torch.zeros(in_channels, 1, 3, 3))
        self.weight_pw = nn.Parameter(torch.zeros(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise", torch.zeros(1, 1, resolution, resolution))

    def forward(self, state: SynthesisState, style: torch.Tensor) -> SynthesisState:
        x = channels_last(state.x)
        x = modulated(F.conv2d, x, self.weight_dw, style, padding=1, groups=x.shape[1])
        return SynthesisState(pointwise_noise_act(x, self.weight_pw.flatten(1).t(), self.bias, self.noise))


class ToImage(StyledLayer):
    """Modulated 1x1 to 3 colours x 4 Haar bands, then the inverse Haar transform to RGB.

    Both steps are linear per pixel, so the Haar mix is folded into the 1x1 weights (one small
    GEMM per sample, style included) and the transform becomes a pixel shuffle.
    """

    def __init__(self, row: int, w_dim: int, in_channels: int, resolution: int):
        super().__init__()
        self.name, self.rows, self.resolution = "to_img", (row,), resolution
        self.affine = StyleAffine(w_dim, in_channels, 1 / math.sqrt(in_channels))
        self.weight = nn.Parameter(torch.zeros(3 * HAAR_BANDS, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(3 * HAAR_BANDS))
        self.register_buffer("haar", haar_to_subpixels(3), persistent=False)

    def forward(self, state: SynthesisState, style: torch.Tensor) -> SynthesisState:
        batch, _, height, width = state.x.shape
        weight = (self.haar @ self.weight.flatten(1)).t() * style[:, :, None]  # [B, C_in, 12]
        subpixels = torch.baddbmm(self.haar @ self.bias, pixel_rows(channels_last(state.x)), weight)
        # [B, H, W, (colour, dy, dx)] -> [B, colour, (H, dy), (W, dx)]: the pixel shuffle, one copy
        image = subpixels.view(batch, height, width, 3, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return SynthesisState(None, image.reshape(batch, 3, 2 * height, 2 * width))


class MappingNetwork(nn.Module):
    """Pixel norm, then n x (linear + leaky ReLU 0.2 times sqrt 2); equalised-lr gains folded in."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for linear in self.linears:
            x = F.leaky_relu(linear(x), LEAKY_SLOPE) * math.sqrt(2)
        return x


@register_architecture
class MobileStyleGAN(Generator):
    """MobileStyleGAN generator.

    `channels[0]` is the width of the constant and of conv1; `channels[i + 1]` the output width of
    block i. Every block doubles the size, and to_img doubles it once more: resolution =
    const_size * 2 ** (len(channels)), 1024 for the FFHQ model (channels 512 x5, 256, 128, 64).
    """

    arch = "mobile_stylegan"

    def __init__(self, channels: list[int], style_dim: int = 512, n_mapping: int = 8, const_size: int = 4):
        super().__init__()
        if len(channels) < 2 or any(c % HAAR_BANDS for c in channels):
            raise ValueError(f"channels needs >= 2 entries, each a multiple of 4; got {channels}")
        self.config = {"channels": list(channels), "style_dim": style_dim, "n_mapping": n_mapping,
                       "const_size": const_size}
        self.z_dim = self.w_dim = style_dim
        blocks = len(channels) - 1
        self.num_ws = 3 * blocks + 2
        self.resolution = const_size * 2 ** (blocks + 1)
        self.mapping_net = MappingNetwork(style_dim, n_mapping)
        self.const = nn.Parameter(torch.zeros(1, channels[0], const_size, const_size))
        self.register_buffer("w_avg", torch.zeros(style_dim))
        layers: list[SynthesisLayer] = [ConstConv(0, style_dim, channels[0], const_size)]
        for i in range(blocks):
            size = const_size * 2 ** (i + 1)
            c_in, c_up, c_out = channels[i], channels[i] // HAAR_BANDS, channels[i + 1]
            layers += [
                HaarUpsample(f"block{i}.up", 3 * i + 1, style_dim, c_in, size),
                SeparableConv(f"block{i}.conv1", 3 * i + 1, style_dim, c_up, c_out, size),
                SeparableConv(f"block{i}.conv2", 3 * i + 2, style_dim, c_out, c_out, size),
            ]
        layers.append(ToImage(self.num_ws - 2, style_dim, channels[-1], self.resolution))
        self.layers = nn.ModuleList(layers)

    def mapping_network(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping_net(z)

    def input_state(self, batch: int) -> SynthesisState:
        return SynthesisState(self.const.expand(batch, -1, -1, -1))


def tiny_mobile_stylegan(seed: int = 0) -> MobileStyleGAN:
    """A few-KB random MobileStyleGAN (64 px, 3 blocks, style_dim 8) for fast tests.

    Deterministic for a seed. The scales keep activations near unit variance through every layer
    (the leaky ReLU halves the variance, hence the sqrt(2)) so the image varies and stays in range.
    """
    gen = torch.Generator().manual_seed(seed)
    model = MobileStyleGAN(channels=[8, 8, 8, 4], style_dim=8, n_mapping=2)

    def fill(tensor: torch.Tensor, std: float, mean: float = 0.0) -> None:
        tensor.copy_(mean + std * torch.randn(tensor.shape, generator=gen))

    with torch.no_grad():
        for linear in model.mapping_net.linears:
            fill(linear.weight, 1 / math.sqrt(linear.in_features))
            fill(linear.bias, 0.1)
        fill(model.const, 1.0)
        for layer in model.layers:
            fill(layer.affine.weight, 0.3 / math.sqrt(layer.affine.in_features))
            fill(layer.affine.bias, 0.1, mean=1.0)
            if isinstance(layer, ConstConv):
                fill(layer.weight, math.sqrt(2))
            if isinstance(layer, SeparableConv):
                fill(layer.weight_dw, math.sqrt(layer.weight_dw.shape[0]))
                fill(layer.weight_pw, math.sqrt(2 / layer.weight_pw.shape[1]))
            if isinstance(layer, ToImage):
                fill(layer.weight, 0.5)
            if hasattr(layer, "bias"):
                fill(layer.bias, 0.1)
            if hasattr(layer, "noise"):
                fill(layer.noise, 0.1)
        model.w_avg.copy_(model.mapping_network(torch.randn(256, model.z_dim, generator=gen)).mean(0))
    return model.eval().requires_grad_(False)
