"""StyleGAN2 (Karras et al., CVPR 2020; the stylegan2-ada-pytorch generator) on the common interface.

Mapping: z -> normalise the second moment -> `mapping_layers` equalised-lr linear layers with
leaky ReLU (lr multiplier 0.01) -> w. Synthesis ("skip" architecture): a learned 4x4 constant,
then per resolution block a 3x3 modulated/demodulated conv that upsamples (res > 4), a second one,
and a 1x1 toRGB whose output is added to the 2x-upsampled RGB image of the previous block.
Every conv and toRGB is one `SynthesisLayer`, so the generator's one synthesis loop and its
editors (blending, panoramas, spatial edits) drive StyleGAN2 exactly like the other architectures.

W+ rows: block 4 uses row 0 (conv1) and 1 (toRGB); block 2^k (k >= 3) uses rows 2k-5 (conv0),
2k-4 (conv1) and 2k-3 (toRGB): num_ws = 2 log2(resolution) - 2, 18 at 1024 px.

Parameters keep the official storage convention (weights ~ N(0, 1), scaled at run time: the
equalised learning rate), so checkpoints map one to one (see loading/stylegan2_formats.py). Everything runs in
the tensors' dtype (fp32 by default; the official code runs its top blocks in fp16 on GPUs, so
its images differ from these by fp16 rounding). Feature maps are channels_last and conv weights
are stored in oneDNN's layout: see benchmarks/bench_stylegan2.py for what each choice buys.
Rendering (no gradient) and optimisation (gradient to W+) may evaluate a modulated conv in two
algebraically equal ways (see `modulated_conv2d`), so their images agree to float rounding only.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .generator import Generator, SynthesisLayer, SynthesisState, estimate_w_avg, register_architecture, tile_to
from ..ops.bias_act import bias_act
from ..ops.upfirdn2d import filter_after_transposed_conv, setup_filter, upsample2d

NOISE_MODES = ("const", "random", "none")
SQRT2 = math.sqrt(2.0)
DEMODULATION_EPS = 1e-8
PIXEL_NORM_EPS = 1e-8
IMAGE_CHANNELS = 3


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature channels of a block: min(channel_base / resolution, channel_max), as in the official code."""
    return min(channel_base // resolution, channel_max)


class EqualizedLinear(nn.Module):
    """Linear layer with the equalised learning rate: stored weights are scaled by lr_multiplier/sqrt(in)
    and biases by lr_multiplier at run time, so every stored value has unit scale."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                 activation: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scaling the (small) input instead of the weight matrix avoids a weight-sized temporary.
        return bias_act(F.linear(x * self.weight_gain, self.weight), self.bias * self.bias_gain, act=self.activation)

    def effective_weight(self) -> torch.Tensor:
        """The [out, in] matrix this layer applies (gain folded in)."""
        return self.weight * self.weight_gain

    def effective_bias(self) -> torch.Tensor:
        return self.bias * self.bias_gain


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, w_dim]."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_multiplier: float):
        super().__init__()
        features = [z_dim] + [w_dim] * num_layers
        self.fcs = nn.ModuleList(
            EqualizedLinear(features[i], features[i + 1], lr_multiplier=lr_multiplier, activation="lrelu")
            for i in range(num_layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * (z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS).rsqrt()
        for fc in self.fcs:
            x = fc(x)
        return x


def demodulation_coefficients(weight_energy: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """1 / |modulated filter| per sample and output channel, [B, out]. The styles only scale input
    channels, so the squared filter norm is styles^2 @ weight_energy^T, with weight_energy [out, in]
    the sum of squared weights over the kernel."""
    return (styles.square() @ weight_energy.t() + DEMODULATION_EPS).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     output_scale: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
                     noise: Optional[torch.Tensor] = None, upsample: bool = False,
                     resample_filter: Optional[torch.Tensor] = None) -> torch.Tensor:
    """StyleGAN2's modulated convolution: the weight's input channels scaled by `styles` [B, in],
    each output channel by `output_scale` [B, out] (demodulation, activation gain), then + bias
    [out] + noise. With `upsample`: a stride-2 transposed convolution (the weight as stored, not
    flipped, as in the official generator), then the FIR filter.

    Two equivalent evaluations, picked for speed:
    - modulate the weight and run one plain convolution: for one sample when no gradient to the
      styles is needed (rendering), or when the feature map has more pixels than the weight has
      elements (high resolutions, few channels), where the weight-gradient convolution the backward
      pass then needs is cheaper than the extra passes over the large activations;
    - otherwise scale the activations before and the output after a convolution with the stored
      weight: a batched conv for any batch size, and with a frozen weight the backward pass to the
      styles needs no weight-gradient convolution (the costly part at low resolutions, 512 channels).
    """
    batch = x.shape[0]
    styles_need_grad = torch.is_grad_enabled() and styles.requires_grad
    if batch == 1 and (not styles_need_grad or x.shape[2] * x.shape[3] >= weight.numel()):
        factor = styles.reshape(1, -1) if output_scale is None else output_scale.reshape(-1, 1) * styles
        x = _conv(x, weight * factor[:, :, None, None], bias, upsample, resample_filter)
        return x if noise is None else x.add_(noise)
    x = _conv(x * styles.reshape(batch, -1, 1, 1), weight, None, upsample, resample_filter)
    if output_scale is not None:
        x = x * output_scale.reshape(batch, -1, 1, 1) if noise is None else \
            torch.addcmul(noise, x, output_scale.reshape(batch, -1, 1, 1))
    elif noise is not None:
        x = x + noise
    return x if bias is None else x.add_(bias.reshape(1, -1, 1, 1))


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], upsample: bool,
          resample_filter: Optional[torch.Tensor]) -> torch.Tensor:
    if weight.shape[-1] == 1 and not upsample:
        # A 1x1 conv as a matrix product over the channels_last pixels: same result, and its
        # backward is about twice as fast as oneDNN's for a 3-channel output.
        return F.linear(x.permute(0, 2, 3, 1), weight[:, :, 0, 0], bias).permute(0, 3, 1, 2)
    if not upsample:
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)
    x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    return filter_after_transposed_conv(x, resample_filter, bias)


def _in_onednn_layout(weight: torch.Tensor, transposed: bool) -> torch.Tensor:
    """The same [out, in, k, k] values stored so that the tensor the conv op receives (transposed
    for a transposed conv) is channels_last, oneDNN's layout. Loading a checkpoint copies into the
    parameter and keeps this layout, and modulated copies inherit it: no weight reorder per call."""
    if transposed:
        return weight.transpose(0, 1).contiguous(memory_format=torch.channels_last).transpose(0, 1)
    return weight.contiguous(memory_format=torch.channels_last)


class StyledConv(SynthesisLayer):
    """3x3 modulated conv (+ 2x upsampling for a block's conv0), noise, bias, leaky ReLU."""

    def __init__(self, name: str, row: int, resolution: int, in_channels: int, out_channels: int, w_dim: int,
                 upsample: bool, conv_clamp: Optional[float]):
        super().__init__()
        self.name, self.rows, self.resolution = name, (row,), resolution
        self.upsample = upsample
        self.conv_clamp = conv_clamp
        self.noise_mode = "const"
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(_in_onednn_layout(torch.randn(out_channels, in_channels, 3, 3), upsample))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self._energy_cache: tuple = (None, None)

    def weight_energy(self) -> torch.Tensor:
        """Squared weights summed over the kernel, [out, in]; cached while the weight is frozen and unchanged."""
        if self.weight.requires_grad:
            return self.weight.square().sum(dim=[2, 3])
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype)
        if self._energy_cache[0] != key:
            with torch.inference_mode(False):  # a cache made while rendering must serve autograd later
                self._energy_cache = (key, self.weight.square().sum(dim=[2, 3]))
        return self._energy_cache[1]

    def noise(self, batch: int, height: int, width: int, like: torch.Tensor) -> Optional[torch.Tensor]:
        if self.noise_mode == "random":
            return torch.randn(batch, 1, height, width, device=like.device, dtype=like.dtype) * self.noise_strength
        if self.noise_mode == "const":
            return tile_to(self.noise_const, height, width).to(like.dtype)[None, None] * self.noise_strength
        return None

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        return self.affine(ws[:, self.rows[0]])

    def affine_matrix(self) -> torch.Tensor:
        return self.affine.effective_weight()

    def affine_bias(self) -> torch.Tensor:
        return self.affine.effective_bias()

    def forward(self, state: SynthesisState, styles: torch.Tensor) -> SynthesisState:
        x = state.x
        factor = 2 if self.upsample else 1
        noise = self.noise(x.shape[0], x.shape[2] * factor, x.shape[3] * factor, x)
        # lrelu(z) * sqrt(2) == lrelu(sqrt(2) * z): the activation gain goes into the conv's output scale.
        x = modulated_conv2d(x, self.weight, styles, demodulation_coefficients(self.weight_energy(), styles) * SQRT2,
                             self.bias * SQRT2, None if noise is None else noise * SQRT2, self.upsample,
                             self.resample_filter)
        return SynthesisState(bias_act(x, act="lrelu", gain=1.0, clamp=self.conv_clamp, inplace=True), state.img)


class ToRGB(SynthesisLayer):
    """1x1 modulated conv (no demodulation) to RGB, added to the 2x-upsampled image of the previous block."""

    def __init__(self, name: str, row: int, resolution: int, in_channels: int, w_dim: int,
                 conv_clamp: Optional[float]):
        super().__init__()
        self.name, self.rows, self.resolution = name, (row,), resolution
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(IMAGE_CHANNELS, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(IMAGE_CHANNELS))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        # The official code scales the styles (not the weight) by toRGB's equalised-lr gain.
        return self.affine(ws[:, self.rows[0]]) * self.weight_gain

    def affine_matrix(self) -> torch.Tensor:
        return self.affine.effective_weight() * self.weight_gain

    def affine_bias(self) -> torch.Tensor:
        return self.affine.effective_bias() * self.weight_gain

    def forward(self, state: SynthesisState, styles: torch.Tensor) -> SynthesisState:
        rgb = modulated_conv2d(state.x, self.weight, styles, bias=self.bias)
        if self.conv_clamp is not None:
            rgb = rgb.clamp(-self.conv_clamp, self.conv_clamp)
        img = rgb if state.img is None else upsample2d(state.img, self.resample_filter) + rgb
        return SynthesisState(state.x, img)


@register_architecture
class StyleGAN2(Generator):
    """The official StyleGAN2 generator ("skip" toRGB architecture), 4 to 1024 px (any power of two)."""

    arch = "stylegan2"

    def __init__(self, resolution: int = 1024, z_dim: int = 512, w_dim: int = 512, channel_base: int = 32768,
                 channel_max: int = 512, mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 conv_clamp: Optional[float] = None):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 4, got {resolution}")
        if min(z_dim, w_dim, mapping_layers, channel_base, channel_max) < 1:
            raise ValueError("StyleGAN2 dimensions, channel_base/max and mapping_layers must be positive")
        if channel_base // resolution < 1:
            raise ValueError(f"channel_base {channel_base} leaves no channels at {resolution} px")
        self.config = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, channel_base=channel_base,
                           channel_max=channel_max, mapping_layers=mapping_layers,
                           mapping_lr_multiplier=mapping_lr_multiplier, conv_clamp=conv_clamp)
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.mapping_mlp = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.const = nn.Parameter(torch.randn(channels_at(4, channel_base, channel_max), 4, 4))
        self.layers = nn.ModuleList(self._build_layers(channel_base, channel_max, conv_clamp))
        self.num_ws = 2 * int(math.log2(resolution)) - 2

    def _build_layers(self, channel_base: int, channel_max: int, conv_clamp: Optional[float]) -> list[SynthesisLayer]:
        def channels(res: int) -> int:
            return channels_at(res, channel_base, channel_max)

        layers: list[SynthesisLayer] = [
            StyledConv("b4.conv1", 0, 4, channels(4), channels(4), self.w_dim, False, conv_clamp),
            ToRGB("b4.torgb", 1, 4, channels(4), self.w_dim, conv_clamp),
        ]
        row = 1
        for log2_res in range(3, int(math.log2(self.resolution)) + 1):
            res = 2**log2_res
            layers += [
                StyledConv(f"b{res}.conv0", row, res, channels(res // 2), channels(res), self.w_dim, True, conv_clamp),
                StyledConv(f"b{res}.conv1", row + 1, res, channels(res), channels(res), self.w_dim, False, conv_clamp),
                ToRGB(f"b{res}.torgb", row + 2, res, channels(res), self.w_dim, conv_clamp),
            ]
            row += 2
        return layers

    # -- Generator interface ---------------------------------------------------------------------
    def mapping_network(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping_mlp(z)

    def input_state(self, batch: int) -> SynthesisState:
        # channels_last from the start: every conv then runs in oneDNN's layout without reorders.
        const = self.const.unsqueeze(0).expand(batch, -1, -1, -1)
        return SynthesisState(const.contiguous(memory_format=torch.channels_last))

    @property
    def noise_mode(self) -> str:
        """'const' (the stored noise maps, deterministic), 'random' (fresh per call) or 'none'."""
        return next(layer.noise_mode for layer in self.layers if isinstance(layer, StyledConv))

    @noise_mode.setter
    def noise_mode(self, mode: str) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        for layer in self.layers:
            if isinstance(layer, StyledConv):
                layer.noise_mode = mode


def tiny_stylegan2(seed: int = 0, resolution: int = 32) -> StyleGAN2:
    """A few-KB StyleGAN2 with random weights for tests: every parameter is random and non-zero
    (noise strengths and biases included), so a test notices any parameter that is ignored or misplaced."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = StyleGAN2(resolution=resolution, z_dim=8, w_dim=8, channel_base=64, channel_max=8,
                              mapping_layers=2)
        with torch.no_grad():
            for name, parameter in generator.named_parameters():
                if name.endswith("bias") or name.endswith("noise_strength"):
                    parameter.add_(0.3 * torch.randn_like(parameter))
        generator.w_avg.copy_(estimate_w_avg(generator.mapping_mlp, generator.z_dim, samples=1000, seed=seed))
    return generator.eval().requires_grad_(False)
