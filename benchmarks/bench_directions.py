"""Edit quality of the attribute directions (ffhq-mobile) on held-out seeds and on inverted real
photos, and the preview time.

For each direction at -3, -1, +1, +3 (slider units): the change of its target judge, of the other
judges, the dlib identity distance to the unedited face and whether exactly one face is found.
Seeds 0..N-1 at psi 0.7: never used to fit (fitting uses seeds >= 1,000,000, probes 999,000+).
Writes benchmarks/results/directions.md.  `python benchmarks/bench_directions.py [--seeds 10]`

`--photos`: the same over the precomputed inversions of the example photos (examples/codes/*.npz),
plus the identity distance of every edit to the face in the ORIGINAL photo; replaces the section
"On inverted real photos" of directions.md (the seeds part stays) and writes a contact sheet
benchmarks/results/directions_photos.jpg.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from PIL import Image, ImageDraw
from common import ROOT, default_generator, replace_section

from stylegan_core.editing import directions as D
from stylegan_core import judges
from stylegan_core.inversion import align, metrics
from stylegan_core.examples import example_photos
from stylegan_core.library import read_codes_file
from stylegan_core.images import load_image
from stylegan_core.images import tensor_to_pil

VALUES = (-3.0, -1.0, 1.0, 3.0)
TARGETS = {"age": "age", "gender": "gender", "smile": "expr_happy", "yaw": "yaw"}
SHOWN = ("age", "gender", "expr_happy", "yaw", "pitch", "mouth_openness", "eye_openness")
SHEET = [(name, value) for name in ("age", "gender_c", "smile", "yaw") for value in (-3.0, 3.0)]  # contact sheet
PHOTOS_HEADING = "## On inverted real photos"


def attribute(name: str) -> str:
    """'age_c' -> 'age': the attribute a (conditional or style-channel) direction edits."""
    return name.split("_")[0]


def measure_seed(generator, found, names, seed, rows, base):
    """Adds one held-out face to rows {(name, value): [per-face dicts]} and base {seed: (judges, descriptor)}."""
    with torch.no_grad():
        ws = generator.mapping(generator.seed_to_z(seed), psi=0.7)
    measure_code(generator, found, names, seed, ws, rows, base)


def measure_code(generator, found, names, key, ws, rows, base, photo_descriptor=None, sheet=None):
    """Adds the edits of one code: rows {(name, value): [per-face dicts]}, base {key: (judges, descriptor)}.
    With the photo's face descriptor, every edit's identity distance to the photo is kept too;
    `sheet` {(key, name, value): image} collects the edits shown on a contact sheet."""
    image = D.render(generator, ws)[0]
    base[key] = (judges.judge_or_none(image), metrics.face_descriptor(image))
    if sheet is not None:
        sheet[(key, "", 0.0)] = image
    for name in names:
        for value in VALUES:
            edited = tensor_to_pil(D.render_edit(generator, found, ws, {name: value}))
            descriptor = metrics.face_descriptor(edited)
            rows.setdefault((name, value), []).append(dict(
                seed=key, judges=judges.judge_or_none(edited),
                identity=distance(base[key][1], descriptor), photo_identity=distance(photo_descriptor, descriptor)))
            if sheet is not None and (name, value) in SHEET:
                sheet[(key, name, value)] = edited


def distance(a, b):
    return None if a is None or b is None else float(np.linalg.norm(a - b))


def mean_change(rows, base, judge):
    changes = [r["judges"][judge] - base[r["seed"]][0][judge] for r in rows
               if r["judges"] is not None and base[r["seed"]][0] is not None]
    return statistics.mean(changes) if changes else float("nan")


def mean_of(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else float("nan")


def table(rows, base, names, photo=False):
    """One line per direction and value; `photo` adds the mean identity distance to the photo's face."""
    extra = " | identity to photo" if photo else ""
    lines = ["| direction | value | target change | " + " | ".join(f"d {j}" for j in SHOWN)
             + f" | identity{extra} | one face |", "|---" * (5 + len(SHOWN) + photo) + "|"]
    for name in names:
        target = TARGETS[attribute(name)]
        for value in VALUES:
            r = rows[(name, value)]
            one = sum(1 for x in r if x["judges"] is not None and x["judges"]["faces"] == 1) / len(r)
            cells = [f"{mean_change(r, base, j):+.3g}" for j in SHOWN]
            to_photo = f" | {mean_of(x['photo_identity'] for x in r):.3f}" if photo else ""
            lines.append(f"| {name} | {value:+g} | {mean_change(r, base, target):+.3g} | " + " | ".join(cells)
                         + f" | {mean_of(x['identity'] for x in r):.3f}{to_photo} | {one:.0%} |")
    return lines


