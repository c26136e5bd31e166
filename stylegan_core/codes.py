"""Codes and limits: the one home of "is this a code of this model", seed -> code, rows and layers
by resolution, and every limit and default the library, the CLI, `Studio` and the app share.

A code is a plain tensor ws [batch, num_ws, w_dim] (W+: one row per style input). Which rows and
layers an edit touches is chosen by the resolution of the layers they drive
(`Generator.describe_rows`), never by a fixed index, so one call works for 23-row MobileStyleGAN
and 18-row StyleGAN2 models, at any output resolution.

Limits and defaults (change them here; the app's sliders, the API, the CLI and the library all
read these names):

==========================  ===================  ==================================================
name                        value                what it bounds
==========================  ===================  ==================================================
PSI_RANGE, DEFAULT_PSI      [-1, 2], 0.7         truncation psi (1 = none; 0.7 looks good)
SPACES, DEFAULT_SPACE       ('w+', 'w', 's'), 'w+' latent spaces of inversion and latent files
INVERT_STEPS, DEFAULT_...   [1, 5000], 80        inversion steps in the app and Studio (5000 = paper)
MAX_SEED                    2^32 - 1             a seed (numpy's RandomState)
MAX_SEEDS_PER_CALL          16                   seeds in one Generate call or one seed range
MAX_MIXING_SEEDS            8                    sources, and destinations, of one mixing grid
MAX_GRID_SIDE               4096 px              a side of the style-mixing grid
MAX_CODES_PER_CALL          32                   codes one call makes from seeds (panorama)
MORPH_FRAMES, DEFAULT_...   [2, 32], 6           frames of a morph
MORPH_FPS, MAX_GIF_FPS      8, 50                GIF frame rate (GIF stores 1/100 s steps)
MORPH_GIF_SIDE              384 px               the morph's GIF (the MP4 keeps the full size)
EXPRESSION_STRENGTH, DEF..  [-5, 5], 1.0         lambda of expression transfer (advanced mode)
DEFAULT_EXPRESSION(_EDIT..) smile, 5.0           the simple path: a shipped direction, slider units
DEFAULT_SPLIT_RESOLUTION    32 px                style transfer: content rows up to here
MIXING_LEVELS               coarse/middle/fine   the StyleGAN paper's style groups (px ranges)
POSE_RESOLUTION             8 px                 SOAT pose rows (4 of 18 StyleGAN2 rows)
MAX_PANORAMA_CODES          32                   codes of one panorama (at least 2)
MAX_PANORAMA_SIDE           16384 px             length of a panorama (16 codes at 1024 px)
SMOOTHING_SIGMA, DEFAULT..  [0, 10], 0.0         panorama smoothing along the sequence (0 keeps identities)
MAX_MASK_SIDE               4096 px              a blend mask
PAINTED_MASK_FEATHER        0.02 of the side     Gaussian sigma that softens a painted blend mask
BLEND_FIT_STEPS             20                   inversion steps that fit a code to a blend (library)
MAX_LIBRARY_ENTRIES         64                   codes in one visitor's library (~47 KB each)
MAX_IMAGE_BYTES             64 MB                an image file
MAX_IMAGE_PIXELS            100 MP               an image, checked before decoding
MAX_DECODED_BYTES           400 MB               an image's decoded pixels, checked before decoding
MAX_UPLOAD_BYTES            64 MB                any upload to the app (Gradio's max_file_size)
FILE_RETENTION_S            3600 s               outputs and uploads are deleted after this
==========================  ===================  ==================================================
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Optional, Sequence

import torch

from .errors import UserError

# -- limits and defaults (see the table above) -------------------------------------------------
PSI_RANGE = (-1.0, 2.0)
DEFAULT_PSI = 0.7
SPACES = ("w+", "w", "s")  # s: per-layer styles with a Gaussian prior (SOAT), stored as a W+ fit of their image
DEFAULT_SPACE = "w+"
INVERT_STEPS = (1, 5000)
DEFAULT_INVERT_STEPS = 80  # about 42 s on a 2-core CPU with ffhq-mobile (benchmarks/results/invert.md)
MAX_SEED = 2**32 - 1
MAX_SEEDS_PER_CALL = 16
MAX_MIXING_SEEDS = 8  # a side of the style-mixing grid: (8 + 1)^2 cells, 8 + 8 + 64 renders
MAX_GRID_SIDE = 4096  # px a side of the style-mixing grid (cells are downscaled to fit)
MAX_CODES_PER_CALL = 32
MORPH_FRAMES = (2, 32)  # budget: 2 S + frames * IMAGE(R) (edits.worst_case_bytes)
DEFAULT_MORPH_FRAMES = 6
MORPH_FPS = 8
MORPH_GIF_SIDE = 384  # a 1024 px GIF takes ~1 MB a frame (6.8 MB for 6 frames); 384 px: ~0.15 MB
MAX_GIF_FPS = 50
EXPRESSION_STRENGTH = (-5.0, 5.0)
DEFAULT_EXPRESSION_STRENGTH = 1.0
# The Expression tab's simple path: a shipped direction, in slider units (standard deviations of
# generated faces). On ffhq-mobile smile=5 took the judge's P(happy) from 0.01 to 0.61 (grace_hopper)
# and 0.005 to 0.77 (seed 1) at identity distances 0.22 and 0.47 (benchmarks/results/expression.md).
DEFAULT_EXPRESSION = "smile"
DEFAULT_EXPRESSION_EDIT_STRENGTH = 5.0
# Style transfer: rows of the layers up to 32 px from the content. Image2StyleGAN split at 64 px (9 of
# 18 rows), but between two inverted photos that streaks the hair: at 32 px the hair's extra fine
# detail fell from 1.45 to 1.20 x the inputs' and more of the style's colour came through, while the
# face stayed the content's (benchmarks/results/style_transfer_split.md).
DEFAULT_SPLIT_RESOLUTION = 32
# The StyleGAN paper's style groups, as (lowest, highest) resolution of the layers a row drives.
MIXING_LEVELS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 20)}
DEFAULT_MIXING_LEVEL = "coarse"
# SOAT copies the first 4 of 18 rows from the pose source: the rows of the 4 px and 8 px layers.
POSE_RESOLUTION = 8
MAX_PANORAMA_CODES = MAX_CODES_PER_CALL
# 32 codes at 1024 px took 8 minutes and 1.5 GB here (benchmarks/results/limits.md): 16 at 1024, 32 at 512 px.
MAX_PANORAMA_SIDE = 16384
SMOOTHING_SIGMA = (0.0, 10.0)
# 0 keeps every person: at sigma 1 two of three people in the middle of a 5-seed panorama became
# other people (identity distance 0.65, 0.66 to their own renders; 0.5: up to 0.40; 0: up to 0.19),
# benchmarks/results/panorama_sigma.md. The blend between neighbours is SOAT's ramp either way.
DEFAULT_SMOOTHING_SIGMA = 0.0
MAX_MASK_SIDE = 4096  # a larger painted mask only gets downscaled to R anyway
# Blend: a painted mask is feathered by a Gaussian of this sigma (a fraction of its side: 5 px on the
# 256 px canvas, 20 px at 1024), so its strokes end in a soft seam instead of a hard step.
PAINTED_MASK_FEATHER = 0.02
# Blend -> library: a blend mixes features and has no code; this many inversion steps fit one to it,
# starting from A and B mixed by the mask's mean (the Invert tab's default is 80 steps, about 42 s).
# 20 steps on astronaut | grace_hopper (horizontal): identity distance 0.22 of the code's picture
# to the blend.
BLEND_FIT_STEPS = 20
MAX_LIBRARY_ENTRIES = 64
MAX_IMAGE_BYTES = 64 * 1024 * 1024
# A 20000 x 20000 PNG of one colour is a few hundred KB on disk and 1.2 GB decoded; refuse by pixel
# count before decoding. 100 MP still admits the photos of current phone and DSLR cameras.
MAX_IMAGE_PIXELS = 100_000_000
MAX_DECODED_BYTES = 400_000_000  # what decoding may allocate: a 100 MP RGB photo (PIL keeps RGB as 4 bytes)
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
FILE_RETENTION_S = 3600

SEED_REFERENCE = re.compile(r"^\s*seed\s*[:#]?\s*(\d+)\s*$", re.IGNORECASE)


class InputError(UserError, ValueError):
    """A value given to a library function that it cannot use; the message says what to give."""


# -- numbers -------------------------------------------------------------------------------------
def check_number(value, name: str, low: float, high: float) -> float:
    """A finite number in [low, high]; else InputError."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a number in [{low:g}, {high:g}], got {_short(value)}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise InputError(f"{name} must be in [{low:g}, {high:g}], got {_short(value)}")
    return number


