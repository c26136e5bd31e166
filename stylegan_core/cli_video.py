"""`python -m stylegan_core video IN.mp4 --out OUT.mp4 [--set NAME=VALUE ...] [--style CODE] [--max-frames N]`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import codes


def add_video(subparsers) -> None:
    from .editing import video

    parser = subparsers.add_parser(
        "video", help="edit the face in a short clip",
        description="Track the face, invert every frame (the first fully, the rest warm-started), apply the "
                    "same edit to every code, paste the result back into each frame and write an mp4 at the "
                    "source frame rate with the source audio.")
    parser.add_argument("clip", help="the input video (mp4, webm, mov)")
    parser.add_argument("--out", required=True, help="the output .mp4")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an attribute slider, e.g. --set smile=2 (see `directions`); repeatable")
    parser.add_argument("--style", metavar="CODE.npz",
                        help="a latent whose fine rows (colours, texture) every frame takes")
    parser.add_argument("--style-split", type=int, default=codes.DEFAULT_SPLIT_RESOLUTION,
                        help="with --style: rows above this resolution (px) come from the style code "
                             f"(default {codes.DEFAULT_SPLIT_RESOLUTION})")
    parser.add_argument("--max-frames", type=int, default=video.DEFAULT_MAX_FRAMES,
                        help=f"use at most this many frames (default {video.DEFAULT_MAX_FRAMES}, "
                             f"at most {video.MAX_FRAMES})")
    parser.add_argument("--quality", choices=sorted(video.QUALITY_STEPS), default=video.DEFAULT_QUALITY,
                        help="projector steps per frame: fast, balanced (default) or quality")
    parser.add_argument("--face-index", type=int, default=1, help="which face, 1 = the largest (default 1)")
    from .cli import add_model_arguments

    add_model_arguments(parser)
    parser.set_defaults(run=run_video)


def run_video(args: argparse.Namespace) -> int:
    from .editing import video, video_io
    from .cli import CommandError, load_model_from_args

    if not 1 <= args.max_frames <= video.MAX_FRAMES:
        raise CommandError(f"--max-frames must be between 1 and {video.MAX_FRAMES}")
    if args.face_index < 1:
        raise CommandError("--face-index counts from 1 (the largest face)")
    settings = _parse_settings(args.set)
    clip = video_io.read_clip(args.clip, args.max_frames)
    for note in clip.notes:
        print(f"note: {note}", file=sys.stderr)
    loaded = load_model_from_args(args)
    edit = video.build_edit(loaded.generator, loaded.name, settings=settings,
                            style_path=args.style, style_split=args.style_split)

    def report(stage: str, done: int, total: int, _preview) -> None:
        print(f"{stage} {done}/{total}", file=sys.stderr)

    result = video.edit_clip(loaded.generator, clip, Path(args.out), edit=edit, face_index=args.face_index - 1,
                             quality=args.quality, progress=report)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"out": str(result.path), "frames": result.frames_written, "fps": result.fps,
                      "face_found": round(result.found_fraction, 3), "seconds": round(result.seconds, 1)}))
    return 0


def _parse_settings(items: list[str]) -> dict[str, float]:
    from .cli import CommandError

    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            settings[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CommandError(f"--set takes NAME=VALUE with a number, e.g. smile=2; got {item!r}")
    return settings
