"""Inversion quality against wall time: the published Image2StyleGAN recipe vs. our default.

Targets: public-domain portraits (scikit-image's astronaut, Grace Hopper from benchmarks/data),
the same photos cropped so that the face sits near an edge (the FFHQ square leaves the photo:
astronaut-top, hopper-left, hopper-bottom, astronaut-corner), and faces generated from known codes
(seeds, psi 0.7). For each target and recipe the projector runs under a time budget; the image of
the current step is kept every few steps and at fixed times and scored afterwards, outside the timed
run: dlib identity distance to the face in the ORIGINAL photo (the number to judge by; the final
result also pasted back into the photo), and, secondary, PSNR / SSIM at 256 px against the aligned crop.

Recipes:
  (a) paper:   ProjectorOptions.image2stylegan(): W+, Adam lr 0.01 constant, loss at 1024 px, fp32;
  (b) default: ProjectorOptions() as the app and the CLI use it;
  (c) 40 steps: the default with half the steps (its schedule ends in about 20 s on an idle machine).
Goals (ffhq-mobile, 2-core CPU): (b) matches (a)'s 10-minute quality within 60 s, and reaches an
identity distance to the photo < 0.6 within 10 s and < 0.4 within 20 s.

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
from stylegan_core.inversion import align, metrics, perceptual
from stylegan_core.loading import zoo
from stylegan_core.images import load_image, tensor_to_pil
from stylegan_core.inversion.paste_back import paste_back
from stylegan_core.inversion.projector import ProjectorOptions, project
from stylegan_core.runtime import heap_reuse

MODEL = "ffhq-mobile"
CHECKPOINTS_S = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600)
FLOOR_S = 0.53  # docs/PERFORMANCE.md: (29.4 + 63) GFLOP at 175 GFLOP/s, one step at 1024 px + VGG at 256 px
SEEDS = (3, 8)
SNAPSHOT_EVERY = 4  # steps: resolution of "time to identity < x"
ID_THRESHOLDS = (0.6, 0.4)
EDGE_CROPS = {  # crop boxes (left, top, right, bottom) that put the face near an edge of the photo
    "astronaut-top": ("astronaut", (0, 50, 512, 512)),
    "astronaut-corner": ("astronaut", (160, 50, 512, 512)),
    "hopper-left": ("hopper", (120, 0, 512, 600)),
    "hopper-bottom": ("hopper", (0, 0, 512, 355)),
}


@dataclass
class Target:
    photo: Image.Image  # what the user uploads
    face: align.AlignedFace  # its aligned crop at the generator's resolution
    true_ws: torch.Tensor | None = None  # generated targets: the code that made them


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


def portrait(name: str) -> Image.Image:
    if name == "astronaut":
        import skimage.data

        return Image.fromarray(skimage.data.astronaut())
    return load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg")


def targets(names: list[str], generator) -> dict[str, Target]:
    out = {}
    for name in names:
        if name in ("astronaut", "hopper"):
            photo = portrait(name)
        elif name in EDGE_CROPS:
            photo = portrait(EDGE_CROPS[name][0]).crop(EDGE_CROPS[name][1])
        elif name.startswith("seed"):
            with torch.no_grad():
                ws = generator.mapping(generator.seed_to_z(int(name[4:])), psi=0.7)
                photo = tensor_to_pil(generator.synthesis(ws))
            out[name] = Target(photo, align.center_crop(photo, generator.resolution), ws)
            continue
        else:
            raise SystemExit(f"unknown target {name!r}: astronaut, hopper, {', '.join(EDGE_CROPS)} or seed<N>")
        out[name] = Target(photo, align.align_face(photo, generator.resolution))
    return out


def recipes(paper_seconds: float, fast_seconds: float | None) -> dict[str, ProjectorOptions]:
    default = ProjectorOptions(preview_every=1)
    if fast_seconds is not None:
        default = replace(default, steps=100_000, time_budget_s=fast_seconds)
    return {  # (b) first: its result is known within minutes
        "(b) default": default,
        "(c) 40 steps": replace(default, steps=40) if fast_seconds is None else default,
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
        if pending and now >= pending[0]:
            while pending and now >= pending[0]:
                pending.pop(0)
            snapshots.append(Snapshot(round(now, 1), step, preview))
        elif step % SNAPSHOT_EVERY == 0:
            snapshots.append(Snapshot(round(now, 1), step, preview))

    result = project(generator, target, options, progress=keep)
    snapshots.append(Snapshot(round(result.elapsed_s, 1), result.steps_run, result.image))
    code_error = None
    if true_ws is not None:
        used = [info.row for info in generator.describe_rows() if info.used]
        code_error = float((result.ws[:, used] - true_ws[:, used]).square().mean().sqrt())
    return Run(name, "", snapshots, result.steps_run, result.elapsed_s, result.stopped, code_error)


def score(run: Run, target: Target, descriptor) -> None:
    """Every snapshot against the photo's face (and the crop); the final result also pasted back."""
    for snapshot in run.snapshots:
        snapshot.scores = metrics.photo_metrics(target.photo, target.face, snapshot.image, photo_descriptor=descriptor)
    final = run.snapshots[-1]
    final.scores = metrics.photo_metrics(target.photo, target.face, final.image,
                                         paste_back(target.photo, target.face, final.image), descriptor)


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


