"""Command line: `python -m stylegan_core SUBCOMMAND ...`.

Each subcommand is one `add_<name>(subparsers)` function that declares its arguments and sets
`run` to the function doing the work (args -> exit code). To add one, write that pair and append
the `add_` function to SUBCOMMANDS.

Errors follow the one rule of `stylegan_core.errors`: a `UserError` is printed as "error: ..." (exit
code 1); anything else is a bug, printed with its stack trace (exit code 2).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from . import codes
from .errors import UserError


class CommandError(UserError):
    """A problem with the command's input that the user can fix; printed without a stack trace."""


# -- generate --------------------------------------------------------------------------------------
def add_generate(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="render images from seeds",
                                   description="Render one image per seed (z from numpy's RandomState(seed)).")
    seeds = parser.add_mutually_exclusive_group(required=True)
    seeds.add_argument("--seed", type=int, help="one seed")
    seeds.add_argument("--seeds", help="several seeds, e.g. '1,2,5-8'")
    parser.add_argument("--psi", type=float, default=codes.DEFAULT_PSI,
                        help=f"truncation psi in [{codes.PSI_RANGE[0]:g}, {codes.PSI_RANGE[1]:g}] "
                             f"(1 = no truncation; default {codes.DEFAULT_PSI})")
    add_transform_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--out", required=True,
                        help="output PNG; with several seeds '{seed}' in the name is replaced by the seed, "
                             "else '-seed<N>' is added before the extension")
    parser.set_defaults(run=run_generate)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model / --checkpoint / --device, shared by every subcommand that needs a generator."""
    from .loading import zoo

    parser.add_argument("--model", default=None,
                        help=f"zoo model ({', '.join(zoo.model_names())}); default {zoo.DEFAULT_MODEL}, "
                             f"or ${zoo.CHECKPOINT_ENV} when set")
    parser.add_argument("--checkpoint", default=None,
                        help="a checkpoint file instead of a zoo model (.safetensors export, rosinality .pt, NVlabs .pkl)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")


def add_transform_arguments(parser: argparse.ArgumentParser) -> None:
    """--rotate / --translate, the StyleGAN3 image transform (generate, edit)."""
    parser.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                        help="StyleGAN3 only: rotate the image by DEG degrees (NVlabs' gen_images.py convention)")
    parser.add_argument("--translate", default="0,0", metavar="TX,TY",
                        help="StyleGAN3 only: translate the image by TX,TY image widths (default 0,0)")


def apply_transform_args(generator, args: argparse.Namespace) -> None:
    """Set the generator's transform from --rotate / --translate (refused for other architectures)."""
    from .models.stylegan3 import TransformError, apply_user_transform

    translate = parse_pair(args.translate, "--translate")
    try:
        apply_user_transform(generator, args.rotate, translate)
    except TransformError as error:
        raise CommandError(str(error)) from error


def load_model_from_args(args: argparse.Namespace):
    from .loading import zoo

    loaded = zoo.load_model(args.model, device=args.device, checkpoint=args.checkpoint)
    print(f"model {loaded.name}: {loaded.entry.description} [{loaded.source_description}]", file=sys.stderr)
    return loaded


def output_path(pattern: str, seed: int, several: bool) -> Path:
    if "{seed" in pattern:
        return Path(pattern.format(seed=seed))
    path = Path(pattern)
    return path.with_name(f"{path.stem}-seed{seed}{path.suffix}") if several else path


def parse_pair(text: str, option: str) -> tuple[float, float]:
    try:
        first, second = (float(part) for part in text.split(","))
    except ValueError:
        raise CommandError(f"{option} takes two numbers separated by a comma, e.g. 0.1,-0.2; got {text!r}") from None
    return first, second


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from .images import tensor_to_pil

    seeds = codes.parse_seeds(args.seed if args.seeds is None else args.seeds)
    psi = codes.check_psi(args.psi)
    parse_pair(args.translate, "--translate")  # a malformed option is refused before the model loads
    generator = load_model_from_args(args).generator
    apply_transform_args(generator, args)
    for seed in seeds:
        with torch.no_grad():
            image = generator.synthesis(codes.random_codes(generator, [seed], psi))
        path = output_path(args.out, seed, several=len(seeds) > 1)
        write_file(path, lambda target: tensor_to_pil(image).save(target))
        print(path)
    return 0


