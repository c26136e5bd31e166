"""The example photos shipped in examples/ and their precomputed inversions.

A visitor often has no photo at hand, and an inversion takes the better part of a minute on a CPU.
The example photos (public domain, sources and licences in examples/README.md) come with the codes
of their default inversions in examples/codes/<photo stem>[-face<i>].npz, each a library export
holding the code and its photo link, so a new session's library starts with real faces that paste
back into their photos. `tools/make_example_codes.py` (re)computes them; an example without a code
file is still offered as a photo (the app inverts it on demand).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .inversion.metrics import SAME_PERSON_THRESHOLD
from .library import CodeEntry, CodeLibrary, LibraryError, read_codes_file, read_photo_links

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
CODES_DIR = EXAMPLES_DIR / "codes"
METRICS_PATH = CODES_DIR / "metrics.json"  # written by tools/make_example_codes.py
PRECOMPUTED_NOTE = "precomputed: the default inversion of an example photo, shipped with the app"


@dataclass(frozen=True)
class ExamplePhoto:
    path: Path
    face_index: int  # the face to invert (0 = largest)
    caption: str

    @property
    def code_name(self) -> str:
        """The name of its code (and of its file in examples/codes without .npz)."""
        return self.path.stem + (f"-face{self.face_index + 1}" if self.face_index else "")

    @property
    def code_path(self) -> Path:
        return CODES_DIR / f"{self.code_name}.npz"

    def metrics(self) -> Optional[dict]:
        """The quality of its precomputed inversion as measured when it was made (examples/codes/
        metrics.json, by the judges of an inversion: identity to the photo, ...), or None."""
        try:
            measured = json.loads(METRICS_PATH.read_text()).get(self.code_name)
        except (OSError, ValueError):
            return None
        if not isinstance(measured, dict):
            return None
        scores = {key: value for key, value in measured.items() if key not in ("model", "seconds")}
        if isinstance(scores.get("id_distance"), (int, float)):
            scores["same_person"] = scores["id_distance"] < SAME_PERSON_THRESHOLD
        return scores


EXAMPLE_PHOTOS = (
    ExamplePhoto(EXAMPLES_DIR / "astronaut.jpg", 0, "Eileen Collins (NASA)"),
    ExamplePhoto(EXAMPLES_DIR / "astronaut_near_the_top.jpg", 0, "a head close to the photo's top edge"),
    ExamplePhoto(EXAMPLES_DIR / "grace_hopper.jpg", 0, "Grace Hopper (US Navy)"),
    ExamplePhoto(EXAMPLES_DIR / "two_people.jpg", 0, "two people: Grace Hopper (face 1)"),
    ExamplePhoto(EXAMPLES_DIR / "two_people.jpg", 1, "two people: Eileen Collins (face 2)"),
)


def example_photos() -> list[ExamplePhoto]:
    """The example photos that are on disk (a slimmed-down install may lack some)."""
    return [example for example in EXAMPLE_PHOTOS if example.path.is_file()]


def example_codes(library: CodeLibrary, model_name: Optional[str] = None,
                  render: Optional[Callable] = None) -> list[CodeEntry]:
    """Add the precomputed example codes (of `model_name`, or of every model they exist for) to
    `library`, each with its photo link, source "example" and a note that it was precomputed.
    `render(ws, model_name) -> PIL image` makes thumbnails when given. Codes whose name the library
    already holds are skipped, so calling it twice adds nothing."""
    added = []
    for example in example_photos():
        if not example.code_path.is_file() or example.code_name in library:
            continue
        entry = _read_example(example)
        if model_name is not None and entry[0].model_name != model_name:
            continue
        latent, link = entry
        try:
            thumbnail = render(latent.ws, latent.model_name) if render else None
            added.append(library.add(latent.ws, latent.model_name, "example", example.code_name, thumbnail,
                                     info={"note": PRECOMPUTED_NOTE, "caption": example.caption}, photo=link))
        except LibraryError:  # a full library: the user's own codes come first
            break
    return added


def _read_example(example: ExamplePhoto):
    (latent,) = read_codes_file(example.code_path)
    links, _ = read_photo_links(example.code_path, 1)
    return latent, links[0]