def number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scores_text(scores: dict) -> str:
    """ID vs photo | PSNR | SSIM | ID vs crop"""
    return (f"{number(scores['id_distance'])} | {scores['psnr']:.2f} | {scores['ssim']:.3f} | "
            f"{number(scores['id_distance_to_crop'])}")


def report(runs: list[Run], flops: dict[str, float], args, machine_line: str) -> str:
    lines = [
        "# Inversion benchmark (benchmarks/bench_invert.py)", "",
        f"Machine: {machine_line}. Model: {MODEL} (1024 px), VGG16 loss. "
        f"Command: `{' '.join(['python', 'benchmarks/bench_invert.py'] + sys.argv[1:])}`", "",
        "Recipes: (a) paper = W+, Adam lr 0.01 constant, loss at 1024 px, fp32 (Image2StyleGAN); "
        f"(b) default = `ProjectorOptions()`: {describe_default()}. Both run with `heap_reuse(True)`, "
        "as the app and the CLI do.", "",
        "Scores of the current image at each time: dlib identity distance to the face in the original photo "
        "(< 0.6 = same person; the number to judge by), then, against the aligned crop, PSNR dB and SSIM at "
        "256 px and the identity distance. The last row of each run is the returned (best-loss) result. "
        "Edge targets (astronaut-top, astronaut-corner, hopper-left, hopper-bottom) are the portraits cropped so "
        "the FFHQ square leaves the photo.", "",
    ]
    for target in dict.fromkeys(run.target for run in runs):
        lines += [f"## {target}", "", "| recipe | time | step | ID vs photo | PSNR | SSIM | ID vs crop |",
                  "|---|---|---|---|---|---|---|"]
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
            f"{o.rampdown_fraction:.0%}, loss at {o.loss_resolution} px, VGG in bf16={o.bf16 if o.bf16 is not None else auto_bf16()}, "
            f"weights {o.loss_weights.perceptual} / mse {o.loss_weights.mse}")


def at_time(run: Run, seconds: float) -> Snapshot | None:
    """The last snapshot taken at or before `seconds` (the final result counts at its own time)."""
    eligible = [s for s in run.snapshots if s.seconds <= seconds + 1e-9]
    return eligible[-1] if eligible else None


def first_below(run: Run, threshold: float) -> str:
    """When the identity distance to the photo first fell below `threshold` (by the snapshots)."""
    hit = next((s for s in run.snapshots if s.scores["id_distance"] is not None
                and s.scores["id_distance"] < threshold), None)
    return f"{format_time(hit.seconds)} (step {hit.step})" if hit else "never"


def summary(runs: list[Run], flops: dict[str, float], args) -> list[str]:
    thresholds = " | ".join(f"ID < {t} first at" for t in ID_THRESHOLDS)
    lines = ["## Summary", "", "Identity distances against the face in the original photo.", "",
             f"| target | recipe | final ID vs photo | final ID pasted | final PSNR | time | {thresholds} |",
             "|---" * (5 + len(ID_THRESHOLDS)) + "|"]
    for run in runs:
        final = run.snapshots[-1].scores
        reached = " | ".join(first_below(run, t) for t in ID_THRESHOLDS)
        lines.append(f"| {run.target} | {run.recipe} | {number(final['id_distance'])} | "
                     f"{number(final['id_distance_pasted'])} | {final['psnr']:.2f} | {format_time(run.elapsed_s)} | "
                     f"{reached} |")
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


def auto_bf16() -> str:
    """What ProjectorOptions(bf16=None) chose on this machine."""
    return f"auto ({perceptual.bf16_pays_off(perceptual.load_vgg16(), torch.device('cpu'))} here)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(["astronaut", "hopper", *EDGE_CROPS] + [f"seed{s}" for s in SEEDS]))
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
    for target_name, target in targets(args.targets.split(","), generator).items():
        box = target.face.face_box
        descriptor = metrics.face_descriptor(target.photo) if box is None else metrics.face_descriptor_at(target.photo, box)
        for recipe_name, options in chosen.items():
            run = run_recipe(generator, recipe_name, target.face.image, options, target.true_ws)
            run.target = target_name
            score(run, target, descriptor)
            runs.append(run)
            final = run.snapshots[-1]
            print(f"{target_name:10} {recipe_name:12} {run.steps:5} steps {run.elapsed_s:7.1f} s  "
                  f"ID photo / PSNR / SSIM / ID crop {scores_text(final.scores)}", flush=True)
    text = report(runs, flops, args, machine_line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
