"""StyleGAN3 (Karras et al., "Alias-Free Generative Adversarial Networks", NeurIPS 2021) on the
common generator interface: configs T (3x3 convs) and R (1x1 convs, radially symmetric
down-sampling filters, twice the channels).

Mapping: as StyleGAN2 (normalise z, `mapping_layers` equalised-lr lrelu layers, lr multiplier
0.01; 2 layers in the published configs), w_avg and truncation.
Synthesis, one `SynthesisLayer` per step, W+ row i for step i (num_ws = num_layers + 2):
- `FourierInput` (row 0): `channels` sinusoids with fixed random frequencies (inside a disc of
  radius = the first cut-off) and phases, sampled on a grid of `size` pixels at `sampling_rate`
  (the image plus margins). w0 sets a rotation and translation of the grid through a learned affine
  (r_c, r_s, t_x, t_y); the user transform buffer (3x3, the inverse of the image transform, as in
  NVlabs' gen_images.py) is applied after it. A learned channel mix follows.
- `AliasFreeLayer` x num_layers (rows 1..num_layers): modulated conv (weight and style
  pre-normalised, demodulated, input scaled by the tracked input magnitude), then filtered leaky
  ReLU: bias, up-sample with a Kaiser low-pass at the input cut-off, leaky ReLU at the higher
  temporary rate, down-sample with a low-pass at the output cut-off, crop the margins.
- the toRGB layer (row num_layers + 1): 1x1 modulated conv without demodulation, bias, clamp; the
  image is multiplied by `output_scale`.
Cut-offs, stop-bands, sampling rates, sizes and channels follow the paper's geometric schedule
(`layer_specs`). Panoramas widen the input canvas, which extends the Fourier grid: every layer
then keeps the extra width (scaled by its sampling rate), and the image grows by whole images. StyleGAN3 layers have no noise inputs: `noise_mode` is accepted and does nothing.

Differences from NVlabs' code, all within float rounding: the style pre-normalisation is per sample
(theirs takes one RMS over the batch, which only changes the 1e-8 of the demodulation), and fp16
layers run in fp32 here (their fp16 runs only on GPUs anyway).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .generator import Generator, LayerEditor, SynthesisLayer, SynthesisState, estimate_w_avg, register_architecture
from ..ops.filtered_lrelu import filtered_lrelu
from .stylegan2 import IMAGE_CHANNELS, SQRT2, EqualizedLinear, MappingNetwork

NOISE_MODES = ("const", "random", "none")
DEMODULATION_EPS = 1e-8


class TransformError(UserError, ValueError):
    """A user transform that cannot be applied."""


# -- the layer schedule --------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """Sampling and filter design of one synthesis layer (index 0..num_layers; the last is toRGB)."""

    index: int
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool

    @property
    def name(self) -> str:
        """NVlabs' attribute name of the layer, e.g. 'L3_52_1024'."""
        return f"L{self.index}_{self.out_size}_{self.out_channels}"


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: int
    bandwidth: float


def layer_specs(resolution: int, channel_base: int, channel_max: int, num_layers: int = 14, num_critical: int = 2,
                first_cutoff: float = 2, first_stopband: float = 2**2.1, last_stopband_rel: float = 2**0.3,
                margin_size: int = 10, num_fp16_res: int = 4) -> tuple[InputSpec, list[LayerSpec]]:
    """The paper's schedule: cut-offs f_c and minimum stop-bands f_t grow geometrically from the
    first layer to the last non-critical one, then stay at the image's Nyquist rate; each layer
    samples at the smallest power of two >= 2 f_t (at most the resolution) with `margin_size`
    extra pixels per side, except the last two, which are exactly the image."""
    last_cutoff = resolution / 2
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = IMAGE_CHANNELS
    specs = []
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        specs.append(LayerSpec(
            i, int(channels[p]), int(channels[i]), int(sizes[p]), int(sizes[i]), int(rates[p]), int(rates[i]),
            float(cutoffs[p]), float(cutoffs[i]), float(half_widths[p]), float(half_widths[i]),
            is_torgb=i == num_layers, is_critically_sampled=i >= num_layers - num_critical,
            use_fp16=bool(rates[i] * 2**num_fp16_res > resolution)))
    return InputSpec(int(channels[0]), int(sizes[0]), int(rates[0]), float(cutoffs[0])), specs


