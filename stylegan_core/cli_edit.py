"""CLI subcommands for attribute edits: `directions` (list or compute a model's edit directions) and
`edit` (move a seed's or a saved latent's code along named directions). Registered in cli.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import (CommandError, add_model_arguments, add_transform_arguments, apply_transform_args,
                  load_model_from_args, parse_pair)


# -- directions ------------------------------------------------------------------------------------
def add_directions(subparsers) -> None:
    parser = subparsers.add_parser(
        "directions", help="list (or compute) a model's attribute edit directions",
        description="List the edit directions of a model: name, kind, W+ rows, what the judges see it change. "
                    "With --compute, find them anew (judges a few hundred rendered faces; minutes) and cache "
                    "them under the weights folder.")
    add_model_arguments(parser)
    parser.add_argument("--compute", action="store_true", help="compute the directions now and cache them")
    parser.add_argument("--samples", type=int, default=400, help="faces rendered and judged with --compute (default 400)")
    parser.set_defaults(run=run_directions)


def run_directions(args: argparse.Namespace) -> int:
    from .editing import directions as D

    loaded = load_model_from_args(args)
    if args.compute:
        if args.samples < 50:
            raise CommandError("--samples must be at least 50 for a meaningful fit")
        found = D.compute_directions(loaded.generator, loaded.name, args.samples,
                                     progress=lambda line: print(line, file=sys.stderr, flush=True))
        D.save_directions(found, D.computed_dir(loaded.name))
        print(f"saved to {D.computed_dir(loaded.name)}", file=sys.stderr)
    found = D.load_directions(loaded.name, loaded.generator)
    print(f"# {loaded.name}: {D.direction_status(loaded.name)}; slider unit = 1 standard deviation of "
          f"generated faces, range -{D.SLIDER_LIMIT:g}..{D.SLIDER_LIMIT:g}")
    for name, _ in found.sliders():
        direction = found.directions[name]
        rows = f"{min(direction.rows)}-{max(direction.rows)}" if direction.rows else "-"
        print(f"{name:16} {direction.kind:26} rows {rows:6} {direction.description or direction.display_name}")
    return 0


# -- edit ------------------------------------------------------------------------------------------
def add_edit(subparsers) -> None:
    parser = subparsers.add_parser(
        "edit", help="move a code along named directions (age, gender, smile, yaw, ...)",
        description="Render a seed's code (as `generate --seed`) or a saved latent after moving it along named "
                    "directions; writes the image and the edited latent (.npz) beside it.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--seed", type=int, help="the code of `generate --seed N`")
    source.add_argument("--latent", help="a latent .npz saved by this project (invert, library, edit)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a direction and its value in standard deviations (-5..5); repeatable")
    parser.add_argument("--psi", type=float, default=0.7, help="truncation psi for --seed (default 0.7)")
    parser.add_argument("--out", required=True, help="output PNG; the edited latent goes beside it as .npz")
    parser.add_argument("--before-after", action="store_true",
                        help="also write OUT_before_after.png: the code unedited and edited, side by side")
    add_transform_arguments(parser)  # StyleGAN3: e.g. the photo frame's transform that `invert` prints
    add_model_arguments(parser)
    parser.set_defaults(run=run_edit)


def parse_settings(settings: list[str]) -> dict[str, float]:
    values = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CommandError(f"--set {setting!r}: write NAME=VALUE, e.g. --set age=2")
    return values


def starting_code(args: argparse.Namespace, loaded):
    import torch

    from . import codes
    from .latents import load_latent

    generator = loaded.generator
    if args.latent is None:
        with torch.no_grad():
            return codes.random_codes(generator, [args.seed], codes.check_psi(args.psi))
    latent = load_latent(args.latent)
    if latent.model_name != loaded.name:
        raise CommandError(f"{args.latent} is a code of model {latent.model_name!r}, not {loaded.name!r}; "
                           f"pass --model {latent.model_name}")
    latent.check_fits(loaded.name, generator.num_ws, generator.w_dim)
    return latent.ws.to(generator.device)


def run_edit(args: argparse.Namespace) -> int:
    from .editing import directions as D
    from .images import tensor_to_pil
    from .latents import save_latent

    values = parse_settings(args.set)
    parse_pair(args.translate, "--translate")  # a malformed option is refused before the model loads
    loaded = load_model_from_args(args)
    apply_transform_args(loaded.generator, args)
    found = D.load_directions(loaded.name, loaded.generator)
    D.check_names_ready(found, list(values))
    start = starting_code(args, loaded)
    image = D.render_edit(loaded.generator, found, start, values)
    ws = D.apply_directions(found, start, values)
    if D.style_editor(found, values) is not None:
        print("note: style-channel (S-space) edits are in the image but not in the saved W+ latent", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(image[0]).save(out)
    save_latent(out.with_suffix(".npz"), ws, loaded.name, name=" ".join(args.set))
    print(out)
    if args.before_after:
        from .inversion.photo_frame import side_by_side

        before = tensor_to_pil(D.render_edit(loaded.generator, found, start, {})[0])
        pair = out.with_name(f"{out.stem}_before_after.png")
        side_by_side([before, tensor_to_pil(image[0])]).save(pair)
        print(pair)
    return 0
