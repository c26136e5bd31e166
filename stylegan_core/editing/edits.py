"""Edits of latent codes: morph, style transfer (crossover), expression transfer, style mixing.

The operations of Image2StyleGAN (Abdal et al. 2019) and of the StyleGAN paper's style-mixing
figure. Each is a function of codes -> codes; `render_codes`, `morph_frames` and
`style_mixing_grid` turn codes into images. Codes are [batch, num_ws, w_dim] tensors (one code:
batch 1; a [num_ws, w_dim] tensor is read as one code). Images are [batch, 3, H, W] in [-1, 1]
(`stylegan_core.images.tensor_to_pil` converts them).

Rows are chosen by the resolution of the layers they drive (`codes.rows_within`, `codes.mixing_rows`),
never by a fixed index, so the same call works for 23-row MobileStyleGAN and 18-row StyleGAN2 models.
Code checks, seed -> code (`random_codes`) and every limit live in `stylegan_core.codes`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..codes import (DEFAULT_PSI, DEFAULT_SPLIT_RESOLUTION, EXPRESSION_STRENGTH, MAX_GIF_FPS, MAX_GRID_SIDE,
                    MAX_MIXING_SEEDS, MORPH_FRAMES, InputError, check_code, check_number, check_psi, check_rows,
                    check_whole_number, mixing_rows, random_codes, rows_within)
from ..models.generator import Generator
from ..images import tensor_to_pil

# Worst-case budgets (limits in codes.py) are in terms of R, the model's resolution; IMAGE(R) =
# 12 R^2 bytes, one [3, R, R] float32 image (12.6 MB at 1024 px); and S, the working memory of one
# synthesis of one code (its feature maps, measured per model by benchmarks/bench_limits.py).
# `worst_case_bytes` evaluates them; tests/test_limits.py measures every operation at its limits
# on tiny models against them.
MAX_MORPH_FRAMES = MORPH_FRAMES[1]  # the name the budgets (and tests lowering them) use

# On the CPU one code at a time renders as fast per image as four (benchmarks/results/edits.md)
# and holds a quarter of the feature memory, which matters with several users on one machine.
RENDER_BATCH = 1
MIN_LABEL_STRIP = 12  # px: the thinnest strip of names a labelled grid gets (one line of small text)


def render_codes(generator: Generator, ws: torch.Tensor, batch_size: int = RENDER_BATCH) -> torch.Tensor:
    """Codes [B, num_ws, w_dim] -> images [B, 3, H, W] in [-1, 1], `batch_size` codes at a time,
    each written straight into the preallocated result: memory is one synthesis plus the images."""
    ws = check_code(generator, ws, "codes", single=False)
    images = None
    with torch.no_grad():
        for start in range(0, ws.shape[0], batch_size):
            rendered = generator.synthesis(ws[start:start + batch_size])
            if images is None:
                images = rendered.new_empty((ws.shape[0], *rendered.shape[1:]))
            images[start:start + rendered.shape[0]] = rendered
    return images


def worst_case_bytes(operation: str, synthesis_bytes: int, resolution: int) -> int:
    """The memory budget of an operation at its limits: the most bytes of tensors and arrays it
    holds at once, for a model of `resolution` px one synthesis of which needs `synthesis_bytes`.

    The operations on codes alone (morph_codes, crossover_codes, expression_transfer_codes,
    style_mixing_codes) hold a few codes of ~50 KB and are not listed.
    """
    from . import feature_blend  # it builds on this module

    image = 12 * resolution ** 2  # one [3, R, R] float32 image
    mixing_side = grid_side(resolution, MAX_MIXING_SEEDS + 1, labelled=True)
    # 2 S: the synthesis running, and up to one more S that the previous call leaves to be freed
    budgets = {
        "render_codes": 2 * synthesis_bytes + MAX_MORPH_FRAMES * image,
        "morph_frames": 2 * synthesis_bytes + MAX_MORPH_FRAMES * image,
        # the finished uint8 grid; one cell as uint8 tensor, PIL image, array and downscaled copy
        "style_mixing_grid": 2 * synthesis_bytes + 3 * mixing_side ** 2 + 4 * 3 * resolution ** 2,
        # each blended layer runs twice; the mask, its finiteness check and one resized copy
        "feature_blend": 2 * synthesis_bytes + 3 * 4 * feature_blend.MAX_MASK_SIDE ** 2,
        # pairs of twice the width, each layer twice; plus the canvas of N images
        "render_panorama": 4 * synthesis_bytes + min(feature_blend.MAX_PANORAMA_CODES,
                                                     feature_blend.MAX_PANORAMA_SIDE // resolution) * image,
    }
    if operation not in budgets:
        raise InputError(f"no budget for {operation!r}; known: {sorted(budgets)}")
    return budgets[operation]


# -- morph ------------------------------------------------------------------------------------
def _check_pair(w1: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, ws in (("first code", w1), ("second code", w2)):
        if ws is None:
            raise InputError(f"the {name} is missing")
        if not isinstance(ws, torch.Tensor) or ws.dim() not in (2, 3):
            raise InputError(f"the {name} must be a tensor [1, num_ws, w_dim]")
    w1 = w1 if w1.dim() == 3 else w1.unsqueeze(0)
    w2 = w2 if w2.dim() == 3 else w2.unsqueeze(0)
    if w1.shape != w2.shape or w1.shape[0] != 1:
        raise InputError(
            f"the two codes must be single codes of one model, got shapes {list(w1.shape)} and {list(w2.shape)}"
        )
    return w1, w2


def morph_codes(w1: torch.Tensor, w2: torch.Tensor, n: int) -> torch.Tensor:
    """`n` codes from w1 to w2, linear in W+: [n, num_ws, w_dim]; the first is w1 and the last
    w2 exactly (torch.lerp is exact at weights 0 and 1)."""
    w1, w2 = _check_pair(w1, w2)
    n = check_whole_number(n, "the number of frames", *MORPH_FRAMES)
    weights = torch.linspace(0, 1, n, device=w1.device, dtype=w1.dtype).view(n, 1, 1)
    return torch.lerp(w1, w2.to(w1), weights)


def slerp(z1: torch.Tensor, z2: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
    """Spherical interpolation between Gaussian latents z1, z2 [1, z_dim] at t (a number or a
    1-D tensor): [len(t), z_dim]. Unlike a straight line, the path keeps the norm typical of a
    Gaussian sample (Tom White, "Sampling Generative Networks"). Exact at t = 0 and t = 1."""
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] != 1:
        raise InputError(f"slerp takes two [1, z_dim] latents, got {list(z1.shape)} and {list(z2.shape)}")
    t = torch.as_tensor(t, dtype=torch.float64, device=z1.device).reshape(-1, 1)
    a, b = z1.double(), z2.double()
    cos_angle = (a * b).sum() / (a.norm() * b.norm())
    angle = torch.arccos(cos_angle.clamp(-1.0, 1.0))
    if torch.sin(angle) < 1e-6:  # (anti)parallel: every great circle is as good; use the chord
        return torch.lerp(a, b, t).to(z1.dtype)
    mixed = (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / torch.sin(angle)
    return mixed.to(z1.dtype)


def morph_seed_codes(generator: Generator, seed1: int, seed2: int, n: int, psi: float = 1.0) -> torch.Tensor:
    """`n` codes between two random seeds, spherical in Z then mapped: [n, num_ws, w_dim]."""
    n = check_whole_number(n, "the number of frames", *MORPH_FRAMES)
    psi = check_psi(psi)
    z = slerp(generator.seed_to_z(seed1), generator.seed_to_z(seed2), torch.linspace(0, 1, n))
    with torch.no_grad():
        return generator.mapping(z.to(generator.device), psi=psi)


def morph_frames(generator: Generator, w1: torch.Tensor, w2: torch.Tensor, n: int,
                 batch_size: int = RENDER_BATCH) -> list[torch.Tensor]:
    """The images of `morph_codes(w1, w2, n)`: a list of n [3, H, W] tensors in [-1, 1]."""
    w1 = check_code(generator, w1, "first code")
    w2 = check_code(generator, w2, "second code")
    return list(render_codes(generator, morph_codes(w1, w2, n), batch_size))


def there_and_back(frames: Sequence) -> list:
    """The frames, then the same backwards without repeating the ends: a loop that plays there
    and back without a jump (two frames or fewer stay as they are)."""
    frames = list(frames)
    return frames + frames[-2:0:-1] if len(frames) > 2 else frames


def frames_to_gif(frames: Sequence[Union[torch.Tensor, Image.Image]], path: Union[str, os.PathLike],
                  fps: float = 10, boomerang: bool = False, max_side: Optional[int] = None) -> Path:
    """Write frames ([3, H, W] or [1, 3, H, W] tensors in [-1, 1], or PIL images) as a looping
    animated GIF at `fps`. `boomerang` plays them there and back (`there_and_back`); `max_side`
    shrinks larger frames to fit (a GIF of 1024 px frames takes about 1 MB a frame)."""
    if not frames:
        raise InputError("no frames to write")
    fps = check_number(fps, "the frame rate (fps)", 0.1, MAX_GIF_FPS)
    images = [frame if isinstance(frame, Image.Image) else tensor_to_pil(frame) for frame in frames]
    if len({image.size for image in images}) != 1:
        raise InputError("all frames must have the same size")
    if max_side is not None and max(images[0].size) > max_side:
        images = [_fit(image, max_side) for image in images]
    if boomerang:
        images = there_and_back(images)
    path = Path(path)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0, optimize=False)
    return path


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.LANCZOS)


# -- style transfer (crossover) ---------------------------------------------------------------
def crossover_codes(generator: Generator, content: torch.Tensor, style: torch.Tensor,
                    split_resolution: int = DEFAULT_SPLIT_RESOLUTION) -> torch.Tensor:
    """Image2StyleGAN style transfer: the rows driving layers up to `split_resolution` px come
    from `content`, the rows of the finer layers from `style`: [1, num_ws, w_dim].

    At 64 px an 18-row StyleGAN2 at 1024 px takes its first 9 rows from the content, as in the
    paper; the default is 32 px (codes.DEFAULT_SPLIT_RESOLUTION: fewer streaks between inverted
    photos). Rows that drive no layer keep the content's values, so a split at the full resolution
    returns the content code itself, and a split at 0 renders the style image.
    """
    content = check_code(generator, content, "content code")
    style = check_code(generator, style, "style code")
    split = check_whole_number(split_resolution, "the split resolution", 0, generator.resolution)
    style_rows = rows_within(generator, split + 1)
    mixed = content.clone()
    mixed[:, style_rows] = style[:, style_rows]
    return mixed


# -- expression transfer ----------------------------------------------------------------------
def expression_transfer_codes(generator: Generator, target: torch.Tensor, with_expression: torch.Tensor,
                              without_expression: torch.Tensor, strength: float = 1.0,
                              rows: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Image2StyleGAN expression transfer: w1 + strength * (w2 - w3) on `rows` (all by default).

    w1 = `target` (the person), w2 = `with_expression` (someone smiling, say), w3 =
    `without_expression` (the same someone, neutral): their difference carries the expression.
    strength (lambda) must be in [-5, 5]; 0 returns the target code exactly.
    """
    target = check_code(generator, target, "target code (w1)")
    w2 = check_code(generator, with_expression, "code with the expression (w2)")
    w3 = check_code(generator, without_expression, "code without the expression (w3)")
    strength = check_number(strength, "the strength lambda", *EXPRESSION_STRENGTH)
    rows = check_rows(generator, rows)
    edited = target.clone()
    edited[:, rows] = target[:, rows] + strength * (w2[:, rows] - w3[:, rows])
    return edited


