"""S-space inversion (SOAT's Gaussian style prior) against W+ on the example photos: reconstruction
and editability, on ffhq-mobile.

The same photos, the same step budget and the projector's default recipe otherwise, in W+ and in S.
An S inversion is measured twice: as its styles (what the optimiser found) and as the W+ code the
library and every other operation take (a W+ fit of the styles' image since 2026-12-01; before, the
exact solve for the nearest W+ code, which rendered noise).

  reconstruction: dlib identity distance of the inverted face to the face in the ORIGINAL photo
      (< 0.6: the same person); PSNR / SSIM against the aligned crop (secondary).
  editability: the attribute directions at -2 and +2 applied to each inversion; the target judge's
      change against the unedited inversion, the identity drift to the unedited inversion and the
      identity distance to the photo's face. W directions edit an S code exactly as they edit a W+
      code: styles are affine in w (s_l = A_l w + b_l), so the edit adds A_l * (value * sigma * v)
      to the styles of every layer whose row the direction moves (`style_offsets`).

Inversions are cached in benchmarks/out/s_space/ (a second run only measures), so the two stages can
run as separate bounded jobs: `python benchmarks/bench_s_space.py invert --budget-s 800`, then
`python benchmarks/bench_s_space.py measure` (writes benchmarks/results/s_space.md and a contact sheet).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw

from common import ROOT, default_generator, replace_section
from stylegan_core import judges
from stylegan_core.editing import directions as D
from stylegan_core.examples import EXAMPLE_PHOTOS
from stylegan_core.images import load_image, tensor_to_pil
from stylegan_core.inversion import align, metrics
from stylegan_core.inversion.projector import ProjectorOptions, project

FACES = ("astronaut", "grace_hopper", "two_people-face2", "astronaut_near_the_top", "two_people")  # two people
SPACES = ("w+", "s")
DIRECTIONS = ("age", "gender_c", "smile", "yaw")  # the Edit tab's default sliders
TARGETS = {"age": "age", "gender_c": "gender", "smile": "expr_happy", "yaw": "yaw"}
VALUES = (-2.0, 2.0)
CACHE = ROOT / "benchmarks" / "out" / "s_space"


def example(name: str):
    return next(e for e in EXAMPLE_PHOTOS if e.code_name == name)


def aligned_face(name: str, resolution: int):
    """(photo, aligned face) of an example, aligned as the app and tools/make_example_codes.py do."""
    photo = load_image(example(name).path)
    return photo, align.align_face(photo, resolution, face_index=example(name).face_index)


def cache_path(name: str, space: str, steps: int):
    return CACHE / f"{name}_{space.replace('+', 'plus')}_{steps}.pt"


def invert_missing(generator, steps: int, budget_s: float) -> None:
    """Run the inversions not cached yet, until `budget_s` has passed (each is saved when done)."""
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in FACES:
        for space in SPACES:
            path = cache_path(name, space, steps)
            if path.exists():
                continue
            if time.monotonic() - started > budget_s:
                print(f"budget spent; {name} {space} left for the next run", flush=True)
                return
            _, face = aligned_face(name, generator.resolution)
            result = project(generator, face.image, ProjectorOptions(space=space, steps=steps, preview_every=0))
            torch.save({"ws": result.ws, "styles": result.styles, "loss": result.loss,
                        "seconds": result.elapsed_s, "steps": result.steps_run}, path)
            print(f"{name} {space}: loss {result.loss:.4f} after {result.elapsed_s:.0f} s", flush=True)


# -- editing an S code ------------------------------------------------------------------------------
def style_offsets(generator, directions, values: dict[str, float]) -> list[torch.Tensor]:
    """Per layer, the style change [1, C_l] that the W directions in `values` cause. Exact for every
    code: the affines are linear in w, so styles(ws + d) - styles(ws) does not depend on ws."""
    mean = generator.mean_ws(1)
    with torch.no_grad():
        moved = generator.styles(D.apply_directions(directions, mean, values))
        return [m - s for m, s in zip(moved, generator.styles(mean))]


@dataclass
class Inversion:
    """One way of holding an inversion: a W+ code, or S-space styles (edited by `style_offsets`)."""

    label: str
    ws: Optional[torch.Tensor] = None
    styles: Optional[list] = None

    def render(self, generator, directions, values: dict[str, float]) -> Image.Image:
        if self.ws is not None:
            return tensor_to_pil(D.render_edit(generator, directions, self.ws, values)[0])
        offsets = style_offsets(generator, directions, values)
        with torch.no_grad():
            image = generator.synthesis(styles=[s + o for s, o in zip(self.styles, offsets)],
                                        editor=D.style_editor(directions, values))
        return tensor_to_pil(image[0])


def inversions(name: str, steps: int) -> list[Inversion]:
    found = []
    for space in SPACES:
        path = cache_path(name, space, steps)
        if not path.exists():
            continue
        stored = torch.load(path, weights_only=False)
        if space == "w+":
            found.append(Inversion("W+", ws=stored["ws"]))
        else:
            found += [Inversion("S (styles)", styles=stored["styles"]),
                      Inversion("S -> W+ code stored by the app", ws=stored["ws"])]
    return found


# -- measuring --------------------------------------------------------------------------------------
def descriptor_distance(a, b) -> Optional[float]:
    return None if a is None or b is None else float(np.linalg.norm(a - b))


def measure_face(generator, directions, name: str, steps: int, rows: list, sheet: dict) -> None:
    """Appends one row per (inversion, edit) of one photo: judges, identity to the unedited render and
    to the photo's face; the unedited row also PSNR / SSIM against the aligned crop."""
    photo, face = aligned_face(name, generator.resolution)
    photo_descriptor = metrics.face_descriptor_at(photo, face.face_box)
    sheet[(name, "photo")] = face.image
    for inversion in inversions(name, steps):
        base = inversion.render(generator, directions, {})
        base_descriptor, base_judges = metrics.face_descriptor(base), judges.judge_or_none(base)
        rows.append(dict(face=name, inversion=inversion.label, direction="", value=0.0, judges=base_judges,
                         drift=0.0, to_photo=descriptor_distance(photo_descriptor, base_descriptor),
                         psnr=metrics.psnr(face.image, base), ssim=metrics.ssim(face.image, base)))
        sheet[(name, inversion.label, "", 0.0)] = base
        for direction in DIRECTIONS:
            for value in VALUES:
                edited = inversion.render(generator, directions, {direction: value})
                descriptor = metrics.face_descriptor(edited)
                rows.append(dict(face=name, inversion=inversion.label, direction=direction, value=value,
                                 judges=judges.judge_or_none(edited), base_judges=base_judges,
                                 drift=descriptor_distance(base_descriptor, descriptor),
                                 to_photo=descriptor_distance(photo_descriptor, descriptor)))
                sheet[(name, inversion.label, direction, value)] = edited
        print(f"{name}, {inversion.label}: measured", flush=True)


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


