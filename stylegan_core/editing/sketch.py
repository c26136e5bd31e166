"""Sketch to face by optimisation (the job of S2FGAN, whose checkpoints were never released).

A differentiable sketch renderer draws a generated image as a line drawing the way pSp made its
training sketches (grey -> Gaussian blur -> Sobel gradients -> lines where the gradient is strong),
and the code is optimised until that drawing matches the user's. The comparison only sees line
structure, so the white paper never pulls colours; it compares blurred line maps at several
scales (an image pyramid), so lines drawn a few pixels off cost little; and a Gaussian prior on W
keeps the code where faces live. Only the rows up to `SketchOptions.shape_resolution` follow the
sketch (coarse rows first, then finer ones); the finer rows keep the starting code's colours and
texture (the reference's, when one is given, bit for bit).

Line maps are [batch, 1, R, R] tensors in [0, 1] in the drawing convention: 1 is white paper,
0 a black line. `SketchLoss` works on "ink" (1 - drawing) internally.
"""
from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..codes import check_code, check_whole_number, random_codes, rows_within
from ..errors import UserError
from ..models.generator import Generator
from ..images import ImageSource, load_image, tensor_to_pil
from ..inversion.projector import ProgressCallback, schedule_at

LOSS_RESOLUTION = 256  # the generator renders 1024 px; lines are compared at 256 px
MAX_CANDIDATES = 8
MAX_STEPS = 1000
# Renderer: the blur before the gradients (in pixels at 256 px) removes skin and hair texture, and
# gradients of about LINE_GRADIENT (grey levels per pixel) and above become full-strength lines.
BLUR_SIGMA = 1.0
LINE_GRADIENT = 0.05


class SketchError(UserError, ValueError):
    """A sketch that cannot be used (empty, a photo, no face-like drawing); the message says why."""


# -- the differentiable renderer --------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with reflected borders (no dark frame at the edges)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
    return F.conv2d(x, kernel.view(x.shape[1], 1, -1, 1), groups=x.shape[1])


def sobel_magnitude(grey: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of [B, 1, H, W] (grey levels per pixel) from the 3x3 Sobel filters.

    pSp runs Sobel on the image and on its inverse because 8-bit filtering clips negative responses;
    in floating point the inverse's response is the negative, and the magnitude covers both."""
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=grey.device) / 8
    kernels = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1).to(grey.dtype)
    gradients = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    # The epsilon keeps the square root differentiable at 0; subtracting its root keeps flat areas at exactly 0.
    return torch.sqrt(gradients.square().sum(dim=1, keepdim=True) + 1e-8) - 1e-4


def line_strength(image: torch.Tensor, resolution: int = LOSS_RESOLUTION) -> torch.Tensor:
    """Image [B, 3, H, W] in [-1, 1] -> ink [B, 1, R, R] in [0, 1] (1 = a full line). Differentiable.

    The soft threshold 1 - exp(-(g / LINE_GRADIENT)^2) keeps faint shading nearly white while its
    gradient never vanishes, so the optimiser can still grow a line where the user drew one."""
    if image.shape[-1] != resolution:
        image = F.interpolate(image, size=(resolution, resolution), mode="area")
    grey = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3] + 1) / 2
    magnitude = sobel_magnitude(gaussian_blur(grey, BLUR_SIGMA * resolution / LOSS_RESOLUTION))
    return 1 - torch.exp(-(magnitude / LINE_GRADIENT).square())


def sketch_of(image: torch.Tensor, resolution: int = LOSS_RESOLUTION) -> torch.Tensor:
    """The line drawing of an image: [B, 1, R, R] in [0, 1], dark lines on white. Differentiable."""
    return 1 - line_strength(image, resolution)


def drawing_to_pil(drawing: torch.Tensor) -> Image.Image:
    """A [1, 1, H, W] (or [1, H, W]) drawing in [0, 1] -> an 8-bit greyscale PIL image."""
    array = (drawing.detach().float().cpu().clamp(0, 1).reshape(drawing.shape[-2:]) * 255).round()
    return Image.fromarray(array.to(torch.uint8).numpy(), "L")