def check_whole_number(value, name: str, low: int, high: int) -> int:
    """An int (or a float with no fraction, as sliders send) in [low, high]; else InputError."""
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise InputError(f"{name} must be a whole number in [{low}, {high}], got {_short(value)}")
    if not low <= int(value) <= high:
        raise InputError(f"{name} must be in [{low}, {high}], got {_short(value)}")
    return int(value)


def check_psi(psi) -> float:
    return check_number(psi, "the truncation psi", *PSI_RANGE)


def check_space(space) -> str:
    if space not in SPACES:
        raise InputError(f"the latent space must be one of {', '.join(SPACES)}, got {_short(space)}")
    return space


def _short(value) -> str:
    """A value for a message: quoted, and cut so a 5000-digit number cannot flood the message."""
    if isinstance(value, numbers.Integral) and abs(int(value)).bit_length() > 128:
        return "a number too large to show"  # str() of a 5000-digit int raises in Python >= 3.11
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- codes ---------------------------------------------------------------------------------------
def check_code(generator, ws: Optional[torch.Tensor], name: str = "code", single: bool = True) -> torch.Tensor:
    """Is this a code of this model? Returns it as a float tensor [batch, num_ws, w_dim] on the
    generator's device. A [num_ws, w_dim] tensor is one code. Raises InputError when the code is
    missing, has the shape of another model, is not finite, or (single=True) holds several codes.
    """
    expected = f"[1, {generator.num_ws}, {generator.w_dim}]"
    if ws is None:
        raise InputError(f"the {name} is missing: give a W+ code of shape {expected}")
    if not isinstance(ws, torch.Tensor):
        raise InputError(f"the {name} must be a tensor of shape {expected}, got a {type(ws).__name__}")
    if ws.dim() == 2:
        ws = ws.unsqueeze(0)
    if ws.dim() != 3 or tuple(ws.shape[1:]) != (generator.num_ws, generator.w_dim) or ws.shape[0] == 0:
        raise InputError(
            f"the {name} has shape {list(ws.shape)}, but this {generator.arch} model takes codes of "
            f"shape {expected} (is it a code of another model?)"
        )
    if single and ws.shape[0] != 1:
        raise InputError(f"the {name} must be one code ({expected}), got a batch of {ws.shape[0]}")
    if not torch.isfinite(ws).all():
        raise InputError(f"the {name} contains NaN or infinite values")
    return ws.to(device=generator.device, dtype=torch.float32)


