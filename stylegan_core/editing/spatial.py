"""Spatial operations on features of "StyleGAN of All Trades" (SOAT): canvas extension and
single-image layout variations (SinGAN-like).

The synthesis network is fully convolutional: if the features of an early resolution are padded,
stretched or have patches copied around, the remaining layers render them into a realistic image
of the new layout (its fixed noise maps are tiled to the new size, see `generator.tile_to`).
`SpatialEditor` does this as a `LayerEditor` of the one synthesis loop: after the last layer of a
chosen resolution r (where the features and, for StyleGAN2, the RGB skip image are both r x r) it
applies a `SpatialEdit` to both.

Amounts are in feature cells at r; one cell becomes R / r output pixels (R the image size).
Operations:
  - `Pad`: extend the canvas ("uncrop") on any side with reflect, replicate or circular padding,
  - `Stretch`: resize the features (bilinear), e.g. a wider face or a taller canvas,
  - `DuplicatePatch`: copy a rectangle of features to another place (shift and duplicate).
`extend_canvas` and `layout_variations` are the functions the app and CLI call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..codes import check_code, check_number, check_whole_number, layer_resolutions
from ..errors import UserError
from ..models.generator import Generator, LayerEditor, SynthesisLayer, SynthesisState

PAD_MODES = ("reflect", "replicate", "circular")
MAX_EXTENSION = 2.0  # per side, as a fraction of the image side (a 1024 px model: up to 5120 px wide)
MAX_VARIATIONS = 16
STRETCH_RANGE = (1.2, 1.6)  # random stretch factors of a layout variation
DEFAULT_RESOLUTION = 8  # early enough to change layout, late enough to keep the face's parts


class SpatialEditError(UserError, ValueError):
    """A spatial edit that cannot be applied (unknown mode, wrong resolution, a patch off the canvas)."""


# -- the operations ---------------------------------------------------------------------------
def _source_indices(length: int, before: int, after: int, mode: str) -> torch.Tensor:
    """For a padded axis of `before + length + after` cells, the source cell of each: any amount
    of padding, unlike torch's reflect mode (which needs padding < length)."""
    index = torch.arange(-before, length + after)
    if mode == "circular":
        return index % length
    if mode == "replicate" or length == 1:
        return index.clamp(0, length - 1)
    period = 2 * (length - 1)  # reflect: mirror at the edge cells without repeating them
    index = index % period
    return torch.where(index >= length, period - index, index)


