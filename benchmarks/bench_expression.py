"""Expression defaults: does the Expression tab's default give a smiling face of the same person?

Simple path: the target moved along the shipped `smile` direction by several strengths (slider
units). Advanced path: the tab's former default, w1 + 1.0 (seed 2 - seed 3), two different people.
Each result is judged by the expression judge (P(happy)) and by dlib identity distance to the
target's render and, for the example codes, to the target's photo (< 0.6: the same person).
Prints a table and writes benchmarks/results/expression.md.
Usage: python benchmarks/bench_expression.py [--strengths 3,4,5]
"""
from __future__ import annotations

import argparse

import torch

from common import ROOT, default_generator, write_results
from stylegan_core import codes, examples, judges
from stylegan_core.editing import directions as dirs, edits
from stylegan_core.images import load_image, tensor_to_pil
from stylegan_core.inversion import metrics
from stylegan_core.loading import zoo

RESULTS = ROOT / "benchmarks" / "results" / "expression.md"
TARGETS = ("grace_hopper", "astronaut", "seed 1", "seed 4")


def target_code(generator, name: str) -> torch.Tensor:
    seed = codes.seed_of(name)
    if seed is not None:
        return codes.random_codes(generator, [seed], codes.DEFAULT_PSI)
    return examples.read_codes_file(examples.CODES_DIR / f"{name}.npz")[0].ws[:1]


def judged(image, render, photo) -> str:
    try:
        happy = f"{judges.smile(image):.3f}"
    except judges.NoFaceError:
        return "no face | – | –"
    to_render = metrics.identity_distance(render, image)
    to_photo = "–" if photo is None else metrics.identity_distance(photo, image)
    number = (lambda d: "no face" if d is None else d if isinstance(d, str) else f"{d:.3f}")
    return f"{happy} | {number(to_render)} | {number(to_photo)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", default="3,4,5")
    args = parser.parse_args()
    machine_line, generator = default_generator()
    directions = dirs.load_directions(zoo.DEFAULT_MODEL, generator)
    render = (lambda ws: tensor_to_pil(generator.synthesis(ws)))
    header = "| target | edit | P(happy) | identity to the target's render | identity to its photo |"
    lines = [header, "|---|---|---|---|---|"]
    print(header)
    for name in TARGETS:
        ws = target_code(generator, name)
        plain = render(ws)
        photo_path = examples.EXAMPLES_DIR / f"{name}.jpg"
        photo = load_image(photo_path, None) if photo_path.is_file() else None
        edits_to_judge = [("none", plain)] + [
            (f"smile={s:g}", render(dirs.apply_directions(directions, ws, {"smile": s})))
            for s in (float(v) for v in args.strengths.split(","))]
        if name == "astronaut":
            former = edits.expression_transfer_codes(generator, ws, target_code(generator, "seed 2"),
                                                     target_code(generator, "seed 3"), 1.0)
            edits_to_judge.append(("former default: + 1.0 (seed 2 - seed 3)", render(former)))
        for edit, image in edits_to_judge:
            lines.append(f"| {name} | {edit} | {judged(image, plain, photo)} |")
            print(lines[-1], flush=True)
    write_results(RESULTS, "Expression: the default edit",
                  f"Machine: {machine_line}. Written by `benchmarks/bench_expression.py` ({zoo.DEFAULT_MODEL}, "
                  f"1024 px; seeds at psi {codes.DEFAULT_PSI}). P(happy): the expression judge; identity: dlib "
                  "distance (< 0.6 = the same person). The tab's default is the simple path, "
                  f"{codes.DEFAULT_EXPRESSION}={codes.DEFAULT_EXPRESSION_EDIT_STRENGTH:g} "
                  "(`codes.DEFAULT_EXPRESSION_EDIT_STRENGTH`), on grace_hopper.", lines)


if __name__ == "__main__":
    main()