def fits(generator, ws: torch.Tensor) -> bool:
    """Whether `ws` [batch, num_ws, w_dim] has the shape of this generator's codes."""
    return ws.dim() == 3 and tuple(ws.shape[1:]) == (generator.num_ws, generator.w_dim)


# -- seeds ---------------------------------------------------------------------------------------
def random_codes(generator, seeds: Sequence[int], psi: float = 1.0) -> torch.Tensor:
    """Seed -> code: the W+ codes of `seeds`, truncated towards w_avg by psi:
    [len(seeds), num_ws, w_dim] on the generator's device."""
    seeds = list(seeds)
    if not 1 <= len(seeds) <= MAX_CODES_PER_CALL:
        raise InputError(f"give between 1 and {MAX_CODES_PER_CALL} seeds, got {len(seeds)}")
    psi = check_psi(psi)
    seeds = [check_whole_number(seed, "a seed", 0, MAX_SEED) for seed in seeds]
    z = torch.cat([generator.seed_to_z(seed) for seed in seeds]).to(generator.device)
    with torch.no_grad():
        return generator.mapping(z, psi=psi)


def seed_of(reference: str) -> Optional[int]:
    """'seed 7' (or 'seed:7', 'Seed #7') -> 7; anything else -> None."""
    match = SEED_REFERENCE.match(str(reference or ""))
    return int(match.group(1)) if match else None


