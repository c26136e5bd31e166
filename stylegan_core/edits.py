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

import torch

from .codes import (DEFAULT_PSI, DEFAULT_SPLIT_RESOLUTION, EXPRESSION_STRENGTH, MAX_GIF_FPS, MORPH_FRAMES,
                    InputError, check_code, check_number, check_psi, check_rows, check_whole_number, mixing_rows,
                    random_codes, rows_within)
from .generator import Generator
from .images import tensor_to_pil

# On the CPU one code at a time renders as fast per image as four (benchmarks/results/edits.md)
# and holds a quarter of the feature memory, which matters with several users on one machine.
RENDER_BATCH = 1


def render_codes(generator: Generator, ws: torch.Tensor, batch_size: int = RENDER_BATCH) -> torch.Tensor:
    """Codes [B, num_ws, w_dim] -> images [B, 3, H, W] in [-1, 1], `batch_size` codes at a time
    (bounds the memory of long morphs and big grids)."""
    ws = check_code(generator, ws, "codes", single=False)
    with torch.no_grad():
        return torch.cat([generator.synthesis(chunk) for chunk in ws.split(batch_size)])


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


def frames_to_gif(frames: Sequence[torch.Tensor], path: Union[str, os.PathLike], fps: float = 10,
                  boomerang: bool = False) -> Path:
    """Write [3, H, W] (or [1, 3, H, W]) frames in [-1, 1] as a looping animated GIF at `fps`.
    `boomerang` appends the frames backwards so the loop plays there and back without a jump."""
    if not frames:
        raise InputError("no frames to write")
    fps = check_number(fps, "the frame rate (fps)", 0.1, MAX_GIF_FPS)
    images = [tensor_to_pil(frame) for frame in frames]
    if len({image.size for image in images}) != 1:
        raise InputError("all frames must have the same size")
    if boomerang and len(images) > 2:
        images += images[-2:0:-1]
    path = Path(path)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0, optimize=False)
    return path


# -- style transfer (crossover) ---------------------------------------------------------------
def crossover_codes(generator: Generator, content: torch.Tensor, style: torch.Tensor,
                    split_resolution: int = DEFAULT_SPLIT_RESOLUTION) -> torch.Tensor:
    """Image2StyleGAN style transfer: the rows driving layers up to `split_resolution` px come
    from `content`, the rows of the finer layers from `style`: [1, num_ws, w_dim].

    At the default 64 px an 18-row StyleGAN2 at 1024 px takes its first 9 rows from the content,
    as in the paper. Rows that drive no layer keep the content's values, so a split at the full
    resolution returns the content code itself, and a split at 0 renders the style image.
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


@dataclass
class StyleMixingGrid:
    """The StyleGAN paper's style-mixing figure and its pieces (images in [-1, 1])."""

    image: torch.Tensor         # [3, (D + 1) H, (S + 1) W]: sources along the top, destinations down the left
    sources: torch.Tensor       # [S, 3, H, W]: give the styles of the chosen level
    destinations: torch.Tensor  # [D, 3, H, W]: give all other styles
    mixes: torch.Tensor         # [D, S, 3, H, W]: mixes[d, s] = destination d with source s's level
    rows: list[int]             # the W+ rows copied from the sources


def style_mixing_grid(generator: Generator, source_seeds: Sequence[int], destination_seeds: Sequence[int],
                      level: str = "coarse", psi: float = DEFAULT_PSI, batch_size: int = RENDER_BATCH) -> StyleMixingGrid:
    """Render the style-mixing grid of seeds: each cell is a destination image with the `level`
    styles ('coarse', 'middle' or 'fine', see `mixing_rows`) of a source image. The top-left
    corner is white."""
    rows = mixing_rows(generator, level)
    sources = random_codes(generator, source_seeds, psi)
    destinations = random_codes(generator, destination_seeds, psi)
    mixed = style_mixing_codes(sources, destinations, rows)
    count_s, count_d = sources.shape[0], destinations.shape[0]
    images = render_codes(generator, torch.cat([sources, destinations, mixed.flatten(0, 1)]), batch_size)
    source_images, destination_images = images[:count_s], images[count_s:count_s + count_d]
    mixes = images[count_s + count_d:].unflatten(0, (count_d, count_s))
    corner = torch.ones_like(source_images[:1])
    top = torch.cat([corner, source_images])
    body = torch.cat([destination_images.unsqueeze(1), mixes], dim=1)  # [D, S + 1, 3, H, W]
    table = torch.cat([top.unsqueeze(0), body])  # [D + 1, S + 1, 3, H, W]
    grid = table.permute(2, 0, 3, 1, 4).flatten(3, 4).flatten(1, 2)  # rows of cells, then columns
    return StyleMixingGrid(grid, source_images, destination_images, mixes, rows)