def span(rows, base, name, judge):
    """Mean over faces of judge(+3) - judge(-3), and the share of faces whose judged P(male) crosses
    0.5 away from the unedited face's side (+3 for a face judged female, -3 for one judged male;
    a face no longer found counts as not flipped)."""
    pairs = [(a["judges"][judge], b["judges"][judge]) for a, b in zip(rows[(name, -3.0)], rows[(name, 3.0)])
             if a["judges"] is not None and b["judges"] is not None]
    flipped = []
    for low, high in zip(rows[(name, -3.0)], rows[(name, 3.0)]):
        start = base[low["seed"]][0]
        if start is not None:
            end = (low if start[judge] >= 0.5 else high)["judges"]
            flipped.append(end is not None and (end[judge] >= 0.5) != (start[judge] >= 0.5))
    flips = sum(flipped) / max(1, len(flipped))
    return statistics.mean(hi - lo for lo, hi in pairs) if pairs else float("nan"), flips


def targets(rows, base, names, photo=False):
    extra = " identity to photo at +-1 |" if photo else ""
    lines = ["| direction | -3 -> +3 | target | met | identity at +-1 |" + extra, "|---" * (5 + photo) + "|"]
    goals = {"age": ("age", 15.0, "years apart >= 15"), "smile": ("expr_happy", 0.4, "P(happy) apart >= 0.4"),
             "yaw": ("yaw", 25.0, "degrees apart >= 25"), "gender": ("gender", 0.8, "flips >= 80 %")}
    for name in names:
        judge, goal, text = goals[attribute(name)]
        apart, flips = span(rows, base, name, judge)
        achieved = flips if judge == "gender" else apart
        ids = [x["identity"] for v in (-1.0, 1.0) for x in rows[(name, v)] if x["identity"] is not None]
        identity = statistics.mean(ids) if ids else float("nan")
        need_id = attribute(name) in ("smile", "yaw")
        met = achieved >= goal and (not need_id or identity < 0.5)
        shown = f"{flips:.0%} flip" if judge == "gender" else f"{apart:+.3g}"
        to_photo = mean_of(x["photo_identity"] for v in (-1.0, 1.0) for x in rows[(name, v)])
        lines.append(f"| {name} | {shown} | {text}" + (", identity < 0.5" if need_id else "")
                     + f" | {'yes' if met else 'NO'} | {identity:.3f} |" + (f" {to_photo:.3f} |" if photo else ""))
    return lines


def preview_seconds(generator, found, rounds=5):
    with torch.no_grad():
        ws = generator.mapping(generator.seed_to_z(0), psi=0.7)
        times = []
        for _ in range(rounds + 1):
            start = time.perf_counter()
            D.render_edit(generator, found, ws, {"age": 1.0, "smile": 0.5})
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), min(times[1:])


def report(machine_line, found, names, rows, base, seeds_done, elapsed, preview):
    lines = [
        "# Attribute directions: edit quality on held-out seeds (ffhq-mobile, 1024 px, CPU)", "",
        f"Machine: {machine_line}. Written by `benchmarks/bench_directions.py` after {elapsed:.0f} s. The machine "
        "was shared with other jobs (load average about 15 on 2 cores): times are upper bounds.", "",
        f"Faces: held-out seeds {', '.join(map(str, seeds_done))} at psi 0.7 (fitting used seeds from "
        f"{D.FIT_SEED_BASE}, {found.info.get('samples')} samples; probes from {D.FIT_SEED_BASE - 1000}). "
        "Values in slider units (standard deviations of generated w). "
        "'d X' = mean change of judge X against the unedited face; identity = dlib descriptor distance "
        "to the unedited face (< 0.6: same person); one face = exactly one face detected. "
        "Names ending in _c are the conditional directions (other named attributes projected out), "
        "_s the single style channels (S space).", "",
        *targets(rows, base, names), "", *table(rows, base, names), "",
    ]
    if preview:
        lines.append(f"Edit preview (apply + one 1024 px forward): median {preview[0]:.3f} s, fastest "
                     f"{preview[1]:.3f} s over 5 runs (target <= 0.3 s; contended machine, see load above).")
    return "\n".join(lines) + "\n"


def photo_codes(generator):
    """(code name, ws, descriptor of the face in the original photo) per example with a precomputed code."""
    found = []
    for example in example_photos():
        if not example.code_path.is_file():
            continue
        (latent,) = read_codes_file(example.code_path)
        photo = load_image(example.path)
        face = align.align_face(photo, generator.resolution, face_index=example.face_index)
        found.append((example.code_name, latent.ws.to(generator.device), metrics.face_descriptor_at(photo, face.face_box)))
    return found


