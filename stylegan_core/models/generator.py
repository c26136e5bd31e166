"""The generator contract every architecture implements, and the one synthesis loop.

Codes are plain tensors:
  z  : [batch, z_dim]            (Gaussian input of the mapping network)
  w  : [batch, w_dim]            (one style vector)
  ws : [batch, num_ws, w_dim]    (W+: one row per style input of the synthesis network)

A synthesis network is a list of `SynthesisLayer`s that transform a `SynthesisState` (the
feature maps `x` and the RGB skip image `img`). `Generator.synthesis` runs them in order; a
`LayerEditor` may intercept each layer. Feature-level operations (SOAT blending, panoramas,
spatial edits) are editors: they plug into this loop instead of copying it.

Styles (S space): every layer first turns its W+ row into a style vector s = A w + b (its
affine, [batch, C_l]) and then runs on that vector. The loop computes each layer's style, lets
the editor change it (`LayerEditor.styles`, e.g. a StyleSpace channel edit) and runs the layer
with it; `Generator.styles(ws)` returns the list of per-layer styles and
`Generator.synthesis(styles=...)` renders from such a list, so S-space codes are plain lists of
tensors, one per layer in loop order (`Generator.describe_styles` gives their layout).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import nn


@dataclass
class SynthesisState:
    """What flows between synthesis layers: feature maps and the RGB skip image (either may be None)."""

    x: Optional[torch.Tensor]
    img: Optional[torch.Tensor] = None

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "SynthesisState":
        return SynthesisState(
            None if self.x is None else fn(self.x), None if self.img is None else fn(self.img)
        )


class SynthesisLayer(nn.Module):
    """One step of the synthesis loop.

    Subclasses set `name`, `rows` (the W+ row this layer reads, one) and `resolution` (of its
    output features), and implement
      `styles(ws) -> s [B, C_l]`: the layer's affine applied to its row of ws [B, num_ws, w_dim];
      `forward(state, s) -> state`: the layer run with those styles;
      `affine_matrix() -> [C_l, w_dim]`, `affine_bias() -> [C_l]`: the effective affine, run-time
      gains folded in, so styles(ws) == ws[:, row] @ A^T + b up to float rounding (SeFa and
      StyleSpace analysis read the matrix; `styles` may evaluate it in a faster order).
    Layers must work for any spatial size of their input (panoramas widen the features), so fixed
    noise maps are tiled to the input size.
    """

    name: str = "layer"
    rows: tuple[int, ...] = ()
    resolution: int = 0

    def styles(self, ws: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def affine_matrix(self) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def affine_bias(self) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @property
    def style_channels(self) -> int:
        """C_l: the length of this layer's style vector."""
        return self.affine_bias().shape[0]

    def forward(self, state: SynthesisState, s: torch.Tensor) -> SynthesisState:  # pragma: no cover
        raise NotImplementedError


class LayerEditor:
    """Hook points of the synthesis loop. The default editor changes nothing.

    `begin` sees the input state (for example to widen the constant for a panorama); for every
    layer, `styles` may change its style vector s [B, C_l] (S-space edits) and then `layer` runs
    it, with the layer itself so the editor can run it several times (with other styles, e.g.
    `layer.styles(other_ws)`) and combine the results; `end` sees the final state.
    """

    def begin(self, state: SynthesisState, generator: "Generator") -> SynthesisState:
        return state

    def styles(self, index: int, layer: SynthesisLayer, s: torch.Tensor) -> torch.Tensor:
        return s

    def layer(
        self, index: int, layer: SynthesisLayer, state: SynthesisState, s: torch.Tensor
    ) -> SynthesisState:
        return layer(state, s)

    def end(self, state: SynthesisState) -> SynthesisState:
        return state


@dataclass(frozen=True)
class RowInfo:
    """Which synthesis layers (and so which resolution) one W+ row drives."""

    row: int
    resolution: int  # 0 when the row drives nothing
    layers: tuple[str, ...]

    @property
    def used(self) -> bool:
        return bool(self.layers)