# -- the user's sketch ------------------------------------------------------------------------
# Limits of what counts as a line drawing, measured on the sketch at 256 px (ink: 0 paper, 1 black).
MIN_INK_FRACTION = 0.002  # less ink than this: an empty canvas
MAX_INK_FRACTION = 0.35  # more: a filled or shaded picture
MAX_MIDTONE_FRACTION = 0.25  # pixels neither paper nor line; a photo has most of its pixels here
MAX_COLOUR_FRACTION = 0.10  # clearly coloured pixels; a drawing is black (or one colour) on white
MIN_EXTENT = 0.25  # the drawing's bounding box must span at least this fraction of each side
MIN_CONTRAST = 0.15  # grey levels between the paper and the darkest lines
EMPTY_MESSAGE = ("The sketch is empty: draw the outline of a face, with eyes, nose and mouth, in dark lines "
                 "on white.")
PHOTO_MESSAGE = ("This looks like a photo or a painting, not a line drawing. Upload dark lines on white "
                 "paper (for a photo of a face, use the Invert tab).")


@dataclass
class Sketch:
    """A user's line drawing, ready for `sketch_to_face`."""

    drawing: torch.Tensor  # [1, 1, R, R] in [0, 1]: 1 paper, 0 line (levels stretched, square)
    warnings: list[str] = field(default_factory=list)

    @property
    def image(self) -> Image.Image:
        return drawing_to_pil(self.drawing)


def on_white_square(image: Image.Image) -> Image.Image:
    """Pad to a square with white paper, centred: uploads of any shape keep their proportions."""
    side = max(image.size)
    if image.width == image.height:
        return image
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def load_sketch(source: ImageSource, resolution: int = LOSS_RESOLUTION) -> Sketch:
    """A drawing (file, bytes, PIL image or array, e.g. a canvas; any size) -> a `Sketch`.

    Dark lines on light paper; the paper and ink levels are stretched to white and black, so a
    pencil drawing on grey paper works. Raises SketchError for an empty canvas, a photo or a
    drawing too small to be a face; warns when the drawing sits far off centre.
    """
    image = on_white_square(load_image(source, max_side=2048))
    rgb = np.asarray(image.resize((resolution, resolution), Image.Resampling.BOX), dtype=np.float32) / 255
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    paper, darkest = np.percentile(grey, 90), grey.min()
    if paper - darkest < MIN_CONTRAST:
        raise SketchError(EMPTY_MESSAGE)
    if ((rgb.max(axis=2) - rgb.min(axis=2)) > 0.25).mean() > MAX_COLOUR_FRACTION:
        raise SketchError(PHOTO_MESSAGE)
    ink = np.clip((paper - grey) / (paper - darkest), 0, 1)
    warnings = check_drawing(ink)
    drawing = torch.from_numpy(1 - ink).view(1, 1, resolution, resolution)
    return Sketch(drawing=drawing, warnings=warnings)


def check_drawing(ink: np.ndarray) -> list[str]:
    """Refuse what is not a line drawing of a face; return warnings for what is merely odd."""
    lines = ink > 0.5
    if lines.mean() < MIN_INK_FRACTION:
        raise SketchError(EMPTY_MESSAGE)
    if ((ink > 0.15) & (ink < 0.85)).mean() > MAX_MIDTONE_FRACTION:
        raise SketchError(PHOTO_MESSAGE)
    if lines.mean() > MAX_INK_FRACTION:
        raise SketchError(f"{lines.mean():.0%} of the sketch is dark: draw lines on white paper, not filled "
                          "areas (or invert the image if it has white lines on black).")
    rows, columns = np.nonzero(lines)
    side = ink.shape[0]
    extent = min(np.ptp(rows), np.ptp(columns)) / side
    if extent < MIN_EXTENT:
        raise SketchError(f"The drawing covers only {extent:.0%} of the canvas: draw a face that fills most "
                          "of it (head outline, eyes, nose, mouth).")
    centre = np.array([rows.mean(), columns.mean()]) / side
    if np.abs(centre - 0.5).max() > 0.2:
        return ["The drawing is far from the centre of the canvas; faces are generated centred, so the "
                "result may not follow it. Best effort."]
    return []


# -- the loss ---------------------------------------------------------------------------------
PYRAMID_LEVELS = 4  # 256, 128, 64 and 32 px: lines a few pixels off still overlap at the coarse levels