def contact_sheet(sheet, keys, size=192):
    """Rows: the codes; columns: the unedited render, then each SHEET edit. Labels on top."""
    columns = [("", 0.0)] + SHEET
    canvas = Image.new("RGB", (size * len(columns), 24 + size * len(keys)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, (name, value) in enumerate(columns):
        draw.text((c * size + 4, 6), f"{name} {value:+g}" if name else "unedited", fill="black")
        for r, key in enumerate(keys):
            if (key, name, value) in sheet:
                canvas.paste(sheet[(key, name, value)].resize((size, size), Image.Resampling.LANCZOS),
                             (c * size, 24 + r * size))
    for r, key in enumerate(keys):
        draw.text((4, 24 + r * size + 4), key, fill="white")
    return canvas


def per_face(rows, base, keys) -> list[str]:
    """The Edit tab's default sliders per face: the target judge unedited, at -3 and at +3."""
    lines = ["| face | " + " | ".join(f"{n}: {TARGETS[attribute(n)]} at 0 / -3 / +3" for n, _ in SHEET[::2]) + " |",
             "|---" * (1 + len(SHEET) // 2) + "|"]
    for key in keys:
        cells = []
        for name, _ in SHEET[::2]:
            judge = TARGETS[attribute(name)]
            ends = [next(x for x in rows[(name, v)] if x["seed"] == key)["judges"] for v in (-3.0, 3.0)]
            start = base[key][0]
            cells.append(" / ".join("no face" if j is None else f"{j[judge]:.3g}" for j in [start, *ends]))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def photos_section(machine_line, names, codes, rows, base, elapsed):
    baseline = "; ".join(f"{key} {distance(base[key][1], descriptor):.3f}" for key, _, descriptor in codes)
    return "\n".join([
        PHOTOS_HEADING, "",
        f"Machine: {machine_line}. Written by `benchmarks/bench_directions.py --photos` after {elapsed:.0f} s "
        "(shared machine: no timings here).", "",
        f"Faces: the precomputed default inversions (W+, 80 steps) of the example photos, examples/codes/*.npz: "
        f"{', '.join(key for key, _, _ in codes)} (two people: Eileen Collins in astronaut*, two_people-face2; "
        "Grace Hopper in grace_hopper, two_people). A gender flip counts at +3 for a face judged female "
        "unedited and at -3 for one judged male (the judge calls Grace Hopper's inversions male). "
        "Columns as above; 'identity to photo' = dlib distance of the edited render to the face in the "
        "ORIGINAL photo. The unedited inversions' own distance to the photo: " + baseline + ". "
        "Contact sheet: benchmarks/results/directions_photos.jpg (rows: faces; columns: unedited, then "
        "age, gender_c, smile, yaw at -3 and +3).", "",
        *targets(rows, base, names, photo=True), "", "Per face (the Edit tab's default sliders):", "",
        *per_face(rows, base, [key for key, _, _ in codes]), "", *table(rows, base, names, photo=True), "",
    ]) + "\n"


def later_sections(path) -> str:
    """The '## ' sections of a results file (readings, the photos part) that a seeds run keeps."""
    text = path.read_text() if path.exists() else ""
    return text[text.index("\n## "):] if "\n## " in text else ""


def run_photos(generator, found, names, machine_line) -> None:
    started = time.monotonic()
    codes = photo_codes(generator)
    rows, base, sheet = {}, {}, {}
    out = ROOT / "benchmarks" / "results" / "directions.md"
    for key, ws, descriptor in codes:
        measure_code(generator, found, names, key, ws, rows, base, descriptor, sheet)
        print(f"{key} done after {time.monotonic() - started:.0f} s", flush=True)
    done = [c for c in codes if c[0] in base]
    raw = {"base": {k: b[0] for k, b in base.items()},
           "rows": [dict(name=n, value=v, **r) for (n, v), rs in rows.items() for r in rs]}
    (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "out" / "directions_photos_raw.json").write_text(json.dumps(raw))
    out.write_text(replace_section(out.read_text(), PHOTOS_HEADING,
                                   photos_section(machine_line, names, done, rows, base, time.monotonic() - started)))
    contact_sheet(sheet, [key for key, _, _ in done]).save(ROOT / "benchmarks" / "results" / "directions_photos.jpg",
                                                           quality=88)
    print(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--photos", action="store_true", help="the example photos' inversions instead of seeds")
    parser.add_argument("--budget-s", type=float, default=3600.0, help="stop adding seeds after this long")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    machine_line, generator = default_generator(args.threads, inference=False)
    found = D.load_directions("ffhq-mobile")
    # age_s and gender_s moved their judges by only +0.5 years and +0.01 per unit on the probe faces
    # (manifest): measured there, left out here to spend the machine's time on more faces
    names = [n for n in ("age", "age_c", "gender", "gender_c", "smile", "smile_c", "smile_s", "yaw", "yaw_c", "yaw_s")
             if n in found.directions]
    if args.photos:
        run_photos(generator, found, names, machine_line)
        return
    started = time.monotonic()
    preview = preview_seconds(generator, found)
    print(f"preview: {preview}", flush=True)
    rows, base, done = {}, {}, []
    out = ROOT / "benchmarks" / "results" / "directions.md"
    for seed in range(args.seeds):  # the file is rewritten after every face: a partial run still reports
        if time.monotonic() - started > args.budget_s:
            break
        measure_seed(generator, found, names, seed, rows, base)
        done.append(seed)
        out.write_text(report(machine_line, found, names, rows, base, done, time.monotonic() - started, preview)
                       + later_sections(out))
        raw = {"base": {s: b[0] for s, b in base.items()},
               "rows": [dict(name=n, value=v, **r) for (n, v), rs in rows.items() for r in rs]}
        (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
        (ROOT / "benchmarks" / "out" / "directions_raw.json").write_text(json.dumps(raw))
        print(f"seed {seed} done after {time.monotonic() - started:.0f} s", flush=True)
    print(out.read_text())


if __name__ == "__main__":
    main()
