"""`python -m stylegan_core sketch SKETCH.png --out DIR`: photo-real faces drawn from a line drawing.

Writes candidate-1.png, candidate-1.npz (its W+ code) and candidate-1-sketch.png (its line drawing
as the loss sees it), candidate-2..., best first. With --reference (a latent .npz of this model, or
a photo that is aligned and inverted first) the candidates keep the reference's colours and texture.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def add_sketch(subparsers) -> None:
    from .cli import add_model_arguments
    from .editing.sketch import MAX_CANDIDATES, MAX_STEPS, SketchOptions

    defaults = SketchOptions()
    parser = subparsers.add_parser(
        "sketch", help="turn a line drawing of a face into photo-real faces",
        description="Fit faces to SKETCH (dark lines on white, any size) and write candidate-N.png, candidate-N.npz "
                    "and candidate-N-sketch.png into DIR, best first.")
    parser.add_argument("sketch", help="the drawing (any format PIL reads)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--candidates", type=int, default=3, help=f"how many faces, 1-{MAX_CANDIDATES} (default 3)")
    parser.add_argument("--reference", metavar="IMAGE_OR_LATENT", default=None,
                        help="keep the colours and texture of this face: a latent .npz of the model, or a photo "
                             "(aligned and inverted first, about a minute)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"optimisation steps per candidate, 1-{MAX_STEPS} (default {defaults.steps})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="first seed of the random starts (default 0)")
    add_model_arguments(parser)
    parser.set_defaults(run=run_sketch)


def reference_code(path: str, loaded) -> torch.Tensor:
    """A latent file's code (checked against the model), or the inversion of a photo's aligned face."""
    from .inversion import align
    from .cli import CommandError
    from .images import load_image
    from .latents import load_latent
    from .inversion.projector import project

    generator = loaded.generator
    if Path(path).suffix.lower() == ".npz":
        latent = load_latent(path)
        latent.check_fits(loaded.name, generator.num_ws, generator.w_dim)
        return latent.ws[:1]
    try:
        aligned = align.align_face(load_image(path), generator.resolution)
    except align.NoFaceError as error:
        raise CommandError(f"the reference: {error}") from error
    print("inverting the reference photo...", file=sys.stderr)
    return project(generator, aligned.image).ws


def run_sketch(args: argparse.Namespace) -> int:
    from .cli import load_model_from_args
    from .latents import save_latent
    from .editing.sketch import SketchOptions, load_sketch, sketch_to_face

    options = SketchOptions(steps=args.steps, seed=args.seed, preview_every=0)
    sketch = load_sketch(args.sketch)
    for note in sketch.warnings:
        print(f"warning: {note}", file=sys.stderr)
    loaded = load_model_from_args(args)
    reference = reference_code(args.reference, loaded) if args.reference else None

    def report(step: int, total: int, preview, loss: float) -> None:
        if step % 10 == 0 or step == total:
            print(f"step {step}/{total}  sketch loss {loss:.4f}", file=sys.stderr)

    candidates = sketch_to_face(loaded.generator, sketch, args.candidates, reference, options, progress=report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for number, candidate in enumerate(candidates, start=1):
        candidate.image.save(out / f"candidate-{number}.png")
        candidate.sketch_image.save(out / f"candidate-{number}-sketch.png")
        save_latent(out / f"candidate-{number}.npz", candidate.ws, loaded.name, "w+",
                    name=f"{Path(args.sketch).stem} {number}")
        print(json.dumps({"candidate": number, "start": candidate.start, "sketch_loss": round(candidate.loss, 4),
                          "steps": candidate.steps_run, "seconds": round(candidate.elapsed_s, 1)}))
    return 0
