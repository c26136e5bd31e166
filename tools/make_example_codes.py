"""Make the derived example photos and precompute the example codes (examples/codes/*.npz).

Each example photo's face is aligned and inverted with the default projector options and model,
as the app does it; the code and its photo link are written as a one-entry library export, and the
identity distance to the face in the photo is printed (and written to examples/codes/metrics.json).

    .venv/bin/python tools/make_example_codes.py [--only NAME,...] [--preview DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylegan_core.inversion import align, metrics  # noqa: E402
from stylegan_core.loading import zoo  # noqa: E402
from stylegan_core.examples import CODES_DIR, EXAMPLE_PHOTOS, EXAMPLES_DIR, METRICS_PATH  # noqa: E402
from stylegan_core.images import load_image  # noqa: E402
from stylegan_core.library import CodeLibrary  # noqa: E402
from stylegan_core.inversion.paste_back import PhotoLink  # noqa: E402
from stylegan_core.inversion.projector import ProjectorOptions, project  # noqa: E402
from stylegan_core.runtime import heap_reuse  # noqa: E402


def make_derived_photos() -> None:
    """Photos made from the two public-domain portraits: a head near the top edge, and both side by side."""
    astronaut = load_image(EXAMPLES_DIR / "astronaut.jpg")
    hopper = load_image(EXAMPLES_DIR / "grace_hopper.jpg")
    near_top = EXAMPLES_DIR / "astronaut_near_the_top.jpg"
    if not near_top.is_file():
        astronaut.crop((0, 50, 512, 512)).save(near_top, quality=92)
    two = EXAMPLES_DIR / "two_people.jpg"
    if not two.is_file():
        photo = Image.new("RGB", (1000, 600), (128, 128, 128))
        photo.paste(hopper, (0, 0))
        photo.paste(astronaut.resize((440, 440), Image.Resampling.LANCZOS), (540, 80))
        photo.save(two, quality=92)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated code names (default: all)")
    parser.add_argument("--preview", default=None, help="also write result and pasted PNGs here")
    args = parser.parse_args()
    make_derived_photos()
    heap_reuse(True)
    loaded = zoo.load_model(zoo.DEFAULT_MODEL)
    generator = loaded.generator
    CODES_DIR.mkdir(exist_ok=True)
    report_path = METRICS_PATH
    options = ProjectorOptions(preview_every=0)
    for example in EXAMPLE_PHOTOS:
        if args.only and example.code_name not in args.only.split(","):
            continue
        photo = load_image(example.path)
        face = align.align_face(photo, generator.resolution, face_index=example.face_index)
        started = time.perf_counter()
        result = project(generator, face.image, options)
        seconds = time.perf_counter() - started
        link = PhotoLink.from_face(photo, face, source=example.path.name)
        pasted = link.paste(result.image)
        scores = metrics.photo_metrics(photo, face, result.image, pasted)
        library = CodeLibrary()
        library.add(result.ws, loaded.name, "inverted", example.code_name, photo=link)
        example.code_path.write_bytes(library.export_bytes())
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}  # others may run at once
        report[example.code_name] = {"model": loaded.name, "steps": options.steps, "seconds": round(seconds, 1),
                                     **{k: None if v is None else round(float(v), 4) for k, v in scores.items()
                                        if k != "same_person"}}
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        print(example.code_name, json.dumps(report[example.code_name]), flush=True)
        if args.preview:
            Path(args.preview).mkdir(parents=True, exist_ok=True)
            result.image.save(Path(args.preview) / f"{example.code_name}_result.png")
            pasted.save(Path(args.preview) / f"{example.code_name}_pasted.png")


if __name__ == "__main__":
    main()