def write_file(path: Path, write) -> None:
    """Create the folder and write; a path the user cannot write to is their problem to fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    except OSError as error:
        raise CommandError(f"cannot write {path}: {error.strerror or error}") from error


# -- models and fetch ------------------------------------------------------------------------------
def add_models(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the model zoo")
    parser.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    from .loading import zoo

    for name in zoo.model_names():
        entry = zoo.MODELS[name]
        status = "verified" if entry.verified else "unverified"
        here = zoo.availability(name, probe_network=True).note or "on this machine"
        print(f"{name:20} {entry.arch:16} {entry.resolution:5} px  {status:10}  {here:22}  {entry.description}")
    return 0


def add_fetch(subparsers) -> None:
    parser = subparsers.add_parser("fetch", help="download and verify weight files ahead of time",
                                   description="Resolve the weight files of zoo models (default: the default model) "
                                               "or given file ids, and print where each one is.")
    parser.add_argument("names", nargs="*", help="zoo model names or weight file ids")
    parser.set_defaults(run=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from .loading import weights, zoo

    file_ids: list[str] = []
    for name in args.names or [zoo.DEFAULT_MODEL]:
        if name not in zoo.MODELS and name not in weights.KNOWN_FILES:
            raise CommandError(f"{name!r} is neither a zoo model ({', '.join(zoo.model_names())}) "
                               f"nor a known weight file ({', '.join(sorted(weights.KNOWN_FILES))})")
        file_ids += list(zoo.MODELS[name].file_ids) if name in zoo.MODELS else [name]
    for file_id in file_ids:
        resolved = weights.resolve(file_id)
        print(f"{file_id}\t{resolved.path}\t{resolved.source}")
    return 0


# -- invert ----------------------------------------------------------------------------------------
def add_invert(subparsers) -> None:
    from .inversion.projector import ProjectorOptions

    defaults = ProjectorOptions()
    parser = subparsers.add_parser(
        "invert", help="find the latent code of a photo (Image2StyleGAN projection)",
        description="Align the face in PHOTO (FFHQ style, dlib), project it into the generator's latent space and "
                    "write aligned.png, result.png, pasted.png (the result warped back into the photo), "
                    "latent.npz and metrics.json into DIR. With a StyleGAN3 model also photo_frame.png: the "
                    "result rendered where and how the face sits in an upright crop of the photo "
                    "(photo_frame_photo.png; its rotation and shift are in metrics.json, for edit --rotate "
                    "--translate; unverified on real StyleGAN3 weights).")
    parser.add_argument("photo", help="the photo (any format PIL reads)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"optimisation steps (default {defaults.steps})")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="stop after this many seconds (the learning-rate schedule follows the clock)")
    parser.add_argument("--space", choices=codes.SPACES, default=defaults.space,
                        help=f"latent space (default {defaults.space}; s: per-layer styles with a Gaussian prior, "
                             "saved as a W+ fit of their image in latent.npz and exactly in styles.pt)")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate,
                        help=f"Adam learning rate of the shared w (default {defaults.learning_rate})")
    parser.add_argument("--row-lr", type=float, default=defaults.row_learning_rate,
                        help=f"Adam learning rate of the per-row W+ offsets (default {defaults.row_learning_rate})")
    parser.add_argument("--loss-resolution", type=int, default=defaults.loss_resolution,
                        help=f"compute the loss at this size (default {defaults.loss_resolution}; 0 = full resolution)")
    parser.add_argument("--paper", action="store_true",
                        help="the published Image2StyleGAN recipe (lr 0.01, constant, full resolution) "
                             "instead of the fast defaults; --steps still applies")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed (only used with --noise)")
    parser.add_argument("--noise", type=float, default=defaults.initial_noise,
                        help="initial noise on the code, decaying to 0 (default 0)")
    parser.add_argument("--face-index", type=int, default=0, help="which face, 0 = the largest (default 0)")
    parser.add_argument("--no-align", action="store_true", help="use the image as it is (centre crop), no face detection")
    add_model_arguments(parser)
    parser.set_defaults(run=run_invert)


def invert_options(args: argparse.Namespace):
    from .inversion.projector import ProjectorOptions

    if args.paper:
        return ProjectorOptions.image2stylegan(steps=args.steps)
    return ProjectorOptions(
        space=args.space, steps=args.steps, learning_rate=args.lr, row_learning_rate=args.row_lr,
        loss_resolution=args.loss_resolution or None,
        seed=args.seed, initial_noise=args.noise, time_budget_s=args.time_budget, preview_every=0,
    )


def run_invert(args: argparse.Namespace) -> int:
    import json

    from .inversion import align, metrics
    from .images import load_image
    from .inversion.paste_back import paste_back
    from .latents import save_latent
    from .inversion.projector import project

    options = invert_options(args)
    photo = load_image(args.photo)
    loaded = load_model_from_args(args)
    generator = loaded.generator
    if args.no_align:
        aligned = align.center_crop(photo, generator.resolution)
    else:
        try:
            aligned = align.align_face(photo, generator.resolution, face_index=args.face_index)
        except align.NoFaceError as error:
            raise CommandError(f"{error} (command line: add --no-align)") from error
    for note in aligned.warnings:
        print(f"warning: {note}", file=sys.stderr)

    def report(step: int, total: int, preview, loss: float) -> None:
        if step == 1 or step % 10 == 0 or step == total:
            print(f"step {step}/{total}  loss {loss:.4g}", file=sys.stderr)

    result = project(generator, aligned.image, options, progress=report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    aligned.image.save(out / "aligned.png")
    result.image.save(out / "result.png")
    pasted = paste_back(photo, aligned, result.image)
    pasted.save(out / "pasted.png")
    save_latent(out / "latent.npz", result.ws, loaded.name, "w+" if options.space == "s" else options.space,
                name=Path(args.photo).stem)
    if result.styles is not None:
        import torch

        torch.save(result.styles, out / "styles.pt")
    report_data = {
        **metrics.photo_metrics(photo, aligned, result.image, pasted),
        "model": loaded.name, "space": options.space, "steps_run": result.steps_run, "stopped": result.stopped,
        "loss": result.loss, "elapsed_s": round(result.elapsed_s, 2), "aligned": not args.no_align,
        "face_index": aligned.face_index, "faces": aligned.num_faces, "warnings": aligned.warnings,
    }
    if generator.arch == "stylegan3":
        report_data["photo_frame"] = write_photo_frame(out, photo, aligned, generator, result)
    (out / "metrics.json").write_text(json.dumps(report_data, indent=2))
    summary = ("id_distance", "id_distance_pasted", "psnr", "ssim", "steps_run", "elapsed_s")
    print(json.dumps({k: report_data[k] for k in summary}))
    return 0


def write_photo_frame(out: Path, photo, aligned, generator, result) -> dict:
    """StyleGAN3: the inversion `result` rendered in the photo's frame (photo_frame.png) and that crop
    of the photo (photo_frame_photo.png); returns the frame's transform and box for metrics.json."""
    import torch

    from .images import tensor_to_pil
    from .inversion.photo_frame import photo_frame, photo_frame_crop
    from .models.stylegan3 import TransformEditor

    frame = photo_frame(aligned)
    editor = TransformEditor(*frame.transform)
    with torch.no_grad():  # an S-space result renders from its exact styles (latent.npz has a W+ fit)
        image = generator.synthesis(result.ws.to(generator.device), editor) if result.styles is None else \
            generator.synthesis(editor=editor, styles=[s.to(generator.device) for s in result.styles])
    tensor_to_pil(image).save(out / "photo_frame.png")
    photo_frame_crop(photo, frame, generator.resolution).save(out / "photo_frame_photo.png")
    print(f"StyleGAN3: photo_frame.png shows the result in the photo's frame (unverified on real StyleGAN3 "
          f"weights); edit it there with: edit --latent {out / 'latent.npz'} --rotate {frame.rotate:.4f} "
          f"--translate {frame.tx:.5f},{frame.ty:.5f}", file=sys.stderr)
    return {"rotate": frame.rotate, "translate": [frame.tx, frame.ty], "box": list(frame.box)}