def line_pyramid(ink: torch.Tensor, levels: int = PYRAMID_LEVELS) -> list[torch.Tensor]:
    """Blurred copies of an ink map at halving sizes (blur 1 px at each size, so 1, 2, 4, 8 px at the top)."""
    pyramid = []
    for level in range(levels):
        if level:
            ink = F.avg_pool2d(ink, 2)
        pyramid.append(gaussian_blur(ink, 1.0))
    return pyramid


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of two maps per image: blind to overall line strength and width,
    so a thin pen and thick pencil strokes (or a low-contrast face) compare alike."""
    a, b = a.flatten(1), b.flatten(1)
    return 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)


class SketchLoss:
    """How far an image's line drawing is from the target drawing: the mean cosine distance of
    their blurred line pyramids. The target's pyramid is computed once."""

    def __init__(self, target_drawing: torch.Tensor, resolution: int = LOSS_RESOLUTION) -> None:
        if target_drawing.shape[-1] != resolution:
            target_drawing = F.interpolate(target_drawing, size=(resolution, resolution), mode="area")
        self.resolution = resolution
        self.target = line_pyramid(1 - target_drawing.float())

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        rendered = line_pyramid(line_strength(image, self.resolution))
        distances = [cosine_distance(r, t.to(r)) for r, t in zip(rendered, self.target)]
        return torch.stack(distances).mean(0)


# -- the prior --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WStatistics:
    mean: torch.Tensor  # [w_dim]
    std: torch.Tensor  # [w_dim]


_W_STATISTICS: "weakref.WeakKeyDictionary[Generator, WStatistics]" = weakref.WeakKeyDictionary()


def w_statistics(generator: Generator, samples: int = 4000, seed: int = 0) -> WStatistics:
    """Per-dimension mean and spread of W (mapping of seeded Gaussian z), once per generator."""
    if generator not in _W_STATISTICS:
        z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            w = generator.mapping_network(z.to(generator.device))
        _W_STATISTICS[generator] = WStatistics(mean=w.mean(0), std=w.std(0).clamp_min(1e-6))
    return _W_STATISTICS[generator]


def w_prior(ws: torch.Tensor, statistics: WStatistics) -> torch.Tensor:
    """Mean squared z-score of the rows under a diagonal Gaussian fit of W: about 1 for the codes
    of random faces, growing as the code leaves the region where faces live."""
    return ((ws - statistics.mean) / statistics.std).square().mean(dim=(1, 2))


# -- optimisation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SketchOptions:
    """How to fit codes to a sketch. Deterministic for given options (random starts use `seed`)."""

    steps: int = 60  # per candidate
    # Like the projector: a shared delta for all shape rows (moves the face as a whole, on the
    # manifold) at a high rate, per-row offsets at a low one.
    learning_rate: float = 0.1
    row_learning_rate: float = 0.03
    lr_schedule: str = "cosine"  # read by projector.schedule_at, as are the two fractions
    warmup_fraction: float = 0.05
    rampdown_fraction: float = 0.25
    prior_weight: float = 0.02  # times the mean squared z-score of the shape rows under W's Gaussian fit
    shape_resolution: int = 128  # rows up to this size follow the sketch; finer rows keep the start's
    coarse_resolution: int = 32  # for the first `coarse_fraction` of the steps only these rows get offsets
    coarse_fraction: float = 0.4
    psi: float = 0.7  # truncation of the random starts: typical, well-formed faces
    seed: int = 0  # the random starts are seeds seed, seed + 1, ...
    plateau_patience: Optional[int] = 15  # stop a candidate when its best loss has not improved for this many steps
    plateau_tolerance: float = 0.005  # ... by more than this fraction
    preview_every: int = 10  # steps between preview images passed to `progress` (0: none)

    def __post_init__(self) -> None:
        check_whole_number(self.steps, "steps", 1, MAX_STEPS)
        if self.learning_rate <= 0 or self.row_learning_rate < 0 or self.prior_weight < 0:
            raise ValueError("learning_rate must be > 0; row_learning_rate and prior_weight >= 0")
        if not 0 <= self.coarse_fraction < 1:
            raise ValueError(f"coarse_fraction must be in [0, 1), got {self.coarse_fraction}")


