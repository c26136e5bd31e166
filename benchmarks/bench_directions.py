"""Edit quality of the attribute directions (ffhq-mobile) on held-out seeds, and the preview time.

For each direction at -3, -1, +1, +3 (slider units): the change of its target judge, of the other
judges, the dlib identity distance to the unedited face and whether exactly one face is found.
Seeds 0..N-1 at psi 0.7: never used to fit (fitting uses seeds >= 1,000,000, probes 999,000+).
Writes benchmarks/results/directions.md.  `python benchmarks/bench_directions.py [--seeds 10]`
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from common import ROOT, machine

from stylegan_core.editing import directions as D
from stylegan_core import judges
from stylegan_core.inversion import metrics
from stylegan_core.images import tensor_to_pil
from stylegan_core.runtime import heap_reuse
from stylegan_core.loading.zoo import load_model

VALUES = (-3.0, -1.0, 1.0, 3.0)
TARGETS = {"age": "age", "gender": "gender", "smile": "expr_happy", "yaw": "yaw"}
SHOWN = ("age", "gender", "expr_happy", "yaw", "pitch", "mouth_openness", "eye_openness")


def attribute(name: str) -> str:
    """'age_c' -> 'age': the attribute a (conditional or style-channel) direction edits."""
    return name.split("_")[0]


def measure_seed(generator, found, names, seed, rows, base):
    """Adds one held-out face to rows {(name, value): [per-face dicts]} and base {seed: (judges, descriptor)}."""
    with torch.no_grad():
        ws = generator.mapping(generator.seed_to_z(seed), psi=0.7)
    image = D.render(generator, ws)[0]
    base[seed] = (judges.judge_or_none(image), metrics.face_descriptor(image))
    for name in names:
        for value in VALUES:
            edited = tensor_to_pil(D.render_edit(generator, found, ws, {name: value}))
            verdict = judges.judge_or_none(edited)
            identity = metrics.identity_distance(image, edited, reference_descriptor=base[seed][1])
            rows.setdefault((name, value), []).append(dict(seed=seed, judges=verdict, identity=identity))


def mean_change(rows, base, judge):
    changes = [r["judges"][judge] - base[r["seed"]][0][judge] for r in rows
               if r["judges"] is not None and base[r["seed"]][0] is not None]
    return statistics.mean(changes) if changes else float("nan")


def table(rows, base, names):
    lines = ["| direction | value | target change | " + " | ".join(f"d {j}" for j in SHOWN)
             + " | identity | one face |", "|---" * (5 + len(SHOWN)) + "|"]
    for name in names:
        target = TARGETS[attribute(name)]
        for value in VALUES:
            r = rows[(name, value)]
            ids = [x["identity"] for x in r if x["identity"] is not None]
            one = sum(1 for x in r if x["judges"] is not None and x["judges"]["faces"] == 1) / len(r)
            cells = [f"{mean_change(r, base, j):+.3g}" for j in SHOWN]
            lines.append(f"| {name} | {value:+g} | {mean_change(r, base, target):+.3g} | " + " | ".join(cells)
                         + f" | {statistics.mean(ids) if ids else float('nan'):.3f} | {one:.0%} |")
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


def targets(rows, base, names):
    lines = ["| direction | -3 -> +3 | target | met | identity at +-1 |", "|---|---|---|---|---|"]
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
        lines.append(f"| {name} | {shown} | {text}" + (", identity < 0.5" if need_id else "")
                     + f" | {'yes' if met else 'NO'} | {identity:.3f} |")
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=3600.0, help="stop adding seeds after this long")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heap_reuse(True)
    machine_line = machine()
    generator = load_model("ffhq-mobile").generator
    found = D.load_directions("ffhq-mobile")
    # age_s and gender_s moved their judges by only +0.5 years and +0.01 per unit on the probe faces
    # (manifest): measured there, left out here to spend the machine's time on more faces
    names = [n for n in ("age", "age_c", "gender", "gender_c", "smile", "smile_c", "smile_s", "yaw", "yaw_c", "yaw_s")
             if n in found.directions]
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
        out.write_text(report(machine_line, found, names, rows, base, done, time.monotonic() - started, preview))
        raw = {"base": {s: b[0] for s, b in base.items()},
               "rows": [dict(name=n, value=v, **r) for (n, v), rs in rows.items() for r in rs]}
        (ROOT / "benchmarks" / "out").mkdir(exist_ok=True)
        (ROOT / "benchmarks" / "out" / "directions_raw.json").write_text(json.dumps(raw))
        print(f"seed {seed} done after {time.monotonic() - started:.0f} s", flush=True)
    print(out.read_text())


if __name__ == "__main__":
    main()