@dataclass(frozen=True)
class StyleInfo:
    """One entry of S space: the style vector of synthesis layer `index`."""

    index: int  # position in `Generator.layers` and in the list `Generator.styles` returns
    layer: str
    row: int  # the W+ row its affine reads
    resolution: int
    channels: int  # C_l


class Generator(nn.Module):
    """Common interface of every architecture (MobileStyleGAN, StyleGAN2, ...).

    Subclasses provide: `z_dim`, `w_dim`, `num_ws`, `resolution` attributes, a `w_avg` buffer
    of shape [w_dim], `mapping_network(z) -> w`, `layers` (an nn.ModuleList of SynthesisLayer),
    `input_state(batch) -> SynthesisState` and optionally `output(state) -> image`, plus
    `config`: the JSON-serialisable constructor kwargs (`type(g)(**g.config)` rebuilds it), and a
    unique class attribute `arch` (register the class with `@register_architecture`).
    """

    z_dim: int
    w_dim: int
    num_ws: int
    resolution: int
    layers: nn.ModuleList
    w_avg: torch.Tensor
    config: dict
    arch: str = "generator"
    # Whether a layer's output pixels sit where the image's pixels are (features cropped, padded or
    # masked by position map to the image). StyleGAN3's features carry margins and are resampled
    # between layers, so spatial edits of them are refused.
    features_match_image: bool = True

    # -- mapping ---------------------------------------------------------------------------
    def mapping_network(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def mapping(
        self, z: torch.Tensor, psi: float = 1.0, truncation_cutoff: Optional[int] = None
    ) -> torch.Tensor:
        """z [B, z_dim] -> ws [B, num_ws, w_dim], truncated towards w_avg by psi."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [batch, {self.z_dim}], got {list(z.shape)}")
        w = self.mapping_network(z)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.truncate(ws, psi, truncation_cutoff)

    def truncate(self, ws: torch.Tensor, psi: float, truncation_cutoff: Optional[int] = None) -> torch.Tensor:
        if psi == 1.0:
            return ws
        cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
        out = ws.clone()
        avg = self.w_avg.to(ws)
        out[:, :cutoff] = avg + psi * (ws[:, :cutoff] - avg)
        return out

    def mean_ws(self, batch: int = 1) -> torch.Tensor:
        """The mean code w_avg broadcast to W+: [batch, num_ws, w_dim]."""
        return self.w_avg.view(1, 1, -1).repeat(batch, self.num_ws, 1)

    def seed_to_z(self, seed: int) -> torch.Tensor:
        """The z of a seed: the same on every machine (numpy's generator, not torch's)."""
        import numpy as np

        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed must be in [0, 2^32 - 1], got {seed}")
        z = np.random.RandomState(int(seed)).randn(1, self.z_dim)
        return torch.from_numpy(z).float()

    # -- synthesis -------------------------------------------------------------------------
    def input_state(self, batch: int) -> SynthesisState:  # pragma: no cover
        raise NotImplementedError

    def output(self, state: SynthesisState) -> torch.Tensor:
        return state.img

    def check_ws(self, ws: torch.Tensor) -> None:
        if ws.dim() != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(
                f"this {self.arch} model takes codes of shape [batch, {self.num_ws}, {self.w_dim}], "
                f"got {list(ws.shape)} (a code made with another model?)"
            )

    def check_styles(self, styles: Sequence[torch.Tensor]) -> int:
        """Check a list of per-layer styles (S space) against this model; returns the batch size."""
        shapes = [tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__ for s in styles]
        batch = shapes[0][0] if shapes and isinstance(shapes[0], tuple) and len(shapes[0]) == 2 else None
        channels = [layer.style_channels for layer in self.layers]
        if batch is None or shapes != [(batch, c) for c in channels]:
            raise ValueError(
                f"this {self.arch} model takes {len(channels)} styles of shapes [batch, C_l] with C_l = "
                f"{channels}, got {shapes}"
            )
        return batch

    def styles(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """ws [B, num_ws, w_dim] -> the per-layer styles (S space), one [B, C_l] per layer in loop order."""
        self.check_ws(ws)
        return [layer.styles(ws) for layer in self.layers]

    def synthesis(self, ws: Optional[torch.Tensor] = None, editor: Optional[LayerEditor] = None, *,
                  styles: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """ws [B, num_ws, w_dim] or styles (a list as from `styles`) -> image [B, 3, H, W] in [-1, 1].

        The one synthesis loop: per layer its style (computed from ws, or taken from `styles`),
        changed by the editor's `styles` hook, then the layer run by the editor's `layer` hook.
        """
        if (ws is None) == (styles is None):
            raise ValueError("give either ws (W+) or styles (S space), not both or neither")
        if ws is not None:
            self.check_ws(ws)
        batch = self.check_styles(styles) if ws is None else ws.shape[0]
        editor = editor or LayerEditor()
        state = editor.begin(self.input_state(batch), self)
        for index, layer in enumerate(self.layers):
            s = layer.styles(ws) if styles is None else styles[index]
            state = editor.layer(index, layer, state, editor.styles(index, layer, s))
        return self.output(editor.end(state))

    def forward(self, ws: torch.Tensor, editor: Optional[LayerEditor] = None) -> torch.Tensor:
        return self.synthesis(ws, editor)

    # -- description -----------------------------------------------------------------------
    def describe_rows(self) -> list[RowInfo]:
        """For each W+ row: the layers it drives and their (highest) resolution."""
        by_row: dict[int, list[SynthesisLayer]] = {r: [] for r in range(self.num_ws)}
        for layer in self.layers:
            for row in layer.rows:
                by_row[row].append(layer)
        return [
            RowInfo(row, max((l.resolution for l in ls), default=0), tuple(l.name for l in ls))
            for row, ls in by_row.items()
        ]

    def describe_styles(self) -> list[StyleInfo]:
        """The layout of S space: for each synthesis layer (in loop order) its W+ row, output
        resolution and number of style channels."""
        return [
            StyleInfo(index, layer.name, layer.rows[0], layer.resolution, layer.style_channels)
            for index, layer in enumerate(self.layers)
        ]

    @property
    def device(self) -> torch.device:
        return self.w_avg.device


def estimate_w_avg(mapping_network: Callable[[torch.Tensor], torch.Tensor], z_dim: int,
                   samples: int = 10_000, seed: int = 0, batch: int = 2_000) -> torch.Tensor:
    """Mean of mapping(z) over seeded Gaussian z: the centre of W used by truncation and inversion."""
    gen = torch.Generator().manual_seed(seed)
    total = None
    with torch.no_grad():
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            w = mapping_network(torch.randn(n, z_dim, generator=gen)).double().sum(0)
            total = w if total is None else total + w
    return (total / samples).float()


def tile_to(noise: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tile a fixed [.., h, w] noise map periodically to [.., height, width].

    Panoramas widen the features; tiling keeps the map deterministic and, because the noise is
    i.i.d. per pixel, the tile boundary is statistically like any other pixel neighbourhood.
    """
    h, w = noise.shape[-2:]
    if (h, w) == (height, width):
        return noise
    reps_h, reps_w = -(-height // h), -(-width // w)
    return noise.repeat(*([1] * (noise.dim() - 2)), reps_h, reps_w)[..., :height, :width]



# -- architectures -------------------------------------------------------------------------
# Every Generator subclass is constructible from a plain config dict (`generator.config`), so one
# safetensors export (tensors + the config in the metadata) serves every architecture.
ARCHITECTURES: dict[str, type] = {}
# The modules whose import registers an architecture (a new architecture adds its module here).
ARCHITECTURE_MODULES = ("mobile_stylegan", "stylegan2", "stylegan3")


def register_architecture(cls: type) -> type:
    """Class decorator: make `cls` (with a unique `arch` name) buildable by `build_generator`."""
    ARCHITECTURES[cls.arch] = cls
    return cls


def architectures() -> dict[str, type]:
    """Every known architecture: arch name -> Generator subclass."""
    import importlib

    for module in ARCHITECTURE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return dict(ARCHITECTURES)


def build_generator(arch: str, config: dict) -> Generator:
    if arch not in architectures():
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)