@dataclass
class Candidate:
    ws: torch.Tensor  # [1, num_ws, w_dim], the code with the lowest loss seen
    image: Image.Image  # its image, at the generator's resolution
    sketch_image: Image.Image  # its line drawing as the loss sees it (greyscale, LOSS_RESOLUTION px at most)
    loss: float  # the sketch term alone: 0 = same lines, 1 = nothing in common
    start: str  # "mean face", "seed N" or "reference"
    steps_run: int = 0
    stopped: str = "done"  # "done", "plateau" or "cancelled"
    elapsed_s: float = 0.0


def row_mask(generator: Generator, resolution: int) -> torch.Tensor:
    """[1, num_ws, 1] bool: the rows whose layers work at `resolution` px or below."""
    mask = torch.zeros(generator.num_ws, dtype=torch.bool)
    mask[rows_within(generator, 0, resolution)] = True
    return mask.view(1, -1, 1).to(generator.device)


class _ShapeCode:
    """ws = start + shared + offsets on the shape rows; every other row is the start's, bit for bit."""

    def __init__(self, start: torch.Tensor, shape_rows: torch.Tensor) -> None:
        self.start, self.shape_rows = start.detach(), shape_rows
        self.shared = torch.zeros_like(start[:, :1]).requires_grad_(True)
        self.offsets = torch.zeros_like(start).requires_grad_(True)

    def parameters(self) -> list[torch.Tensor]:
        return [self.shared, self.offsets]

    def ws(self) -> torch.Tensor:
        return torch.where(self.shape_rows, self.start + self.shared + self.offsets, self.start)


def starting_codes(generator: Generator, count: int, options: SketchOptions,
                   reference_ws: Optional[torch.Tensor] = None) -> list[tuple[str, torch.Tensor]]:
    """`count` starts: the reference's code (if any), the mean face, then random faces. With a
    reference, every start takes the reference's rows finer than `options.shape_resolution`."""
    starts = [("mean face", generator.mean_ws(1).to(generator.device))]
    seeds = [options.seed + index for index in range(count)]
    starts += [(f"seed {seed}", code.unsqueeze(0)) for seed, code in zip(seeds, random_codes(generator, seeds, options.psi))]
    if reference_ws is not None:
        fine_rows = ~row_mask(generator, options.shape_resolution)
        starts = [("reference", reference_ws)] + [(name, torch.where(fine_rows, reference_ws, code))
                                                  for name, code in starts]
    return starts[:count]


StopCallback = Callable[[], bool]


@dataclass
class _Run:
    """What one candidate's loop reports to the caller: progress numbering across all candidates."""

    progress: Optional[ProgressCallback]
    should_stop: Optional[StopCallback]
    step_offset: int
    total: int

    def stop_requested(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())

    def report(self, step: int, image: torch.Tensor, loss: float, last: bool, options: SketchOptions) -> None:
        if self.progress is None:
            return
        show = last or (options.preview_every > 0 and step % options.preview_every == 0)
        self.progress(self.step_offset + step, self.total, tensor_to_pil(image.detach()) if show else None, loss)


