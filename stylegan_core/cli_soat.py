"""Command-line subcommands of the "StyleGAN of All Trades" features: `extend` (canvas extension
and layout variations), `transfer-region` and `translate`. Registered in `cli.SUBCOMMANDS`.

Codes are given as a seed (a whole number, rendered with --psi) or a .npz latent file of the model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import CommandError, add_model_arguments, load_model_from_args


def add_code_argument(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(name, help=f"{help_text}: a seed, or a .npz latent of this model")


def load_code(loaded, value: str, psi: float):
    """A seed (with truncation psi) or a latent file -> the code [1, num_ws, w_dim]."""
    import torch

    from .latents import load_latent

    generator = loaded.generator
    if value.isdigit():
        with torch.no_grad():
            return generator.mapping(generator.seed_to_z(int(value)).to(generator.device), psi=psi)
    if not Path(value).is_file():
        raise CommandError(f"{value!r} is neither a seed nor a latent file")
    latent = load_latent(value)
    latent.check_fits(loaded.name, generator.num_ws, generator.w_dim)
    return latent.ws[:1].to(generator.device)


def save_image(image, path: str) -> None:
    from .images import tensor_to_pil

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(image).save(path)
    print(path)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--psi", type=float, default=0.7, help="truncation psi for seeds (default 0.7)")
    parser.add_argument("--out", required=True, help="output PNG")
    add_model_arguments(parser)


# -- extend ------------------------------------------------------------------------------------------
def add_extend(subparsers) -> None:
    from .editing.spatial import DEFAULT_RESOLUTION, PAD_MODES

    parser = subparsers.add_parser(
        "extend", help="extend the canvas ('uncrop') or make layout variations (SOAT spatial operations)",
        description="Pad the features of an early resolution (the later layers render the new parts), or with "
                    "--variations N re-render randomly stretched or patch-duplicated features N times.")
    add_code_argument(parser, "code", "the image")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION,
                        help=f"feature resolution the edit acts on, in px (default {DEFAULT_RESOLUTION})")
    parser.add_argument("--mode", choices=PAD_MODES, default="replicate", help="padding mode (default replicate)")
    for side in ("left", "right", "top", "bottom"):
        parser.add_argument(f"--{side}", type=float, default=0.0, help=f"added {side}, as a fraction of the image side")
    parser.add_argument("--variations", type=int, default=0,
                        help="instead of padding: this many layout variations, written as OUT with -<k> added")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random layout variations")
    add_common(parser)
    parser.set_defaults(run=run_extend)


def run_extend(args: argparse.Namespace) -> int:
    from .editing import spatial

    loaded = load_model_from_args(args)
    ws = load_code(loaded, args.code, args.psi)
    if args.variations:
        images = spatial.layout_variations(loaded.generator, ws, args.resolution, args.variations, args.seed)
        out = Path(args.out)
        for k, image in enumerate(images):
            save_image(image, str(out.with_name(f"{out.stem}-{k}{out.suffix}")))
        return 0
    save_image(spatial.extend_canvas(loaded.generator, ws, args.resolution, args.mode, args.left, args.right,
                                     args.top, args.bottom), args.out)
    return 0


# -- transfer-region -----------------------------------------------------------------------------------
def add_transfer_region(subparsers) -> None:
    from .editing.region_transfer import DEFAULT_MIN_RESOLUTION, REGIONS

    parser = subparsers.add_parser(
        "transfer-region", help="give the target face a region of the reference face (SOAT attribute transfer)",
        description="Align the reference's pose to the target, then blend the reference's features into the "
                    "target inside a feathered mask of the region (from the target's dlib landmarks).")
    add_code_argument(parser, "target", "the target face")
    add_code_argument(parser, "reference", "the reference face")
    parser.add_argument("--region", choices=REGIONS, required=True, help="which region to take from the reference")
    parser.add_argument("--min-resolution", type=int, default=DEFAULT_MIN_RESOLUTION,
                        help=f"blend the layers of this many px and above (default {DEFAULT_MIN_RESOLUTION})")
    parser.add_argument("--mask-out", default=None, help="also write the region mask as a PNG here")
    add_common(parser)
    parser.set_defaults(run=run_transfer_region)


def run_transfer_region(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from .editing.region_transfer import transfer_region

    loaded = load_model_from_args(args)
    target, reference = (load_code(loaded, value, args.psi) for value in (args.target, args.reference))
    result = transfer_region(loaded.generator, target, reference, args.region, args.min_resolution)
    save_image(result.image, args.out)
    if args.mask_out:
        Image.fromarray(np.round(result.mask * 255).astype(np.uint8)).save(args.mask_out)
        print(args.mask_out)
    return 0


# -- translate ---------------------------------------------------------------------------------------
def add_translate(subparsers) -> None:
    parser = subparsers.add_parser(
        "translate", help="render a code through a model and its fine-tune, blended layer by layer",
        description="Generator A is --model/--checkpoint, generator B (fine-tuned from A, same architecture) "
                    "is --to-checkpoint; alpha 0 gives A's image, 1 B's, values between a continuous translation.")
    add_code_argument(parser, "code", "the image")
    parser.add_argument("--to-checkpoint", required=True, help="checkpoint of generator B (the fine-tune)")
    parser.add_argument("--alpha", type=float, default=1.0, help="0 = A, 1 = B (default 1)")
    add_common(parser)
    parser.set_defaults(run=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    from .loading import zoo
    from .editing.translation import translate

    loaded = load_model_from_args(args)
    target = zoo.load_model(device=args.device, checkpoint=args.to_checkpoint)
    print(f"model B {target.name}: [{target.source_description}]", file=sys.stderr)
    ws = load_code(loaded, args.code, args.psi)
    save_image(translate(loaded.generator, target.generator, ws, args.alpha), args.out)
    return 0


SOAT_SUBCOMMANDS = [add_extend, add_transfer_region, add_translate]
