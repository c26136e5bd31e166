"""Feature interpolation of "StyleGAN of All Trades" (SOAT, Chong et al. 2021): blends and panoramas.

The synthesis network is fully convolutional, so two codes can be mixed in space: at every
blended layer the layer runs on the *same* input features once with code A's styles and once
with code B's, and the two outputs are mixed with a mask alpha resized to the layer's size:
    f_i = (1 - alpha_i) * layer_i(f_{i-1}; A) + alpha_i * layer_i(f_{i-1}; B)
(the RGB skip image likewise). `FeatureBlendEditor` does this as a `LayerEditor` of the one
synthesis loop: each blended layer runs twice with batch 1 (on this CPU 20% faster than once with
batch 2, benchmarks/results/edits.md). A panorama is a chain of such blends on features twice as
wide, whose middle strips are stitched together.

Masks: a number (constant alpha), an H x W array in [0, 1] of any size (resized to each layer), or
a function (height, width) -> [height, width] tensor evaluated at each layer's size, such as
`horizontal_ramp` and `vertical_ramp`. alpha = 0 gives A and alpha = 1 gives B exactly: bit for bit
the images `Generator.synthesis` renders for A or B alone.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..codes import (DEFAULT_PSI, DEFAULT_SMOOTHING_SIGMA, MAX_MASK_SIDE, MAX_PANORAMA_CODES,  # noqa: F401
                    MAX_PANORAMA_SIDE, POSE_RESOLUTION, SMOOTHING_SIGMA, InputError, check_code, check_number,
                    check_psi, check_whole_number, layers_between, pose_rows, random_codes)  # layers_between: for callers
from ..models.generator import Generator, LayerEditor, SynthesisLayer, SynthesisState

MaskFunction = Callable[[int, int], torch.Tensor]
MaskLike = Union[float, np.ndarray, torch.Tensor, MaskFunction]

# Worst-case budgets (edits.worst_case_bytes; S = one synthesis, IMAGE = one float32 R x R image):
# feature_blend: 2 S + 3 float32 copies of the mask (64 MB each at 4096 px); output R x R.
# render_panorama: 4 S + N IMAGE for the canvas; output N R x R, at most MAX_PANORAMA_SIDE long.
# Exact 0 and 1 survive resizing a mask only approximately; snap values this close to them.
SNAP = 1e-6
DIRECTIONS = {"horizontal": -1, "vertical": -2}  # the tensor axis a panorama grows along


# -- masks ------------------------------------------------------------------------------------
def _ramp(length: int) -> torch.Tensor:
    """SOAT's blend profile at pixel centres: 0 on the first quarter, linear across the middle
    half, 1 on the last quarter."""
    centres = (torch.arange(length, dtype=torch.float32) + 0.5) / length
    return ((centres - 0.25) / 0.5).clamp(0.0, 1.0)


def horizontal_ramp(height: int, width: int) -> torch.Tensor:
    """[height, width] mask: A on the left quarter, B on the right quarter, a ramp between."""
    return _ramp(width).expand(height, width)


def vertical_ramp(height: int, width: int) -> torch.Tensor:
    """[height, width] mask: A on the top quarter, B on the bottom quarter, a ramp between."""
    return _ramp(height).unsqueeze(1).expand(height, width)


def check_mask(mask) -> torch.Tensor:
    """A number or an array-like H x W mask (leading size-1 axes allowed) -> a float [H, W]
    tensor; ValueError if it is missing, empty, not 2-D, huge, not finite or outside [0, 1]."""
    if mask is None:
        raise InputError("the mask is missing: give a number in [0, 1] or an H x W array in [0, 1]")
    if isinstance(mask, (int, float)) and not isinstance(mask, bool):
        return torch.full((1, 1), check_number(mask, "the constant alpha", 0.0, 1.0))
    try:
        tensor = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"the mask must be an H x W array of numbers in [0, 1] ({error})") from None
    if tensor.dtype == torch.bool:
        tensor = tensor.float()
    if tensor.dim() == 0:
        return check_mask(float(tensor))
    if not (tensor.is_floating_point() or tensor.dtype in (torch.uint8, torch.int32, torch.int64)):
        raise InputError(f"the mask must hold numbers in [0, 1], got dtype {tensor.dtype}")
    while tensor.dim() > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 2:
        raise InputError(
            f"the mask must be a single-channel H x W array, got shape {list(tensor.shape)} "
            "(convert a painted RGB(A) image to one channel first)"
        )
    if tensor.numel() == 0:
        raise InputError(f"the mask is empty (shape {list(tensor.shape)})")
    if max(tensor.shape) > MAX_MASK_SIDE:
        raise InputError(f"the mask is {list(tensor.shape)}; at most {MAX_MASK_SIDE} px a side is accepted")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise InputError("the mask contains NaN or infinite values")
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0.0 or high > 1.0:
        raise InputError(f"mask values must be in [0, 1], got values in [{low:g}, {high:g}] (scale 0-255 masks by 1/255)")
    return tensor


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[H, W] mask -> [height, width] (bilinear, antialiased when shrinking). Constant masks stay
    exactly constant, and values within 1e-6 of 0 or 1 are snapped to them, so the parts where
    alpha is 0 or 1 reproduce A or B exactly."""
    if mask.shape == (height, width):
        return mask
    if mask.min() == mask.max():
        return mask.new_full((height, width), mask.flatten()[0].item())
    resized = F.interpolate(mask[None, None], size=(height, width), mode="bilinear",
                            align_corners=False, antialias=True)[0, 0]
    resized = resized.clamp(0.0, 1.0)
    return torch.where(resized < SNAP, 0.0, torch.where(resized > 1.0 - SNAP, 1.0, resized))