def _same_layout(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`result` in the memory format of `like` (the layers pick faster kernels for channels_last)."""
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return result.contiguous(memory_format=torch.channels_last)
    return result.contiguous()


@dataclass(frozen=True)
class Pad:
    """Extend the canvas by whole cells on each side, the new cells copied by `mode`."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    mode: str = "replicate"

    def __post_init__(self) -> None:
        if self.mode not in PAD_MODES:
            raise SpatialEditError(f"padding mode must be one of {', '.join(PAD_MODES)}, got {self.mode!r}")
        if min(self.left, self.right, self.top, self.bottom) < 0:
            raise SpatialEditError("padding amounts must be >= 0 (a negative amount would crop)")

    def size(self, height: int, width: int) -> tuple[int, int]:
        return height + self.top + self.bottom, width + self.left + self.right

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        height, width = t.shape[-2:]
        rows = _source_indices(height, self.top, self.bottom, self.mode).to(t.device)
        cols = _source_indices(width, self.left, self.right, self.mode).to(t.device)
        return _same_layout(t.index_select(-2, rows).index_select(-1, cols), t)

    @property
    def is_identity(self) -> bool:
        return self.left == self.right == self.top == self.bottom == 0


@dataclass(frozen=True)
class Stretch:
    """Resize the features to `height` x `width` cells (bilinear; antialiased when shrinking)."""

    height: int
    width: int

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 1:
            raise SpatialEditError(f"a stretch needs a size of at least 1 x 1 cells, got {self.height} x {self.width}")

    def size(self, height: int, width: int) -> tuple[int, int]:
        return self.height, self.width

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        if tuple(t.shape[-2:]) == (self.height, self.width):
            return t
        resized = F.interpolate(t, size=(self.height, self.width), mode="bilinear", align_corners=False,
                                antialias=True)
        return _same_layout(resized, t)

    @property
    def is_identity(self) -> bool:
        return False  # known only against a size: `apply` returns the input itself then


@dataclass(frozen=True)
class DuplicatePatch:
    """Copy the `height` x `width` cells at (`top`, `left`) to (`to_top`, `to_left`); the
    original stays where it was, so that part of the layout appears twice."""

    top: int
    left: int
    height: int
    width: int
    to_top: int
    to_left: int

    def size(self, height: int, width: int) -> tuple[int, int]:
        for name, start, extent, side in (("source", self.top, self.height, height), ("source", self.left, self.width, width),
                                          ("target", self.to_top, self.height, height),
                                          ("target", self.to_left, self.width, width)):
            if extent < 1 or start < 0 or start + extent > side:
                raise SpatialEditError(f"the patch's {name} ({self}) lies outside the {height} x {width} features")
        return height, width

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        patch = t[..., self.top:self.top + self.height, self.left:self.left + self.width]
        out = t.clone()
        out[..., self.to_top:self.to_top + self.height, self.to_left:self.to_left + self.width] = patch
        return out

    @property
    def is_identity(self) -> bool:
        return (self.top, self.left) == (self.to_top, self.to_left)


SpatialEdit = Union[Pad, Stretch, DuplicatePatch]


# -- where the edit happens --------------------------------------------------------------------
def edit_resolutions(generator: Generator) -> list[int]:
    """The feature resolutions a spatial edit can act on: every layer resolution below the image's."""
    return [r for r in layer_resolutions(generator) if r < generator.resolution]


def edit_point(generator: Generator, resolution: int) -> int:
    """Index of the last layer whose output is `resolution` px: after it, the features and the
    RGB skip image have the same size, and every later layer works at a higher resolution."""
    if not generator.features_match_image:
        raise SpatialEditError(f"spatial edits need features that line up with the image; this {generator.arch} "
                               "model's do not (use the Panorama tab, which widens its Fourier grid)")
    allowed = edit_resolutions(generator)
    if resolution not in allowed:
        raise SpatialEditError(f"spatial edits act on features of {allowed} px for this model, got {resolution}")
    return max(i for i, layer in enumerate(generator.layers) if layer.resolution == resolution)


class SpatialEditor(LayerEditor):
    """Apply `edit` to the features and the RGB skip image right after layer `index` ran."""

    def __init__(self, edit: SpatialEdit, index: int):
        self.edit, self.index = edit, index

    def layer(self, index: int, layer: SynthesisLayer, state: SynthesisState, s: torch.Tensor) -> SynthesisState:
        state = layer(state, s)
        if index != self.index or self.edit.is_identity:
            return state
        sizes = {tuple(t.shape[-2:]) for t in (state.x, state.img) if t is not None}
        if len(sizes) != 1:
            raise SpatialEditError(f"features and skip image differ in size after layer {layer.name}: {sizes}")
        self.edit.size(*sizes.pop())  # checks a patch against the canvas
        return state.map(self.edit.apply)


def render_spatial(generator: Generator, ws: torch.Tensor, edit: SpatialEdit,
                   resolution: int = DEFAULT_RESOLUTION) -> torch.Tensor:
    """Render one code with `edit` applied to its `resolution` px features: [1, 3, H', W'] in [-1, 1]."""
    ws = check_code(generator, ws, "code")
    editor = SpatialEditor(edit, edit_point(generator, resolution))
    with torch.no_grad():
        return generator.synthesis(ws, editor)


# -- canvas extension ---------------------------------------------------------------------------
def cells(fraction: float, resolution: int, name: str) -> int:
    """A fraction of the image side -> whole feature cells at `resolution` (rounded)."""
    return round(check_number(fraction, name, 0.0, MAX_EXTENSION) * resolution)


def extension_pad(generator: Generator, resolution: int, mode: str, left: float = 0.0, right: float = 0.0,
                  top: float = 0.0, bottom: float = 0.0) -> Pad:
    """The `Pad` that adds the given fractions of the image side (rounded to whole cells at
    `resolution`: steps of 1 / resolution) on each side."""
    edit_point(generator, resolution)
    return Pad(cells(left, resolution, "the left extension"), cells(right, resolution, "the right extension"),
               cells(top, resolution, "the top extension"), cells(bottom, resolution, "the bottom extension"), mode)


def extend_canvas(generator: Generator, ws: torch.Tensor, resolution: int = DEFAULT_RESOLUTION,
                  mode: str = "replicate", left: float = 0.0, right: float = 0.0, top: float = 0.0,
                  bottom: float = 0.0) -> torch.Tensor:
    """"Uncrop": the image of `ws` on a larger canvas, [1, 3, H', W'] in [-1, 1].

    The `resolution` px features are padded by `mode` (reflect, replicate or circular) by the
    given fractions of the image side (rounded to steps of 1 / resolution; the output grows by
    whole multiples of image size / resolution pixels) and the later layers render the new
    background. All amounts 0: exactly the plain render. Earlier resolutions change more of the
    layout (4 px: whole head shapes are continued), later ones continue textures.
    """
    return render_spatial(generator, ws, extension_pad(generator, resolution, mode, left, right, top, bottom),
                          resolution)


def extension_box(generator: Generator, pad: Pad, resolution: int) -> tuple[int, int, int, int]:
    """Where the original canvas lies in an extended image: (top, left, height, width) in pixels."""
    scale = generator.resolution // resolution
    return pad.top * scale, pad.left * scale, generator.resolution, generator.resolution


# -- layout variations --------------------------------------------------------------------------
def random_layout_edit(rng: np.random.RandomState, size: int) -> SpatialEdit:
    """One random layout change of `size` x `size` features: a stretch of the width, the height
    or both by a factor in STRETCH_RANGE (enlarging only: shrunken features lose their detail),
    or a patch of 1/4 to 1/2 of each side copied to another place."""
    if rng.rand() < 0.5:
        axes = [[True, False], [False, True], [True, True]][rng.randint(3)]
        height, width = (round(size * rng.uniform(*STRETCH_RANGE)) if stretched else size for stretched in axes)
        return Stretch(height, width)
    height, width = (int(rng.randint(max(1, size // 4), max(1, size // 2) + 1)) for _ in range(2))
    top, to_top = (int(rng.randint(0, size - height + 1)) for _ in range(2))
    left, to_left = (int(rng.randint(0, size - width + 1)) for _ in range(2))
    return DuplicatePatch(top, left, height, width, to_top, to_left)


def random_layout_edits(generator: Generator, resolution: int, count: int, seed: int = 0) -> list[SpatialEdit]:
    """`count` random layout edits of the `resolution` px features (the same for the same seed)."""
    edit_point(generator, resolution)
    count = check_whole_number(count, "the number of variations", 1, MAX_VARIATIONS)
    seed = check_whole_number(seed, "the seed", 0, 2**32 - 1)
    rng = np.random.RandomState(seed)
    return [random_layout_edit(rng, resolution) for _ in range(count)]


def layout_variations(generator: Generator, ws: torch.Tensor, resolution: int = DEFAULT_RESOLUTION,
                      count: int = 4, seed: int = 0,
                      edits: Optional[list[SpatialEdit]] = None) -> list[torch.Tensor]:
    """Single-image variations: the image of `ws` re-rendered from randomly stretched or
    patch-duplicated `resolution` px features, one [1, 3, H', W'] image per variation (sizes
    differ after a stretch). `edits` (e.g. from `random_layout_edits`) replaces the random ones."""
    edits = random_layout_edits(generator, resolution, count, seed) if edits is None else edits
    return [render_spatial(generator, ws, edit, resolution) for edit in edits]