# -- style mixing -----------------------------------------------------------------------------
def style_mixing_codes(source: torch.Tensor, destination: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """Every destination code with `rows` copied from every source code:
    sources [S, num_ws, w_dim], destinations [D, num_ws, w_dim] -> [D, S, num_ws, w_dim]."""
    if source.dim() != 3 or source.shape[1:] != destination.shape[1:] or destination.dim() != 3:
        raise InputError(
            f"sources and destinations must be codes of one model, got {list(source.shape)} and {list(destination.shape)}"
        )
    rows = list(rows)
    mixed = destination.unsqueeze(1).repeat(1, source.shape[0], 1, 1)
    mixed[:, :, rows] = source[:, rows].unsqueeze(0).expand(destination.shape[0], -1, -1, -1)
    return mixed


def label_strip(cell: int) -> int:
    """The height of the strip of names above a labelled grid's columns (and the width of the one
    left of its rows): an eighth of a cell, and never too thin for a line of text."""
    return max(MIN_LABEL_STRIP, cell // 8)


def grid_cell_size(resolution: int, cells_per_side: int, labelled: bool = False) -> int:
    """The side of one cell of a grid `cells_per_side` cells wide: the model's resolution, or less
    so that the whole grid (with its label strip when `labelled`) is at most MAX_GRID_SIDE px a side."""
    if not labelled:
        return max(1, min(resolution, MAX_GRID_SIDE // cells_per_side))
    # cells * cell + label_strip(cell) <= MAX_GRID_SIDE for either size of the strip
    fitting = min((MAX_GRID_SIDE - MIN_LABEL_STRIP) // cells_per_side, MAX_GRID_SIDE * 8 // (8 * cells_per_side + 1))
    return max(1, min(resolution, fitting))


def grid_side(resolution: int, cells_per_side: int, labelled: bool = False) -> int:
    """The side in px of a square grid of `cells_per_side` cells (and its label strip)."""
    cell = grid_cell_size(resolution, cells_per_side, labelled)
    return cells_per_side * cell + (label_strip(cell) if labelled else 0)


def render_cell(generator: Generator, ws: torch.Tensor, cell: int) -> np.ndarray:
    """One code -> its image as [cell, cell, 3] uint8 (LANCZOS-downscaled when cell < resolution)."""
    with torch.no_grad():
        image = tensor_to_pil(generator.synthesis(ws))
    if image.width != cell:
        image = image.resize((cell, cell), Image.Resampling.LANCZOS)
    return np.asarray(image)


@dataclass
class StyleMixingGrid:
    """The StyleGAN paper's style-mixing figure: sources along the top, destinations down the
    left, and in row d + 1, column s + 1 destination d with the styles of source s's level. A
    labelled grid has a strip of names above the columns and one left of the rows."""

    image: np.ndarray          # [(D + 1) cell + strip, (S + 1) cell + strip, 3] uint8; the top-left cell is white
    cell: int                  # the side of one cell in px (at most the model's resolution)
    sources: torch.Tensor      # [S, num_ws, w_dim]: codes that give the styles of the chosen level
    destinations: torch.Tensor  # [D, num_ws, w_dim]: codes that give all other styles
    rows: list[int]            # the W+ rows copied from the sources
    strip: int = 0             # px of the label strips (0: not labelled)

    def cell_image(self, row: int, column: int) -> np.ndarray:
        """The [cell, cell, 3] view of grid cell (row, column); (0, 0) is the white corner."""
        top, left = self.strip + row * self.cell, self.strip + column * self.cell
        return self.image[top:top + self.cell, left:left + self.cell]

    def label_column(self, column: int, text: str) -> None:
        """Write `text` in the strip above grid column `column`."""
        left = self.strip + column * self.cell
        self.image[:self.strip, left:left + self.cell] = label_image(text, self.cell, self.strip)

    def label_row(self, row: int, text: str) -> None:
        """Write `text` (reading upwards) in the strip left of grid row `row`."""
        top = self.strip + row * self.cell
        self.image[top:top + self.cell, :self.strip] = np.rot90(label_image(text, self.cell, self.strip))


def label_image(text: str, width: int, height: int) -> np.ndarray:
    """`text` centred in black on a white [height, width, 3] uint8 strip, cut with '…' to fit."""
    from PIL import ImageDraw, ImageFont

    strip = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=max(6, round(height * 0.6)))
    shown = text
    while len(shown) > 1 and draw.textlength(shown, font=font) > width - 4:
        shown = shown[:-2] + "…"
    draw.text((width / 2, height / 2), shown, fill="black", font=font, anchor="mm")
    return np.asarray(strip)


def style_mixing_grid(generator: Generator, source_seeds: Sequence[int], destination_seeds: Sequence[int],
                      level: str = "coarse", psi: float = DEFAULT_PSI) -> StyleMixingGrid:
    """`mixing_grid` of random faces: the codes of the seeds, truncated by psi."""
    for name, seeds in (("source", source_seeds), ("destination", destination_seeds)):
        _check_grid_side(len(seeds), name)
    return mixing_grid(generator, random_codes(generator, source_seeds, psi),
                       random_codes(generator, destination_seeds, psi), level)


def _check_grid_side(count: int, name: str) -> None:
    if not 1 <= count <= MAX_MIXING_SEEDS:
        raise InputError(f"give between 1 and {MAX_MIXING_SEEDS} {name} seeds or codes, got {count}")


def mixing_grid(generator: Generator, sources: torch.Tensor, destinations: torch.Tensor, level: str = "coarse",
                source_labels: Optional[Sequence[str]] = None,
                destination_labels: Optional[Sequence[str]] = None) -> StyleMixingGrid:
    """Render the style-mixing grid of codes (sources [S, num_ws, w_dim] along the top,
    destinations [D, num_ws, w_dim] down the left): each cell is a destination image with the
    `level` styles ('coarse', 'middle' or 'fine', see `mixing_rows`) of a source image. With
    labels (one per source and per destination) the columns and rows are named in strips.

    At most MAX_MIXING_SEEDS codes a side. Cells are rendered one at a time, downscaled so the grid
    is at most MAX_GRID_SIDE px a side and written into one preallocated uint8 image, so memory
    stays one synthesis plus the finished grid (`worst_case_bytes('style_mixing_grid', ...)`).
    """
    sources = check_code(generator, sources, "source codes", single=False)
    destinations = check_code(generator, destinations, "destination codes", single=False)
    for name, batch in (("source", sources), ("destination", destinations)):
        _check_grid_side(batch.shape[0], name)
    labelled = source_labels is not None or destination_labels is not None
    labels = _grid_labels(source_labels, sources.shape[0], "source") + _grid_labels(
        destination_labels, destinations.shape[0], "destination")
    rows = mixing_rows(generator, level)
    cell = grid_cell_size(generator.resolution, max(len(sources), len(destinations)) + 1, labelled)
    strip = label_strip(cell) if labelled else 0
    grid = StyleMixingGrid(np.full((strip + (len(destinations) + 1) * cell, strip + (len(sources) + 1) * cell, 3),
                                   255, np.uint8), cell, sources, destinations, rows, strip)
    for column, source in enumerate(sources.split(1), start=1):
        grid.cell_image(0, column)[:] = render_cell(generator, source, cell)
    for row, destination in enumerate(destinations.split(1), start=1):
        grid.cell_image(row, 0)[:] = render_cell(generator, destination, cell)
        for column, mixed in enumerate(style_mixing_codes(sources, destination, rows)[0].split(1), start=1):
            grid.cell_image(row, column)[:] = render_cell(generator, mixed, cell)
    if labelled:
        for column, text in enumerate(labels[:sources.shape[0]], start=1):
            grid.label_column(column, text)
        for row, text in enumerate(labels[sources.shape[0]:], start=1):
            grid.label_row(row, text)
    return grid


def _grid_labels(labels: Optional[Sequence[str]], count: int, name: str) -> list[str]:
    """The labels of one side of a grid: as given (one per code), or numbers."""
    if labels is None:
        return [f"{name} {i + 1}" for i in range(count)]
    if len(labels) != count:
        raise InputError(f"give one label per {name} code: {count} codes, {len(labels)} labels")
    return [str(label) for label in labels]
