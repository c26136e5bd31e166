"""Image2StyleGAN projection: find the code whose image reproduces a target (Abdal et al. 2019).

Only the code is optimised (Adam); the generator and VGG stay frozen. The code starts at w_avg and
lives in W+ (one row per style input, the default) or W (one row shared by all). The loss is
`perceptual.Image2StyleGANLoss`. Works for every `Generator` of the common interface.

Beyond the paper's recipe (`ProjectorOptions.image2stylegan()`: W+ rows at lr 0.01, constant, full
resolution), the defaults are tuned for a few dozen steps on a CPU: the loss at 256 px, VGG under
bfloat16, the W+ code split into a shared w with a high learning rate plus per-row offsets with a
low one (Adam on independent rows at a high rate wanders off the face manifold), a stronger pixel
term, warm-up and a cosine ramp-down, and optional stops on a plateau or a time budget.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Union

import torch
from PIL import Image

from ..codes import DEFAULT_INVERT_STEPS, SPACES, InputError
from ..errors import UserError
from ..models.generator import Generator
from ..images import pil_to_tensor, tensor_to_pil
from .perceptual import Image2StyleGANLoss, LossWeights, load_vgg16

SCHEDULES = ("constant", "cosine")

ProgressCallback = Callable[[int, int, Optional[Image.Image], float], None]


class ProjectionError(UserError):
    """The optimisation diverged (the loss became NaN or infinite); the message says what to change."""


@dataclass(frozen=True)
class ProjectorOptions:
    """How to project. Deterministic for given options and seed (unless `time_budget_s` is set)."""

    space: str = "w+"
    steps: int = DEFAULT_INVERT_STEPS
    # W+ codes are optimised as w (shared by all rows) + one offset per row, each with its own rate:
    # the shared part takes large steps towards the right face, the offsets refine it row by row.
    learning_rate: float = 0.1  # Adam lr of the shared w (all of the code in W)
    row_learning_rate: float = 0.03  # Adam lr of the per-row offsets (W+ only; the paper's W+ rate is 0.01)
    lr_schedule: str = "cosine"  # "constant", or "cosine": linear warm-up, flat, cosine ramp-down to 0
    warmup_fraction: float = 0.05
    rampdown_fraction: float = 0.25
    w_phase_fraction: float = 0.0  # W+ only: keep the offsets at 0 for this fraction of the steps
    loss_resolution: Optional[int] = 256  # None: the generator's full resolution
    # The paper weighs all terms 1; with so few steps a stronger pixel term (MSE is ~2% of the loss at
    # weight 1) raised PSNR on the astronaut from 14 to 19 dB at equal SSIM and identity distance.
    loss_weights: LossWeights = LossWeights(mse=10.0)
    bf16: Optional[bool] = None  # VGG under bfloat16 autocast; None: where measured faster (perceptual.bf16_pays_off)
    initial_noise: float = 0.0  # std of Gaussian noise added to the code, decaying to 0 (explores; uses seed)
    seed: int = 0
    plateau_patience: Optional[int] = None  # stop when the best loss has not improved for this many steps
    plateau_tolerance: float = 1e-3  # ... by more than this fraction
    time_budget_s: Optional[float] = None  # stop after this long; the schedule follows the elapsed time
    preview_every: int = 10  # steps between preview images passed to `progress` (0: none)
    # S space only: Adam lr of the styles in units of each channel's std, and the prior's weight on
    # the mean squared z-score of the styles (SOAT's sum over channels divided by their number).
    style_learning_rate: float = 0.1
    style_prior_weight: float = 0.05
    # S space only: W+ steps that fit the code every other operation takes to the S result's image
    # (see _fit_w_plus); a Stop during the S steps still runs STOPPED_FIT_STEPS of them.
    w_fit_steps: int = 40

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise InputError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.lr_schedule not in SCHEDULES:
            raise InputError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.steps < 1:  # no upper bound here: a library caller may run long with a time budget
            raise InputError(f"steps must be at least 1, got {self.steps}")
        if self.learning_rate < 0 or self.row_learning_rate < 0:
            raise InputError("learning_rate and row_learning_rate must be >= 0")
        if self.learning_rate == 0 and (self.space == "w" or self.row_learning_rate == 0):
            raise InputError("learning_rate must be > 0 (or, in W+, row_learning_rate)")
        if not all(0 <= f < 1 for f in (self.warmup_fraction, self.w_phase_fraction, self.rampdown_fraction)):
            raise InputError("warmup_fraction, rampdown_fraction and w_phase_fraction must be in [0, 1)")
        if self.loss_resolution is not None and self.loss_resolution < 32:
            raise InputError(f"loss_resolution must be >= 32 (VGG pools 3 times), got {self.loss_resolution}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InputError(f"time_budget_s must be > 0, got {self.time_budget_s}")
        if self.style_learning_rate <= 0 or self.style_prior_weight < 0:
            raise InputError("style_learning_rate must be > 0 and style_prior_weight >= 0")
        if self.w_fit_steps < 1:
            raise InputError(f"w_fit_steps must be at least 1, got {self.w_fit_steps}")

    @property
    def total_steps(self) -> int:
        """The steps `project` reports progress against (S space: its styles, then the W+ fit)."""
        return self.steps + (self.w_fit_steps if self.space == "s" else 0)

    @classmethod
    def image2stylegan(cls, steps: int = 5000) -> "ProjectorOptions":
        """The published recipe: W+ rows optimised independently by Adam at lr 0.01, constant, the loss at
        full resolution, all weights 1. (A frozen shared w plus offsets at lr 0.01 is exactly that.)"""
        return cls(space="w+", steps=steps, learning_rate=0.0, row_learning_rate=0.01, lr_schedule="constant",
                   warmup_fraction=0.0, w_phase_fraction=0.0, loss_resolution=None, loss_weights=LossWeights(),
                   bf16=False)


@dataclass
class ProjectionResult:
    ws: torch.Tensor  # [1, num_ws, w_dim], the code with the lowest loss seen
    image: Image.Image  # its image
    loss: float
    history: list[dict] = field(default_factory=list)  # per step: step, loss, terms, lr_factor, time_s
    steps_run: int = 0
    stopped: str = "done"  # "done", "plateau", "time budget" or "cancelled"
    elapsed_s: float = 0.0
    space: str = "w+"
    styles: Optional[list] = None  # S space: the per-layer styles found ([1, C_l] each); ws is a W+ fit of their image


def schedule_at(options: ProjectorOptions, progress: float) -> float:
    """The factor applied to the learning rates at `progress` in [0, 1] of the run (the shape of the
    NVlabs StyleGAN2 projector's schedule: linear warm-up, flat, then a cosine ramp-down to 0)."""
    if options.lr_schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    warmup = min(1.0, progress / options.warmup_fraction) if options.warmup_fraction > 0 else 1.0
    if options.rampdown_fraction == 0:
        return warmup
    rampdown = min(1.0, (1.0 - progress) / options.rampdown_fraction)
    return warmup * 0.5 * (1.0 - math.cos(math.pi * rampdown))


def target_tensor(target: Union[Image.Image, torch.Tensor], generator: Generator) -> torch.Tensor:
    """The target as [1, 3, R, R] in [-1, 1] at the generator's resolution R."""
    if isinstance(target, Image.Image):
        return pil_to_tensor(target, generator.resolution).to(generator.device)
    if target.dim() != 4 or target.shape[:2] != (1, 3):
        raise InputError(f"the target tensor must be [1, 3, H, W] in [-1, 1], got {list(target.shape)}")
    if target.shape[-2:] != (generator.resolution, generator.resolution):
        target = torch.nn.functional.interpolate(target, size=(generator.resolution,) * 2, mode="bilinear",
                                                 antialias=True, align_corners=False)
    return target.to(generator.device, torch.float32)


def _progress(options: ProjectorOptions, step: int, elapsed_s: float) -> float:
    """How far the run is, in [0, 1]: by steps, or by the clock when that is further along.

    Counted after the step: the update made at the last step is never evaluated, so the schedule may
    reach 0 there, but not at the first step, which would be wasted (a step costs a second or more).
    """
    fraction = (step + 1) / options.steps
    if options.time_budget_s is not None:
        fraction = max(fraction, elapsed_s / options.time_budget_s)
    return min(fraction, 1.0)


class _Code:
    """ws = w (one row, shared) + offsets (one per row; W+ only), starting at `start_ws` (w_avg by
    default): its first row is the shared part and the rest the offsets."""

    def __init__(self, start_ws: torch.Tensor, space: str) -> None:
        self.num_ws = start_ws.shape[1]
        self.shared = start_ws[:, :1].detach().clone().requires_grad_(True)
        self.offsets = (start_ws - self.shared).detach().clone().requires_grad_(True) if space == "w+" else None

    def parameters(self) -> list[torch.Tensor]:
        return [self.shared] if self.offsets is None else [self.shared, self.offsets]

    def ws(self) -> torch.Tensor:
        ws = self.shared.expand(-1, self.num_ws, -1)
        return ws if self.offsets is None else ws + self.offsets

    def render(self, generator: Generator, ws: torch.Tensor) -> torch.Tensor:
        return generator.synthesis(ws)

    def prior(self) -> Optional[torch.Tensor]:
        return None

    def result(self, generator: Generator, ws: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ws, None


class _StyleCode:
    """S space (SOAT's improved inversion): every layer's style vector optimised directly, as
    s = mu + std * u with u starting at 0 (mu: the styles of w_avg), and the Gaussian prior
    weight * mean(u^2) = weight * mean((s - mu)^2 / var). `ws()` returns the flat styles."""

    def __init__(self, generator: Generator, prior_weight: float, start_ws: Optional[torch.Tensor] = None) -> None:
        from .style_prior import style_prior

        prior = style_prior(generator)
        self.mean, self.std = prior.flat_mean()[None], prior.flat_std()[None]
        self.sizes = [m.shape[0] for m in prior.mean]
        self.start_ws = generator.mean_ws(1) if start_ws is None else start_ws.detach().float()
        if start_ws is None:
            self.units = torch.zeros_like(self.mean).requires_grad_(True)
        else:  # a warm start: the styles of the given code, in units of each channel's spread
            with torch.no_grad():
                start = torch.cat(generator.styles(start_ws.to(self.mean)), dim=1)
            self.units = ((start - self.mean) / self.std).requires_grad_(True)
        self.prior_weight = prior_weight

    def parameters(self) -> list[torch.Tensor]:
        return [self.units]

    def ws(self) -> torch.Tensor:
        return self.mean + self.std * self.units

    def render(self, generator: Generator, flat: torch.Tensor) -> torch.Tensor:
        return generator.synthesis(styles=list(flat.split(self.sizes, dim=1)))

    def prior(self) -> torch.Tensor:
        return self.prior_weight * self.units.square().mean()

    def result(self, generator: Generator, flat: torch.Tensor) -> tuple[torch.Tensor, list]:
        """The styles, and for now the starting code as the W+ code (`_fit_w_plus` replaces it)."""
        return self.start_ws, list(flat.split(self.sizes, dim=1))


STOPPED_FIT_STEPS = 10


def project(generator: Generator, target: Union[Image.Image, torch.Tensor],
            options: Optional[ProjectorOptions] = None, progress: Optional[ProgressCallback] = None,
            cancel: Optional[threading.Event] = None, start_ws: Optional[torch.Tensor] = None) -> ProjectionResult:
    """Optimise a code so that generator.synthesis(code) reproduces `target` (an aligned image).

    The search starts at the mean code, or at `start_ws` [1, num_ws, w_dim] (a warm start: the
    previous frame of a video, say).

    `progress(step, total, preview, loss)` is called after every step (total: `options.total_steps`),
    with a preview image every `options.preview_every` steps and at the end (None otherwise).
    Setting `cancel` stops after the current step; the result then holds the best code so far and
    `stopped == "cancelled"`.
    """
    options = options or ProjectorOptions()
    if options.space != "s":
        return _optimise(generator, target, options, progress, cancel, start_ws)
    result = _optimise(generator, target, options, _counted(progress, 0, options.total_steps), cancel, start_ws)
    return _fit_w_plus(generator, result, options, progress, cancel, start_ws)


def _fit_w_plus(generator: Generator, s_result: ProjectionResult, options: ProjectorOptions,
                progress: Optional[ProgressCallback], cancel: Optional[threading.Event],
                start_ws: Optional[torch.Tensor]) -> ProjectionResult:
    """The W+ code of an S-space result: a short W+ inversion of the S result's own image. Every
    other operation (and the library) takes W+ codes, and the exact solve for the W+ code nearest
    to optimised styles renders noise: a W+ row drives two layers whose styles the S steps moved
    apart, and some affines are ill-conditioned (rows reached |w| ~ 700; benchmarks/results/soat.md).
    The styles themselves stay in `styles`. After a Stop, a few steps still run, so the code kept
    is the face so far rather than the starting one."""
    stopped = s_result.stopped == "cancelled"
    fit_options = replace(options, space="w+", steps=STOPPED_FIT_STEPS if stopped else options.w_fit_steps,
                          time_budget_s=None, plateau_patience=None)
    fitted = _optimise(generator, s_result.image, fit_options,
                       _counted(progress, s_result.steps_run, options.total_steps), None if stopped else cancel,
                       start_ws)
    return replace(s_result, ws=fitted.ws, history=s_result.history + fitted.history,
                   steps_run=s_result.steps_run + fitted.steps_run, elapsed_s=s_result.elapsed_s + fitted.elapsed_s,
                   stopped="cancelled" if stopped or fitted.stopped == "cancelled" else s_result.stopped)


def _counted(progress: Optional[ProgressCallback], offset: int, total: int) -> Optional[ProgressCallback]:
    """`progress` of one phase of a longer run: its steps counted from `offset` out of `total`."""
    if progress is None:
        return None
    return lambda step, _, preview, loss: progress(offset + step, total, preview, loss)


def _optimise(generator: Generator, target: Union[Image.Image, torch.Tensor], options: ProjectorOptions,
              progress: Optional[ProgressCallback], cancel: Optional[threading.Event],
              start_ws: Optional[torch.Tensor]) -> ProjectionResult:
    """One optimisation of `project` in the options' space (the steps of the module docstring)."""
    started = time.perf_counter()
    target_image = target_tensor(target, generator)
    loss_resolution = options.loss_resolution
    if loss_resolution is not None and loss_resolution >= generator.resolution:
        loss_resolution = None  # never upsample a small generator's output for the loss
    loss_fn = Image2StyleGANLoss(target_image, options.loss_weights, loss_resolution, options.bf16,
                                 vgg=load_vgg16(generator.device))
    w_phase_steps = round(options.steps * options.w_phase_fraction)
    if start_ws is not None:
        generator.check_ws(start_ws)
    if options.space == "s":
        code, rates = _StyleCode(generator, options.style_prior_weight, start_ws), [options.style_learning_rate]
    else:
        start = generator.mean_ws(1) if start_ws is None else start_ws.detach().float()
        code = _Code(start.to(generator.device), options.space)
        rates = [options.learning_rate, options.row_learning_rate][:len(code.parameters())]
    optimizer = torch.optim.Adam([{"params": [p]} for p in code.parameters()], betas=(0.9, 0.999), eps=1e-8)
    noise_generator = torch.Generator(device=generator.device).manual_seed(options.seed)
    best_loss, best_ws, best_image = math.inf, code.ws().detach().clone(), None
    plateau_loss, plateau_step = math.inf, 0  # the last loss that improved enough, and when
    history: list[dict] = []
    stopped = "done"
    for step in range(options.steps):
        elapsed = time.perf_counter() - started
        if cancel is not None and cancel.is_set():
            stopped = "cancelled"
            break
        if options.time_budget_s is not None and elapsed >= options.time_budget_s:
            stopped = "time budget"
            break
        fraction = _progress(options, step, elapsed)
        factor = schedule_at(options, fraction)
        for index, (group, rate) in enumerate(zip(optimizer.param_groups, rates)):
            group["lr"] = 0.0 if index == 1 and step < w_phase_steps else rate * factor

        ws = code.ws()
        noise_scale = options.initial_noise * max(0.0, 1.0 - fraction / 0.75) ** 2
        if noise_scale > 0:
            ws = ws + noise_scale * torch.randn(ws.shape, generator=noise_generator, device=ws.device)
        image = code.render(generator, ws)
        loss, terms = loss_fn(image)
        prior = code.prior()
        if prior is not None:
            loss, terms = loss + prior, {**terms, "style_prior": float(prior.detach())}
        gradients = torch.autograd.grad(loss, code.parameters())  # never touches the frozen weights
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ProjectionError(f"the inversion diverged (the loss became {value} at step {step + 1}); "
                                  "try again with a lower learning rate or fewer steps")
        if value < best_loss:
            best_loss, best_ws, best_image = value, ws.detach().clone(), image.detach()
        if value < plateau_loss * (1.0 - options.plateau_tolerance):
            plateau_loss, plateau_step = value, step
        for parameter, gradient in zip(code.parameters(), gradients):
            parameter.grad = gradient
        optimizer.step()

        history.append({"step": step + 1, "loss": value, "terms": terms, "lr_factor": factor,
                        "time_s": time.perf_counter() - started})
        if progress is not None:
            last = step + 1 == options.steps
            show = last or (options.preview_every > 0 and (step + 1) % options.preview_every == 0)
            progress(step + 1, options.steps, tensor_to_pil(image.detach()) if show else None, value)
        if options.plateau_patience is not None and step - plateau_step >= options.plateau_patience:
            stopped = "plateau"
            break
    if best_image is None:  # cancelled before the first step: the starting code
        with torch.no_grad():
            best_image = code.render(generator, best_ws)
    result_ws, styles = code.result(generator, best_ws)
    return ProjectionResult(
        ws=result_ws.cpu(), image=tensor_to_pil(best_image), loss=best_loss, history=history,
        steps_run=len(history), stopped=stopped, elapsed_s=time.perf_counter() - started, space=options.space,
        styles=None if styles is None else [s.detach().cpu() for s in styles],
    )