# -- inspect ---------------------------------------------------------------------------------------
def add_inspect(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="describe a checkpoint file without running code from it",
        description="Print the architecture of a checkpoint (kind, resolution, num_ws, w_dim, parameter count, "
                    "source format). Exits non-zero, with the reason, for an unsafe or unreadable file.")
    parser.add_argument("path", help="an NVlabs .pkl, a rosinality .pt or a stylegan_core .safetensors file")
    parser.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """Print the description, or the reason the file was refused (exit 1)."""
    from .loading.files import describe_checkpoint
    from .loading.safe_pickle import CheckpointError, UnsafeCheckpointError

    try:
        description = describe_checkpoint(args.path)
    except UnsafeCheckpointError as error:
        print(f"refused (unsafe): {error}", file=sys.stderr)
        return 1
    except CheckpointError as error:
        print(f"unreadable: {error}", file=sys.stderr)
        return 1
    for key in ("path", "kind", "resolution", "num_ws", "w_dim", "z_dim", "parameters", "source_format"):
        value = description[key]
        print(f"{key:14s}{value:,}" if key == "parameters" else f"{key:14s}{value}")
    print(f"{'config':14s}{description['config']}")
    for note in description["notes"]:
        print(f"{'note':14s}{note}")
    return 0


# -- entry point -----------------------------------------------------------------------------------
def _feature_subcommands() -> list:
    """The subcommands that live in their own modules (they import helpers from here: load them late)."""
    from .cli_edit import add_directions, add_edit
    from .cli_sketch import add_sketch
    from .cli_soat import SOAT_SUBCOMMANDS
    from .cli_video import add_video

    return [add_directions, add_edit, add_sketch, add_video, *SOAT_SUBCOMMANDS]


SUBCOMMANDS = [add_generate, add_models, add_fetch, add_invert, add_inspect, *_feature_subcommands()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stylegan_core",
                                     description="StyleGAN studio: generate, inspect, invert and edit.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .runtime import heap_reuse

    args = build_parser().parse_args(argv)
    heap_reuse(True)  # faster repeated 1024 px forwards (see runtime.heap_reuse)
    try:
        return args.run(args)
    except UserError as error:  # bad input, missing weights, an unreadable file: the message says what to do
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - a bug: the stack trace is what a report needs
        traceback.print_exc()
        print("error: an unexpected error (a bug; please report it with the trace above)", file=sys.stderr)
        return 2
