"""Inversion quality against wall time: the published Image2StyleGAN recipe vs. our default.

Targets: aligned public-domain portraits (scikit-image's astronaut, Grace Hopper from
benchmarks/data) and faces generated from known codes (seeds, psi 0.7). For each target and recipe
the projector runs under a time budget; the image of the current step is kept at fixed times and
scored afterwards (PSNR and SSIM at 256 px, dlib identity distance: outside the timed run).

Recipes:
  (a) paper:   ProjectorOptions.image2stylegan(): W+, Adam lr 0.01 constant, loss at 1024 px, fp32;
  (b) default: ProjectorOptions() as the app and the CLI use it.
Goals (ffhq-mobile, 2-core CPU): (b) matches (a)'s 10-minute quality within 60 s, and reaches an
identity distance < 0.6 within 30 s.

    .venv/bin/python benchmarks/bench_invert.py                  # full run (about 45 minutes)
    .venv/bin/python benchmarks/bench_invert.py --paper-seconds 120 --targets astronaut,seed3

Writes benchmarks/results/invert.md (numbers, machine, torch version) and prints the same.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from PIL import Image

from common import ROOT, machine
from stylegan_core import align, metrics, perceptual, zoo
from stylegan_core.images import load_image, tensor_to_pil
from stylegan_core.projector import ProjectorOptions, project
from stylegan_core.runtime import heap_reuse

MODEL = "ffhq-mobile"
CHECKPOINTS_S = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600)
FLOOR_S = 0.53  # docs/PERFORMANCE.md: (29.4 + 63) GFLOP at 175 GFLOP/s, one step at 1024 px + VGG at 256 px
SEEDS = (3, 8)


@dataclass
class Snapshot:
    seconds: float
    step: int
    image: Image.Image
    scores: dict = field(default_factory=dict)


@dataclass
class Run:
    recipe: str
    target: str
    snapshots: list[Snapshot]
    steps: int
    elapsed_s: float
    stopped: str
    code_error: float | None = None  # generated targets: RMS distance of the used W+ rows to the true code


def targets(names: list[str], generator) -> dict[str, tuple[Image.Image, torch.Tensor | None]]:
    """name -> (aligned target image at the generator's resolution, true code or None)."""
    out = {}
    for name in names:
        if name == "astronaut":
            import skimage.data

            photo = Image.fromarray(skimage.data.astronaut())
            out[name] = (align.align_face(photo, generator.resolution).image, None)
        elif name == "hopper":
            photo = load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg")
            out[name] = (align.align_face(photo, generator.resolution).image, None)
        elif name.startswith("seed"):
            with torch.no_grad():
                ws = generator.mapping(generator.seed_to_z(int(name[4:])), psi=0.7)
                out[name] = (tensor_to_pil(generator.synthesis(ws)), ws)
        else:
            raise SystemExit(f"unknown target {name!r}: astronaut, hopper or seed<N>")
    return out


def recipes(paper_seconds: float, fast_seconds: float | None) -> dict[str, ProjectorOptions]:
    default = ProjectorOptions(preview_every=1)
    if fast_seconds is not None:
        default = replace(default, steps=100_000, time_budget_s=fast_seconds)
    return {  # (b) first: its result is known within minutes
        "(b) default": default,
        "(a) paper": replace(ProjectorOptions.image2stylegan(steps=100_000), preview_every=1,
                             time_budget_s=paper_seconds),
    }


def run_recipe(generator, name: str, target: Image.Image, options: ProjectorOptions,
               true_ws: torch.Tensor | None) -> Run:
    """Project, keeping the current image at each checkpoint time (the preview of every step)."""
    snapshots: list[Snapshot] = []
    started = time.perf_counter()
    pending = list(CHECKPOINTS_S)

    def keep(step, total, preview, loss):
        now = time.perf_counter() - started
        while pending and now >= pending[0]:
            snapshots.append(Snapshot(pending.pop(0), step, preview))

    result = project(generator, target, options, progress=keep)
    snapshots.append(Snapshot(round(result.elapsed_s, 1), result.steps_run, result.image))
    code_error = None
    if true_ws is not None:
        used = [info.row for info in generator.describe_rows() if info.used]
        code_error = float((result.ws[:, used] - true_ws[:, used]).square().mean().sqrt())
    return Run(name, "", snapshots, result.steps_run, result.elapsed_s, result.stopped, code_error)


def score(run: Run, target: Image.Image, descriptor) -> None:
    for snapshot in run.snapshots:
        snapshot.scores = metrics.compute_metrics(target, snapshot.image, reference_descriptor=descriptor)


def flops_per_step(generator, options: ProjectorOptions) -> float:
    """FLOPs of one projector step (generator forward + backward to the code, loss forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    target = torch.zeros(1, 3, generator.resolution, generator.resolution)
    loss_fn = perceptual.Image2StyleGANLoss(target, options.loss_weights, options.loss_resolution, options.bf16)
    ws = generator.mean_ws(1).requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        loss_fn(generator.synthesis(ws))[0].backward()
    return counter.get_total_flops()


def format_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def scores_text(scores: dict) -> str:
    identity = "-" if scores["id_distance"] is None else f"{scores['id_distance']:.3f}"
    return f"{scores['psnr']:.2f} | {scores['ssim']:.3f} | {identity}"


def report(runs: list[Run], flops: dict[str, float], args, machine_line: str) -> str:
    lines = [
        "# Inversion benchmark (benchmarks/bench_invert.py)", "",
        f"Machine: {machine_line}. Model: {MODEL} (1024 px), VGG16 loss. "
        f"Command: `{' '.join(['python', 'benchmarks/bench_invert.py'] + sys.argv[1:])}`", "",
        "Recipes: (a) paper = W+, Adam lr 0.01 constant, loss at 1024 px, fp32 (Image2StyleGAN); "
        f"(b) default = `ProjectorOptions()`: {describe_default()}. Both run with `heap_reuse(True)`, "
        "as the app and the CLI do.", "",
        "Scores of the current image at each time (PSNR dB and SSIM at 256 px, dlib identity distance; "
        "< 0.6 = same person). The last row of each run is the returned (best-loss) result.", "",
    ]
    for target in dict.fromkeys(run.target for run in runs):
        lines += [f"## {target}", "", "| recipe | time | step | PSNR | SSIM | ID dist |", "|---|---|---|---|---|---|"]
        for run in (r for r in runs if r.target == target):
            for index, snap in enumerate(run.snapshots):
                final = index == len(run.snapshots) - 1
                label = f"{run.recipe} ({run.stopped})" if final else run.recipe
                lines.append(f"| {label} | {format_time(snap.seconds)} | {snap.step} | {scores_text(snap.scores)} |")
        lines.append("")
        lines += [f"{run.recipe}: RMS distance of the used W+ rows to the true code {run.code_error:.3f}"
                  for run in runs if run.target == target and run.code_error is not None]
        lines.append("")
    lines += summary(runs, flops, args)
    return "\n".join(lines) + "\n"


def describe_default() -> str:
    o = ProjectorOptions()
    return (f"{o.space.upper()} as shared w (Adam lr {o.learning_rate}) + per-row offsets (lr {o.row_learning_rate}), "
            f"{o.steps} steps, {o.warmup_fraction:.0%} warm-up and a cosine ramp-down over the last "
            f"{o.rampdown_fraction:.0%}, loss at {o.loss_resolution} px, VGG in bf16={o.bf16}, "
            f"weights {o.loss_weights.perceptual} / mse {o.loss_weights.mse}")


def at_time(run: Run, seconds: float) -> Snapshot | None:
    """The last snapshot taken at or before `seconds` (the final result counts at its own time)."""
    eligible = [s for s in run.snapshots if s.seconds <= seconds + 1e-9]
    return eligible[-1] if eligible else None


def summary(runs: list[Run], flops: dict[str, float], args) -> list[str]:
    scored = "PSNR | SSIM | ID"
    lines = ["## Summary", "",
             f"| target | (a) at {format_time(args.paper_seconds)}: {scored} | (b) final: {scored} | (b) time | "
             f"(b) at 30 s: {scored} | (b) ID < 0.6 first at |", "|---" * 12 + "|"]
    for target in dict.fromkeys(run.target for run in runs):
        paper = next((r for r in runs if r.target == target and r.recipe == "(a) paper"), None)
        fast = next((r for r in runs if r.target == target and r.recipe == "(b) default"), None)
        if paper is None or fast is None:
            continue
        first_id = next((s for s in fast.snapshots if s.scores["id_distance"] is not None
                         and s.scores["id_distance"] < metrics.SAME_PERSON_THRESHOLD), None)
        preview = at_time(fast, 30)
        lines.append(
            f"| {target} | {scores_text(paper.snapshots[-1].scores)} | {scores_text(fast.snapshots[-1].scores)} | "
            f"{format_time(fast.elapsed_s)} | {scores_text(preview.scores) if preview else '- | - | -'} | "
            f"{format_time(first_id.seconds) if first_id else 'never'} |")
    lines.append("")
    lines.append("Throughput (FLOPs of one step counted with torch.utils.flop_counter; it counts the backward "
                 "of custom autograd functions as it sees them, so treat GFLOP/s as indicative; "
                 f"floor = {FLOOR_S} s/step for 1024 px + VGG at 256 px at 175 GFLOP/s, docs/PERFORMANCE.md):")
    lines.append("")
    lines.append("| recipe | GFLOP/step | mean s/step | achieved GFLOP/s | s/step / floor |")
    lines.append("|---|---|---|---|---|")
    for recipe in dict.fromkeys(run.recipe for run in runs):
        per_step = statistics.mean(r.elapsed_s / max(r.steps, 1) for r in runs if r.recipe == recipe)
        gflop = flops[recipe] / 1e9
        lines.append(f"| {recipe} | {gflop:.1f} | {per_step:.2f} | {gflop / per_step:.0f} | {per_step / FLOOR_S:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="astronaut,hopper," + ",".join(f"seed{s}" for s in SEEDS))
    parser.add_argument("--paper-seconds", type=float, default=600.0, help="time budget of recipe (a)")
    parser.add_argument("--fast-seconds", type=float, default=None,
                        help="give (b) a time budget instead of its fixed step count")
    parser.add_argument("--recipes", default="(b) default,(a) paper")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "invert.md"))
    args = parser.parse_args()

    machine_line = machine()
    print(machine_line, flush=True)
    heap_reuse(True)  # as the app and the CLI run; both recipes get it
    generator = zoo.load_model(MODEL).generator
    perceptual.load_vgg16()
    chosen = {name: options for name, options in recipes(args.paper_seconds, args.fast_seconds).items()
              if name in args.recipes.split(",")}
    flops = {name: flops_per_step(generator, options) for name, options in chosen.items()}
    runs = []
    for target_name, (target, true_ws) in targets(args.targets.split(","), generator).items():
        descriptor = metrics.face_descriptor(target)
        for recipe_name, options in chosen.items():
            run = run_recipe(generator, recipe_name, target, options, true_ws)
            run.target = target_name
            score(run, target, descriptor)
            runs.append(run)
            final = run.snapshots[-1]
            print(f"{target_name:10} {recipe_name:12} {run.steps:5} steps {run.elapsed_s:7.1f} s  "
                  f"PSNR/SSIM/ID {scores_text(final.scores)}", flush=True)
    text = report(runs, flops, args, machine_line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