def shown(value: float, form: str) -> str:
    """A mean, or 'no face' where no edit left a face to measure."""
    return "no face" if np.isnan(value) else format(value, form)


def change(row, judge: str) -> Optional[float]:
    if row["judges"] is None or row["base_judges"] is None:
        return None
    return row["judges"][judge] - row["base_judges"][judge]


def labels(rows) -> list[str]:
    return list(dict.fromkeys(r["inversion"] for r in rows))


def reconstruction_table(rows) -> list[str]:
    faces = list(dict.fromkeys(r["face"] for r in rows))
    lines = ["| inversion | " + " | ".join(f"ID to photo: {f}" for f in faces)
             + " | mean ID to photo | mean PSNR (dB) | mean SSIM |", "|---" * (4 + len(faces)) + "|"]
    for label in labels(rows):
        base = {r["face"]: r for r in rows if r["inversion"] == label and not r["direction"]}
        cells = [f"{base[f]['to_photo']:.3f}" if f in base and base[f]["to_photo"] is not None else "-"
                 for f in faces]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {shown(mean(r['to_photo'] for r in base.values()), '.3f')} |"
                     f" {mean(r['psnr'] for r in base.values()):.2f} | {mean(r['ssim'] for r in base.values()):.4f} |")
    return lines


def editability_table(rows) -> list[str]:
    lines = ["| inversion | direction | target judge | change at -2 | change at +2 | +2 minus -2 |"
             " identity drift (to unedited) | ID to photo after the edit | one face |", "|---" * 9 + "|"]
    for label in labels(rows):
        for direction in DIRECTIONS:
            judge = TARGETS[direction]
            edits = [r for r in rows if r["inversion"] == label and r["direction"] == direction]
            low = [change(r, judge) for r in edits if r["value"] < 0]
            high = [change(r, judge) for r in edits if r["value"] > 0]
            one = sum(r["judges"] is not None and r["judges"]["faces"] == 1 for r in edits)
            cells = [shown(mean(low), "+.3g"), shown(mean(high), "+.3g"), shown(mean(high) - mean(low), "+.3g"),
                     shown(mean(r["drift"] for r in edits), ".3f"), shown(mean(r["to_photo"] for r in edits), ".3f")]
            lines.append(f"| {label} | {direction} | {judge} | " + " | ".join(cells) + f" | {one}/{len(edits)} |")
    return lines