def feather_mask(mask, sigma_fraction: float, max_side: int) -> torch.Tensor:
    """A painted mask with soft edges: shrunk to at most `max_side` px a side (the model's
    resolution: no layer sees it finer), then blurred by a Gaussian of `sigma_fraction` x its
    longer side, edges repeated, so a stroke's border becomes a ramp instead of a step. Values
    beyond the blur's reach keep exactly 0 and 1 (the kernel is cut at 3 sigma)."""
    checked = check_mask(mask)
    sigma_fraction = check_number(sigma_fraction, "the feathering", 0.0, 0.5)
    height, width = checked.shape
    scale = min(1.0, max_side / max(height, width))
    checked = resize_mask(checked, max(1, round(height * scale)), max(1, round(width * scale)))
    sigma = sigma_fraction * max(checked.shape)
    if sigma < 0.5 or checked.min() == checked.max():
        return checked
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    padded = F.pad(checked[None, None], (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[0, 0]
    blurred = blurred.clamp(0.0, 1.0)
    return torch.where(blurred < SNAP, 0.0, torch.where(blurred > 1.0 - SNAP, 1.0, blurred))


def mask_function(mask: MaskLike) -> MaskFunction:
    """Any accepted mask -> a function (height, width) -> [height, width] alpha."""
    if callable(mask):
        return mask
    checked = check_mask(mask)
    return lambda height, width: resize_mask(checked, height, width)


# -- pose -------------------------------------------------------------------------------------
def align_pose(generator: Generator, ws: torch.Tensor, pose_source: torch.Tensor,
               max_resolution: int = POSE_RESOLUTION) -> torch.Tensor:
    """`ws` with its pose rows (`pose_rows`) copied from `pose_source`: [1, num_ws, w_dim]."""
    ws = check_code(generator, ws, "code")
    pose_source = check_code(generator, pose_source, "pose source code")
    rows = pose_rows(generator, max_resolution)
    aligned = ws.clone()
    aligned[:, rows] = pose_source[:, rows]
    return aligned


# -- the editor -------------------------------------------------------------------------------
class FeatureBlendEditor(LayerEditor):
    """Blend the synthesis of code A (the `ws` given to `Generator.synthesis`) with code `ws_b`.

    Each blended layer runs on the same input features twice, with A's styles and with B's, and
    the outputs are mixed with the mask at that layer's size; a tensor the layer passes through
    untouched is kept as it is. Layers not listed in `layers` (indices into `generator.layers`;
    all by default) run with A's styles only.
    """

    def __init__(self, ws_b: torch.Tensor, mask: MaskLike, layers: Optional[Iterable[int]] = None):
        self.ws_b = ws_b
        self.mask_at = mask_function(mask)
        self.layers = None if layers is None else set(layers)
        self._alphas: dict[tuple[int, int], torch.Tensor] = {}

    def alpha(self, like: torch.Tensor) -> torch.Tensor:
        """The mask at the size of `like` [.., H, W], on its device and dtype (cached per size)."""
        size = tuple(like.shape[-2:])
        if size not in self._alphas:
            self._alphas[size] = self.mask_at(*size).to(like)
        return self._alphas[size]

    def layer(self, index: int, layer: SynthesisLayer, state: SynthesisState, s: torch.Tensor) -> SynthesisState:
        if self.layers is not None and index not in self.layers:
            return layer(state, s)
        out_a, out_b = layer(state, s), layer(state, layer.styles(self.ws_b))
        return SynthesisState(self._mix(out_a.x, out_b.x, state.x), self._mix(out_a.img, out_b.img, state.img))

    def _mix(self, a: Optional[torch.Tensor], b: Optional[torch.Tensor],
             passed_in: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        if a is None or a is passed_in:
            return a
        # torch.lerp is exact at weights 0 and 1: where alpha is 0 or 1 we get A or B bit for bit.
        return torch.lerp(a, b, self.alpha(a))


def feature_blend(generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor, mask: MaskLike,
                  layers: Optional[Iterable[int]] = None, pose_from_a: bool = False,
                  pose_resolution: int = POSE_RESOLUTION) -> torch.Tensor:
    """SOAT feature interpolation of two codes: [1, 3, H, W] in [-1, 1].

    mask: alpha (0 = A, 1 = B): a number, an H x W array of any size (e.g. painted by the user),
    or a function such as `horizontal_ramp`. layers: which synthesis layers blend (indices, see
    `codes.layers_between`); the others use A. pose_from_a: first copy A's pose rows into B (SOAT's pose
    alignment), so the region taken from B fits A's head pose.
    """
    ws_a = check_code(generator, ws_a, "code A")
    ws_b = check_code(generator, ws_b, "code B")
    if layers is not None:
        layers = list(layers)
        if not layers:
            raise InputError("no layers chosen to blend")
        for index in layers:
            check_whole_number(index, "each blended layer index", 0, len(generator.layers) - 1)
    if pose_from_a:
        ws_b = align_pose(generator, ws_b, ws_a, pose_resolution)
    with torch.no_grad():
        return generator.synthesis(ws_a, FeatureBlendEditor(ws_b, mask, layers))


# -- panorama ---------------------------------------------------------------------------------
class PanoramaPairEditor(FeatureBlendEditor):
    """One panorama span: the input features tiled to twice the size along `axis` and blended
    from A to B with SOAT's ramp (the generator's layers tile their fixed noise maps to match)."""

    def __init__(self, ws_b: torch.Tensor, axis: int):
        super().__init__(ws_b, horizontal_ramp if axis == -1 else vertical_ramp)
        self.axis = axis

    def begin(self, state: SynthesisState, generator: Generator) -> SynthesisState:
        return state.map(lambda t: torch.cat([t, t], dim=self.axis))


def panorama_length(count: int, size: int) -> int:
    """Length of a panorama of `count` codes at image size `size`: 2 W + (N - 2) W."""
    return 2 * size + (count - 2) * size


def gaussian_smooth(codes: torch.Tensor, sigma: float) -> torch.Tensor:
    """Smooth [N, ...] codes along the sequence with a Gaussian of `sigma` codes (edges
    repeated), so neighbouring panorama spans change gradually. sigma = 0 returns the codes."""
    if sigma == 0:
        return codes
    radius = math.ceil(4 * sigma)
    offsets = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2).double()
    kernel /= kernel.sum()
    count = codes.shape[0]
    weights = torch.zeros(count, count, dtype=torch.float64)
    for i in range(count):
        weights[i].index_add_(0, (i + offsets).clamp(0, count - 1), kernel)
    return torch.einsum("ij,j...->i...", weights.to(codes), codes)


def smoothed_random_codes(generator: Generator, seeds: Sequence[int], sigma: float = DEFAULT_SMOOTHING_SIGMA,
                          psi: float = DEFAULT_PSI) -> torch.Tensor:
    """Panorama codes from seeds: W codes smoothed along the sequence, then truncated by psi."""
    sigma = check_number(sigma, "the smoothing sigma", *SMOOTHING_SIGMA)
    psi = check_psi(psi)
    return generator.truncate(gaussian_smooth(random_codes(generator, seeds), sigma), psi)


def _stitch_weights(length: int, start: Optional[float], end: Optional[float], fade: int) -> torch.Tensor:
    """Per-pixel weights of one span: 1 between `start` and `end`, linear over 2 * fade pixels
    around each (None: no edge there), so the weights of two spans add up to 1 at a stitch."""
    centres = torch.arange(length, dtype=torch.float32) + 0.5
    weights = torch.ones(length)
    for edge, sign in ((start, 1.0), (end, -1.0)):
        if edge is None:
            continue
        if fade == 0:
            weights = weights * (sign * (centres - edge) > 0).float()
        else:
            weights = weights * ((sign * (centres - edge) + fade) / (2 * fade)).clamp(0.0, 1.0)
    return weights


def panorama_pairs(generator: Generator, codes: torch.Tensor, direction: str = "horizontal") -> Iterator[torch.Tensor]:
    """The N - 1 pair images of a panorama, one at a time: [1, 3, H, 2W] (or [1, 3, 2H, W])."""
    axis = DIRECTIONS[direction]
    for i in range(codes.shape[0] - 1):
        with torch.no_grad():
            yield generator.synthesis(codes[i:i + 1], PanoramaPairEditor(codes[i + 1:i + 2], axis))


def stitch_pairs(pairs: Iterable[torch.Tensor], count: int, size: int, direction: str = "horizontal",
                 fade: int = 0) -> torch.Tensor:
    """Overlay the middle strips of the `count - 1` pair images (each 2 `size` long) of a
    panorama of `count` codes; `fade` pixels of linear crossfade on either side of each stitch."""
    axis = DIRECTIONS[direction]
    canvas = None
    for i, pair in enumerate(pairs):
        if canvas is None:
            shape = list(pair.shape)
            shape[axis] = panorama_length(count, size)
            canvas = pair.new_zeros(shape)
        start = size / 2 if i > 0 else None
        end = 3 * size / 2 if i < count - 2 else None
        weights = _stitch_weights(2 * size, start, end, fade).to(pair)
        canvas.narrow(axis, i * size, 2 * size).add_(pair * (weights.view(-1, 1) if axis == -2 else weights))
    return canvas


def render_panorama(generator: Generator, codes: torch.Tensor, direction: str = "horizontal",
                    crossfade: float = 1 / 32) -> torch.Tensor:
    """SOAT panorama of N >= 2 codes [N, num_ws, w_dim]: [1, 3, H, N W] (horizontal) or
    [1, 3, N H, W] (vertical), i.e. 2 W + (N - 2) W long.

    Each consecutive pair is one 2W-long blend (`PanoramaPairEditor`); pair i covers
    [i W, i W + 2 W) and contributes its middle half, the ramp, from W/2 to 3W/2. At each stitch
    both pairs render the shared code with the same phase of the tiled constant and noise, but
    with different neighbours; a linear crossfade over `crossfade` x W pixels on either side hides
    that difference. Pairs are rendered one at a time: memory stays that of one 2W image.
    """
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    codes = check_code(generator, codes, "panorama codes", single=False)
    count = check_whole_number(codes.shape[0], f"the number of panorama codes at {generator.resolution} px", 2,
                               min(MAX_PANORAMA_CODES, MAX_PANORAMA_SIDE // generator.resolution))
    crossfade = check_number(crossfade, "the crossfade", 0.0, 0.5)
    size = generator.resolution
    return stitch_pairs(panorama_pairs(generator, codes, direction), count, size, direction,
                        round(crossfade * size))