def parse_seeds(text, limit: int = MAX_SEEDS_PER_CALL) -> list[int]:
    """'1, 2, 5-8' -> [1, 2, 5, 6, 7, 8]; at most `limit` seeds, each in [0, MAX_SEED]."""
    if isinstance(text, numbers.Number) and not isinstance(text, bool):
        text = str(int(text)) if float(text).is_integer() else str(text)
    seeds: list[int] = []
    for part in str(text or "").replace(";", ",").split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d{1,12})\s*-\s*(\d{1,12})", part)
        if not part:
            continue
        if match:
            start, stop = int(match.group(1)), int(match.group(2))
            if stop < start or stop - start >= limit:
                raise InputError(f"the seed range {_short(part)} must be ascending and at most {limit} long")
            seeds.extend(range(start, stop + 1))
        elif re.fullmatch(r"\d{1,12}", part):
            seeds.append(int(part))
        else:
            raise InputError(f"{_short(part)} is not a seed: use whole numbers like '1, 2, 10-13'")
    if not seeds:
        raise InputError("enter at least one seed, e.g. '1, 2, 3'")
    if len(seeds) > limit:
        raise InputError(f"at most {limit} seeds per call, got {len(seeds)}")
    too_big = [s for s in seeds if s > MAX_SEED]
    if too_big:
        raise InputError(f"seeds must be between 0 and {MAX_SEED}; {too_big[0]} is out of range")
    return seeds


# -- rows and layers by resolution ---------------------------------------------------------------
def check_rows(generator, rows: Optional[Sequence[int]], name: str = "rows") -> list[int]:
    """None -> all rows; otherwise a non-empty sorted list of distinct row indices in [0, num_ws)."""
    if rows is None:
        return list(range(generator.num_ws))
    rows = list(rows)
    if not rows:
        raise InputError(f"{name} is empty: choose at least one of the rows 0..{generator.num_ws - 1}")
    for row in rows:
        check_whole_number(row, f"each of the {name}", 0, generator.num_ws - 1)
    return sorted({int(row) for row in rows})


def rows_within(generator, low: int = 0, high: Optional[int] = None) -> list[int]:
    """The W+ rows whose layers all work at resolutions in [low, high] px (by the highest
    resolution a row drives; rows that drive nothing are left out)."""
    high = generator.resolution if high is None else high
    return [info.row for info in generator.describe_rows() if info.used and low <= info.resolution <= high]


def pose_rows(generator, max_resolution: int = POSE_RESOLUTION) -> list[int]:
    """The W+ rows that drive any layer at `max_resolution` px or below: they set pose and face
    shape. For an 18-row StyleGAN2 at 8 px these are SOAT's first 4 rows."""
    return sorted({row for layer in generator.layers if layer.resolution <= max_resolution for row in layer.rows})


def layers_between(generator, low: int = 0, high: Optional[int] = None) -> list[int]:
    """Indices of the synthesis layers whose output resolution is in [low, high] px."""
    high = generator.resolution if high is None else high
    return [i for i, layer in enumerate(generator.layers) if low <= layer.resolution <= high]


def layer_resolutions(generator) -> list[int]:
    """The distinct output resolutions of the synthesis layers, ascending (the app's choices)."""
    return sorted({layer.resolution for layer in generator.layers})


def mixing_rows(generator, level: str) -> list[int]:
    """The rows of a style group: 'coarse' (layers at 4-8 px: pose, face shape), 'middle'
    (16-32 px: features, hair style, eyes) or 'fine' (64 px and up: colours, micro texture)."""
    if level not in MIXING_LEVELS:
        raise InputError(f"the style level must be one of {', '.join(MIXING_LEVELS)}, got {_short(level)}")
    low, high = MIXING_LEVELS[level]
    rows = rows_within(generator, low, high)
    if not rows:
        raise InputError(
            f"this {generator.resolution} px model has no {level} layers ({low}-{min(high, generator.resolution)} px)"
        )
    return rows