def contact_sheet(sheet: dict, rows, size: int = 128) -> Image.Image:
    """Rows: photo x inversion; columns: the aligned crop, the unedited inversion, then each edit.
    An inversion whose unedited render has no face shows only that render (its edits are no better,
    see the table): noise would make the file several times larger."""
    columns = [("", 0.0)] + [(d, v) for d in DIRECTIONS for v in VALUES]
    keys = list(dict.fromkeys((r["face"], r["inversion"]) for r in rows))
    faceless = {(r["face"], r["inversion"]) for r in rows if not r["direction"] and r["judges"] is None}
    canvas = Image.new("RGB", (size * (len(columns) + 1), 24 + size * len(keys)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (direction, value) in enumerate([("photo crop", 0.0)] + columns):
        draw.text((c * size + 4, 6), f"{direction} {value:+g}" if value else (direction or "unedited"), fill="black")
    for r, (name, label) in enumerate(keys):
        top = 24 + r * size
        canvas.paste(sheet[(name, "photo")].resize((size, size), Image.Resampling.LANCZOS), (0, top))
        for c, (direction, value) in enumerate(columns[:1] if (name, label) in faceless else columns, start=1):
            canvas.paste(sheet[(name, label, direction, value)].resize((size, size), Image.Resampling.LANCZOS),
                         (c * size, top))
        draw.text((4, top + 4), f"{name}\n{label[:12]}", fill="white")
    return canvas


SECTION = "## S-space vs W+ inversion on the example photos: reconstruction and editability"


def section(machine_line: str, rows, steps: int, seconds: dict) -> str:
    timing = "; ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    faces = ", ".join(dict.fromkeys(r["face"] for r in rows))
    return "\n".join([
        SECTION, "",
        f"`python benchmarks/bench_s_space.py --steps {steps}`. Machine: {machine_line} (shared with other "
        f"jobs: the inversion times, {timing}, are not comparable). Faces: {faces} (example photos, "
        "examples/), aligned as the app does. Both spaces: the projector's default recipe, the same "
        f"{steps} steps; S: `ProjectorOptions(space='s')` (styles in units of each channel's std at lr "
        "0.1, Gaussian prior weight 0.05). 'S (styles)' is the S inversion itself; 'S -> W+ code' the "
        "W+ code the app stores for an S inversion (`ProjectionResult.ws`). Edits: the Edit "
        "tab's default directions at -2 and +2 slider units; on S styles a W direction adds its exact "
        "style change A_l d (style_offsets). Identity: dlib descriptor distance (< 0.6: the same person); "
        "'ID to photo' against the face in the ORIGINAL photo. Contact sheet: "
        "benchmarks/results/s_space_edits.jpg.", "",
        "Reconstruction (PSNR/SSIM against the aligned crop):", "",
        *reconstruction_table(rows), "",
        "Editability (mean over the photos):", "",
        *editability_table(rows), "",
    ]) + "\n"


def measure(generator, steps: int, machine_line: str) -> None:
    directions = D.load_directions("ffhq-mobile")
    rows, sheet = [], {}
    for name in FACES:
        measure_face(generator, directions, name, steps, rows, sheet)
    seconds = {f"{name} {space}": torch.load(cache_path(name, space, steps), weights_only=False)["seconds"]
               for name in FACES for space in SPACES if cache_path(name, space, steps).exists()}
    results = ROOT / "benchmarks" / "results"
    contact_sheet(sheet, rows).save(results / "s_space_edits.jpg", quality=85)
    soat = results / "soat.md"
    soat.write_text(replace_section(soat.read_text(), SECTION, section(machine_line, rows, steps, seconds)))
    print(section(machine_line, rows, steps, seconds))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stages", nargs="*", default=["invert", "measure"])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=800.0, help="start no new inversion after this long")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    machine_line, generator = default_generator(args.threads, inference=False)
    print(machine_line, flush=True)
    if "invert" in args.stages:
        invert_missing(generator, args.steps, args.budget_s)
    if "measure" in args.stages:
        measure(generator, args.steps, machine_line)


if __name__ == "__main__":
    main()