# -- filter design -------------------------------------------------------------------------------
def kaiser_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> torch.Tensor:
    """Windowed-sinc low-pass (Kaiser window sized for the transition band `width`), DC gain 1:
    the same design as scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)."""
    beta = _kaiser_beta(_kaiser_attenuation(numtaps, width / (fs / 2)))
    m = np.arange(numtaps) - (numtaps - 1) / 2
    normalised_cutoff = cutoff / (fs / 2)
    h = normalised_cutoff * np.sinc(normalised_cutoff * m) * np.kaiser(numtaps, beta)
    return torch.as_tensor(h / h.sum(), dtype=torch.float32)


def jinc_lowpass(numtaps: int, cutoff: float, width: float, fs: float) -> torch.Tensor:
    """Radially symmetric 2-D low-pass (config R's down-sampling filter): a jinc with cut-off
    `cutoff`, times the outer product of the Kaiser windows, normalised to sum 1."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = torch.as_tensor(np.hypot(*np.meshgrid(x, x)), dtype=torch.float64)
    f = torch.special.bessel_j1(2 * cutoff * math.pi * r) / (math.pi * r)
    window = np.kaiser(numtaps, _kaiser_beta(_kaiser_attenuation(numtaps, width / (fs / 2))))
    f = f * torch.as_tensor(np.outer(window, window))
    return (f / f.sum()).float()


def _kaiser_attenuation(numtaps: int, width: float) -> float:
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95  # Kaiser's formula, width relative to Nyquist


def _kaiser_beta(attenuation: float) -> float:
    if attenuation > 50:
        return 0.1102 * (attenuation - 8.7)
    if attenuation > 21:
        return 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21)
    return 0.0


# -- layers ------------------------------------------------------------------------------------
def transform_matrix(rotate_deg: float = 0.0, translate: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """The image transform of NVlabs' gen_images.py (rotation in degrees, translation in image
    widths: the image spans [-0.5, 0.5]); the input layer takes its inverse."""
    angle = math.radians(rotate_deg)
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]], dtype=torch.float64)


class FourierInput(SynthesisLayer):
    """Fourier features rotated/translated by w0 (row 0) and by the user transform; see the module docstring."""

    def __init__(self, spec: InputSpec, w_dim: int):
        super().__init__()
        # `resolution` is the sampling rate: the image size this layer's features correspond to (margins excluded).
        self.name, self.rows, self.resolution = "input", (0,), spec.sampling_rate
        self.spec = spec
        self.affine = EqualizedLinear(w_dim, 4)
        with torch.no_grad():  # NVlabs' initialisation: identity rotation, no translation
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.weight = nn.Parameter(torch.randn(spec.channels, spec.channels))
        radii_freqs = torch.randn(spec.channels, 2)
        radii = radii_freqs.norm(dim=1, keepdim=True)
        self.register_buffer("freqs", radii_freqs / (radii * radii.square().exp().pow(0.25)) * spec.bandwidth)
        self.register_buffer("phases", torch.rand(spec.channels) - 0.5)
        self.register_buffer("transform", torch.eye(3))

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        """(r_c, r_s, t_x, t_y) from w0, [B, 4]."""
        return self.affine(ws[:, self.rows[0]])

    def affine_matrix(self) -> torch.Tensor:
        return self.affine.effective_weight()

    def affine_bias(self) -> torch.Tensor:
        return self.affine.effective_bias()

    def forward(self, state: SynthesisState, t: torch.Tensor,
                user_transform: Optional[torch.Tensor] = None) -> SynthesisState:
        """state.x is the empty canvas [B, 0, h, w] of `input_state` (h = w = sampling_rate unless an
        editor widened it for a panorama): the features cover it plus the margins. `user_transform`
        (3x3, an inverse image transform) replaces the buffer for this call only (`TransformEditor`)."""
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        batch = t.shape[0]
        rotation = torch.eye(3, device=t.device).repeat(batch, 1, 1)
        rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        translation = torch.eye(3, device=t.device).repeat(batch, 1, 1)
        translation[:, 0, 2], translation[:, 1, 2] = -t[:, 2], -t[:, 3]
        # Both are inverse transforms of the image: first w0's rotation, then its translation, then the user's.
        user = self.transform if user_transform is None else user_transform
        transforms = rotation @ translation @ user.to(t)
        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = self.freqs @ transforms[:, :2, :2]  # [B, C, 2]
        # A transform can push frequencies past the band: fade them out before they alias.
        bandwidth, nyquist = self.spec.bandwidth, self.spec.sampling_rate / 2
        amplitudes = (1 - (freqs.norm(dim=2) - bandwidth) / (nyquist - bandwidth)).clamp(0, 1)
        grid = self.sample_grid(state.x.shape[-2], state.x.shape[-1], t)  # [H, W, 2]
        x = torch.sin(2 * math.pi * (grid @ freqs.transpose(1, 2).unsqueeze(1) + phases[:, None, None]))
        x = (x * amplitudes[:, None, None]) @ (self.weight / math.sqrt(self.spec.channels)).t()
        return SynthesisState(x.permute(0, 3, 1, 2), state.img)

    def sample_grid(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """Pixel centres in units of the image width, (x, y) per pixel, for a canvas of height x
        width plus the margins: [height + 2 m, width + 2 m, 2]. A wider canvas extends the same grid
        to the right (downwards), so the first `size` pixels are those of the unwidened image."""
        size, rate = self.spec.size, self.spec.sampling_rate
        margin = (size - rate) // 2

        def coords(count: int) -> torch.Tensor:
            return (torch.arange(count + 2 * margin, device=like.device, dtype=like.dtype) + 0.5 - size / 2) / rate

        y, x = torch.meshgrid(coords(height), coords(width), indexing="ij")
        return torch.stack([x, y], dim=-1)


class AliasFreeLayer(SynthesisLayer):
    """Modulated conv + filtered leaky ReLU (or, for the last layer, toRGB); see the module docstring."""

    def __init__(self, spec: LayerSpec, w_dim: int, conv_kernel: int, filter_size: int, lrelu_upsampling: int,
                 use_radial_filters: bool, conv_clamp: Optional[float]):
        super().__init__()
        self.name, self.rows, self.resolution = spec.name, (spec.index + 1,), spec.out_sampling_rate
        self.spec, self.conv_clamp = spec, conv_clamp
        self.kernel = 1 if spec.is_torgb else conv_kernel
        self.affine = EqualizedLinear(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, self.kernel, self.kernel))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self._design_filters(filter_size, 1 if spec.is_torgb else lrelu_upsampling, use_radial_filters)

    def _design_filters(self, filter_size: int, lrelu_upsampling: int, use_radial_filters: bool) -> None:
        spec = self.spec
        temporary_rate = max(spec.in_sampling_rate, spec.out_sampling_rate) * lrelu_upsampling
        self.up, self.down = temporary_rate // spec.in_sampling_rate, temporary_rate // spec.out_sampling_rate
        up_taps = filter_size * self.up if self.up > 1 and not spec.is_torgb else 1
        down_taps = filter_size * self.down if self.down > 1 and not spec.is_torgb else 1
        up_filter = None if up_taps == 1 else \
            kaiser_lowpass(up_taps, spec.in_cutoff, spec.in_half_width * 2, temporary_rate)
        down_filter = None
        if down_taps > 1:
            design = jinc_lowpass if use_radial_filters and not spec.is_critically_sampled else kaiser_lowpass
            down_filter = design(down_taps, spec.out_cutoff, spec.out_half_width * 2, temporary_rate)
        self.register_buffer("up_filter", up_filter)
        self.register_buffer("down_filter", down_filter)
        # Padding that keeps the output size, with sample positions at pixel centres (paper, appendix C.3).
        total = (spec.out_size - 1) * self.down + 1 - (spec.in_size + self.kernel - 1) * self.up + up_taps + down_taps - 2
        before = (total + self.up) // 2
        self.padding = (before, total - before, before, total - before)

    @property
    def style_gain(self) -> float:
        """toRGB scales its styles by its equalised-lr weight gain (it has no demodulation)."""
        return 1 / math.sqrt(self.spec.in_channels) if self.spec.is_torgb else 1.0

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        """The affine output for this layer's row, [B, in_channels]."""
        s = self.affine(ws[:, self.rows[0]])
        return s * self.style_gain if self.spec.is_torgb else s

    def affine_matrix(self) -> torch.Tensor:
        return self.affine.effective_weight() * self.style_gain

    def affine_bias(self) -> torch.Tensor:
        return self.affine.effective_bias() * self.style_gain

    def forward(self, state: SynthesisState, s: torch.Tensor) -> SynthesisState:
        x = self.modulated_conv(state.x, s)
        gain, slope = (1.0, 1.0) if self.spec.is_torgb else (SQRT2, 0.2)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), self.up, self.down,
                           self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)
        return SynthesisState(state.x, x) if self.spec.is_torgb else SynthesisState(x, state.img)

    def modulated_conv(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """conv(x, weight modulated by s and demodulated) with 'full' padding (kernel - 1), evaluated
        as scale inputs -> plain conv -> scale outputs (equal to modulating the weight)."""
        weight, input_gain = self.weight, self.magnitude_ema.rsqrt()
        out_scale = None
        if not self.spec.is_torgb:  # pre-normalise (keeps fp16 in range), then demodulate
            weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            s = s * s.square().mean(dim=1, keepdim=True).rsqrt()
            out_scale = (s.square() @ weight.square().sum(dim=[2, 3]).t() + DEMODULATION_EPS).rsqrt()
        x = F.conv2d(x * (s * input_gain)[:, :, None, None], weight.to(x.dtype), padding=self.kernel - 1)
        return x if out_scale is None else x * out_scale[:, :, None, None]


# -- the generator -------------------------------------------------------------------------------
@register_architecture
class StyleGAN3(Generator):
    """StyleGAN3-T (conv_kernel 3) or -R (conv_kernel 1, use_radial_filters, 2x channels)."""

    arch = "stylegan3"
    features_match_image = False

    def __init__(self, resolution: int = 1024, z_dim: int = 512, w_dim: int = 512, channel_base: int = 32768,
                 channel_max: int = 512, mapping_layers: int = 2, mapping_lr_multiplier: float = 0.01,
                 conv_kernel: int = 3, use_radial_filters: bool = False, num_layers: int = 14, num_critical: int = 2,
                 first_cutoff: float = 2, first_stopband: float = 2**2.1, last_stopband_rel: float = 2**0.3,
                 margin_size: int = 10, output_scale: float = 0.25, filter_size: int = 6, lrelu_upsampling: int = 2,
                 conv_clamp: Optional[float] = 256, num_fp16_res: int = 4):
        super().__init__()
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"StyleGAN3 resolution must be a power of two >= 4, got {resolution}")
        if num_layers <= num_critical or min(z_dim, w_dim, channel_base, channel_max, mapping_layers) < 1:
            raise ValueError("StyleGAN3 needs num_layers > num_critical and positive dimensions")
        self.config = dict(
            resolution=resolution, z_dim=z_dim, w_dim=w_dim, channel_base=channel_base, channel_max=channel_max,
            mapping_layers=mapping_layers, mapping_lr_multiplier=mapping_lr_multiplier, conv_kernel=conv_kernel,
            use_radial_filters=use_radial_filters, num_layers=num_layers, num_critical=num_critical,
            first_cutoff=first_cutoff, first_stopband=first_stopband, last_stopband_rel=last_stopband_rel,
            margin_size=margin_size, output_scale=output_scale, filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling, conv_clamp=conv_clamp, num_fp16_res=num_fp16_res)
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        self.mapping_mlp = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        input_spec, specs = layer_specs(resolution, channel_base, channel_max, num_layers, num_critical,
                                        first_cutoff, first_stopband, last_stopband_rel, margin_size, num_fp16_res)
        self.layers = nn.ModuleList([FourierInput(input_spec, w_dim)] + [
            AliasFreeLayer(spec, w_dim, conv_kernel, filter_size, lrelu_upsampling, use_radial_filters, conv_clamp)
            for spec in specs])
        self.noise_mode = "const"

    @property
    def input(self) -> FourierInput:
        return self.layers[0]

    def mapping_network(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping_mlp(z)

    def input_state(self, batch: int) -> SynthesisState:
        # An empty canvas at the first sampling rate: the Fourier input layer makes the features (from
        # w0) on its grid, so an editor that widens the canvas (a panorama) widens the Fourier grid.
        rate = self.input.spec.sampling_rate
        return SynthesisState(self.w_avg.new_empty(batch, 0, rate, rate))

    def output(self, state: SynthesisState) -> torch.Tensor:
        return state.img * self.output_scale if self.output_scale != 1 else state.img

    # -- the user transform ---------------------------------------------------------------------
    def set_transform(self, rotate_deg: float = 0.0, translate: tuple[float, float] = (0.0, 0.0)) -> None:
        """Rotate (degrees) and translate (image widths) every image rendered from now on, as
        NVlabs' gen_images.py does: the inverse of the transform goes into the input's buffer."""
        self.input.transform.copy_(inverse_transform(rotate_deg, translate).to(self.input.transform))

    @property
    def noise_mode(self) -> str:
        """Accepted for the common interface; StyleGAN3 has no noise inputs, so it changes nothing."""
        return self._noise_mode

    @noise_mode.setter
    def noise_mode(self, mode: str) -> None:
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        self._noise_mode = mode


def inverse_transform(rotate_deg: float = 0.0, translate: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """The input layer's 3x3 transform for an image rotated by `rotate_deg` and shifted by `translate`."""
    if not all(math.isfinite(float(v)) for v in (rotate_deg, *translate)):
        raise TransformError(f"rotation and translation must be finite numbers, got {rotate_deg}, {translate}")
    return torch.linalg.inv(transform_matrix(float(rotate_deg), (float(translate[0]), float(translate[1]))))


class TransformEditor(LayerEditor):
    """Renders with a user transform for one call, leaving the shared model's buffer alone (so
    concurrent requests on one model never see each other's rotation); other hooks go to `inner`."""

    def __init__(self, rotate_deg: float = 0.0, translate: tuple[float, float] = (0.0, 0.0),
                 inner: Optional[LayerEditor] = None) -> None:
        self.matrix = inverse_transform(rotate_deg, translate).float()
        self.inner = inner or LayerEditor()

    def begin(self, state: SynthesisState, generator: Generator) -> SynthesisState:
        return self.inner.begin(state, generator)

    def styles(self, index: int, layer: SynthesisLayer, s: torch.Tensor) -> torch.Tensor:
        return self.inner.styles(index, layer, s)

    def layer(self, index: int, layer: SynthesisLayer, state: SynthesisState, s: torch.Tensor) -> SynthesisState:
        if isinstance(layer, FourierInput):
            return layer(state, s, user_transform=self.matrix)
        return self.inner.layer(index, layer, state, s)

    def end(self, state: SynthesisState) -> SynthesisState:
        return self.inner.end(state)


def apply_user_transform(generator: Generator, rotate_deg: float = 0.0,
                         translate: tuple[float, float] = (0.0, 0.0)) -> None:
    """Set the rotation/translation of a StyleGAN3 model; on other architectures only the identity
    is accepted (their 4x4 constant input has no coordinate grid to transform)."""
    if isinstance(generator, StyleGAN3):
        generator.set_transform(rotate_deg, translate)
    elif rotate_deg != 0 or any(v != 0 for v in translate):
        raise TransformError(f"rotation and translation need a StyleGAN3 model; this {generator.arch} model starts "
                             "from a fixed constant that cannot be rotated or shifted")


CONFIG_R = dict(conv_kernel=1, use_radial_filters=True)


def tiny_stylegan3(seed: int = 0, resolution: int = 32, config: str = "T") -> StyleGAN3:
    """A few-KB StyleGAN3 with random weights for tests: biases, the input affine and the input
    magnitudes are random too, so a test notices any parameter or buffer that is ignored or misplaced."""
    extra = CONFIG_R if config == "R" else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = StyleGAN3(resolution=resolution, z_dim=8, w_dim=8, channel_base=128 * (2 if extra else 1),
                              channel_max=8 * (2 if extra else 1), num_layers=4, num_critical=1, margin_size=2,
                              conv_clamp=None, **extra)
        with torch.no_grad():
            for name, tensor in generator.state_dict().items():
                if name.endswith("bias") or name == "layers.0.affine.weight":
                    tensor.add_(0.3 * torch.randn_like(tensor))
                elif name.endswith("magnitude_ema"):
                    tensor.copy_(0.5 + torch.rand([]))
        generator.w_avg.copy_(estimate_w_avg(generator.mapping_mlp, generator.z_dim, samples=1000, seed=seed))
    return generator.eval().requires_grad_(False)