def fit_candidate(generator: Generator, loss_fn: SketchLoss, start: tuple[str, torch.Tensor],
                  options: SketchOptions, run: _Run) -> Candidate:
    """Optimise one start: Adam on the shape rows (coarse rows' offsets first), best code kept."""
    started = time.perf_counter()
    statistics = w_statistics(generator)
    shape_rows = row_mask(generator, options.shape_resolution)
    coarse_rows = row_mask(generator, min(options.coarse_resolution, options.shape_resolution))
    code = _ShapeCode(start[1].to(generator.device), shape_rows)
    optimizer = torch.optim.Adam([{"params": [p]} for p in code.parameters()], betas=(0.9, 0.999), eps=1e-8)
    rates = (options.learning_rate, options.row_learning_rate)
    coarse_steps = round(options.steps * options.coarse_fraction)
    best_loss, best_ws, best_image = math.inf, code.ws().detach().clone(), None
    plateau_loss, plateau_step, stopped, steps_run = math.inf, 0, "done", 0
    for step in range(options.steps):
        if run.stop_requested():
            stopped = "cancelled"
            break
        factor = schedule_at(options, (step + 1) / options.steps)
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate * factor
        ws = code.ws()
        image = generator.synthesis(ws)
        sketch_loss = loss_fn(image)[0]
        prior = w_prior(ws[:, shape_rows[0, :, 0]], statistics)[0]
        shared_grad, offsets_grad = torch.autograd.grad(sketch_loss + options.prior_weight * prior,
                                                        code.parameters())
        if step < coarse_steps:  # coarse rows first: the finer rows' offsets wait
            offsets_grad = offsets_grad * coarse_rows
        code.shared.grad, code.offsets.grad = shared_grad, offsets_grad
        value = float(sketch_loss.detach())
        if value < best_loss:
            best_loss, best_ws, best_image = value, ws.detach().clone(), image.detach()
        if value < plateau_loss * (1.0 - options.plateau_tolerance):
            plateau_loss, plateau_step = value, step
        optimizer.step()
        steps_run = step + 1
        plateau = options.plateau_patience is not None and step - plateau_step >= options.plateau_patience
        run.report(steps_run, image, value, steps_run == options.steps or plateau, options)
        if plateau:
            stopped = "plateau"
            break
    return _candidate(generator, loss_fn, start[0], best_ws, best_image, best_loss,
                      steps_run, stopped, time.perf_counter() - started)


def _candidate(generator: Generator, loss_fn: SketchLoss, start: str, ws: torch.Tensor,
               image: Optional[torch.Tensor], loss: float, steps_run: int, stopped: str,
               elapsed_s: float) -> Candidate:
    if image is None:  # stopped before the first step: the starting code as it is
        with torch.no_grad():
            image = generator.synthesis(ws)
            loss = float(loss_fn(image)[0])
    drawing = sketch_of(image, loss_fn.resolution)
    return Candidate(ws=ws.cpu(), image=tensor_to_pil(image), sketch_image=drawing_to_pil(drawing),
                     loss=loss, start=start, steps_run=steps_run, stopped=stopped, elapsed_s=elapsed_s)


def sketch_to_face(generator: Generator, sketch: Sketch | torch.Tensor, candidates: int = 3,
                   reference_ws: Optional[torch.Tensor] = None, options: Optional[SketchOptions] = None,
                   steps: Optional[int] = None, progress: Optional[ProgressCallback] = None,
                   should_stop: Optional[StopCallback] = None) -> list[Candidate]:
    """Faces whose line drawings match `sketch` (a `Sketch` from `load_sketch`, or a drawing tensor
    [1, 1, H, W] in [0, 1]), best first.

    One candidate per start (`starting_codes`), fitted one after the other so the first arrives
    early. `progress(step, total, preview, loss)` counts the steps of all candidates (a candidate
    that stops early on a plateau skips ahead); a preview comes every `options.preview_every` steps
    and at the end of each candidate. When `should_stop()` turns true, the candidate in progress
    ends with its best code so far and the remaining ones are skipped.
    """
    options = options or SketchOptions()
    if steps is not None:
        options = replace(options, steps=steps)
    candidates = check_whole_number(candidates, "the number of candidates", 1, MAX_CANDIDATES)
    if reference_ws is not None:
        reference_ws = check_code(generator, reference_ws, "reference code")
    drawing = sketch.drawing if isinstance(sketch, Sketch) else sketch
    loss_fn = SketchLoss(drawing.to(generator.device), min(LOSS_RESOLUTION, generator.resolution))
    results = []
    for index, start in enumerate(starting_codes(generator, candidates, options, reference_ws)):
        run = _Run(progress, should_stop, index * options.steps, candidates * options.steps)
        results.append(fit_candidate(generator, loss_fn, start, options, run))
        if results[-1].stopped == "cancelled":
            break
    return sorted(results, key=lambda candidate: candidate.loss)


def render_candidate(generator: Generator, ws: torch.Tensor) -> tuple[Image.Image, Image.Image]:
    """A code (a candidate's, perhaps edited with sliders) -> its image and its line drawing."""
    ws = check_code(generator, ws)
    with torch.no_grad():
        image = generator.synthesis(ws)
    return tensor_to_pil(image), drawing_to_pil(sketch_of(image, min(LOSS_RESOLUTION, generator.resolution)))
