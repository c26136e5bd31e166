"""Speed and face quality of the edits and feature blends with ffhq-mobile at 1024 px on the CPU.

Prints the numbers and writes benchmarks/results/edits.md. The operations are timed round-robin
(one run of each per round, `--rounds` rounds after a warm-up round) and each reports its median,
so a shared machine's changing load hits all of them alike; 'forwards' divides by the median of
the plain forward of the same rounds. Usage: python benchmarks/bench_edits.py [--rounds 2]
"""
from __future__ import annotations

import argparse

import torch

from common import ROOT, count_flops, interleaved_times, machine
from stylegan_core.editing import edits, feature_blend as fb
from stylegan_core.inversion import metrics
from stylegan_core.loading import zoo
from stylegan_core.models.generator import SynthesisState
from stylegan_core.images import tensor_to_pil
from stylegan_core.runtime import heap_reuse

RESULTS = ROOT / "benchmarks" / "results" / "edits.md"
SEEDS = [11, 22, 33, 44, 55]
PSI = 0.7
REFERENCE = "one generator forward (reference)"
PANORAMA = f"panorama, {len(SEEDS)} codes (horizontal, {len(SEEDS)} W x W)"


class BatchTwoBlendEditor(fb.FeatureBlendEditor):
    """The variant not taken: each blended layer runs once with batch 2 (styles A then B) instead
    of twice with batch 1."""

    def layer(self, index, layer, state, s):
        both = state.map(lambda t: torch.cat([t, t]))
        out = layer(both, torch.cat([s, layer.styles(self.ws_b).expand_as(s)]))
        return SynthesisState(self._split(out.x, both.x, state.x), self._split(out.img, both.img, state.img))

    def _split(self, out, both_in, passed_in):
        if out is None or out is both_in:
            return passed_in
        a, b = out.chunk(2)
        return torch.lerp(a, b, self.alpha(a))


def gflop(function) -> float:
    return count_flops(function) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    machine_line = machine()
    torch.set_grad_enabled(False)
    heap_reuse(True)  # as the app and the CLI run
    generator = zoo.load_model("ffhq-mobile").generator
    codes = edits.random_codes(generator, SEEDS, PSI)
    w1, w2, w3 = codes[0:1], codes[1:2], codes[2:3]

    def blend(editor_class):
        return lambda: generator.synthesis(w1, editor_class(w2, fb.horizontal_ramp))

    operations = {
        REFERENCE: lambda: generator.synthesis(w1),
        "style transfer (crossover at 64 px + render)": lambda: generator.synthesis(edits.crossover_codes(generator, w1, w2)),
        "expression transfer (lambda 1 + render)": lambda: generator.synthesis(
            edits.expression_transfer_codes(generator, w1, w2, w3)),
        "feature blend, horizontal ramp (two batch-1 calls per layer)": blend(fb.FeatureBlendEditor),
        "feature blend, one batch-2 call per layer (variant)": blend(BatchTwoBlendEditor),
        "morph, 4 frames, rendered 1 at a time (default)": lambda: edits.morph_frames(generator, w1, w2, 4),
        "morph, 4 frames, rendered 4 at a time": lambda: edits.morph_frames(generator, w1, w2, 4, batch_size=4),
        "style mixing grid, 2 sources x 1 destination (5 images)": lambda: edits.style_mixing_grid(
            generator, SEEDS[:2], SEEDS[2:3], "coarse", PSI),
        PANORAMA: lambda: fb.render_panorama(generator, codes),
    }
    times = interleaved_times(operations, args.rounds, verbose=True)
    seconds = {name: t["wall_median"] for name, t in times.items()}
    rows = []
    for name, operation in operations.items():
        # A panorama is N - 1 identical pair renders: count one.
        flops = (gflop(lambda: fb.render_panorama(generator, codes[:2])) * (len(SEEDS) - 1) if name == PANORAMA
                 else gflop(operation))
        rows.append((name, seconds[name], seconds[name] / seconds[REFERENCE], flops, flops / seconds[name]))
        print(f"{name}: {seconds[name]:.2f} s ({rows[-1][2]:.2f} forwards), {flops:.1f} GFLOP, "
              f"{rows[-1][4]:.1f} GFLOP/s", flush=True)
    identity = identity_rows(generator, codes, operations["feature blend, horizontal ramp (two batch-1 calls per layer)"]())
    write_report(rows, identity, seam_rows(generator, codes), args.rounds, machine_line)


def seam_rows(generator, codes) -> list[tuple[str, str]]:
    """Steps between neighbouring columns of the panorama at its stitches and at the tile junctions
    of the widened constant and noise maps, against the steps everywhere (no seam: <= 95th percentile)."""
    size, count = generator.resolution, codes.shape[0]
    pairs = list(fb.panorama_pairs(generator, codes))
    stitches = [k * size + size // 2 - 1 for k in range(1, count - 1)]
    junctions = [k * size - 1 for k in range(1, count)]
    found = []
    for label, fade in (("hard cut (no crossfade)", 0), (f"crossfade {round(size / 32)} px (default)", round(size / 32))):
        steps = fb.stitch_pairs(pairs, count, size, fade=fade).clamp(-1, 1).diff(dim=-1).abs().mean(dim=(0, 1, 2))
        found.append((f"{label}: stitches", f"{steps[stitches].mean():.4f}"))
        found.append((f"{label}: tile junctions", f"{steps[junctions].mean():.4f}"))
        found.append((f"{label}: all columns, median / 95th percentile",
                      f"{steps.median():.4f} / {steps.quantile(0.95):.4f}"))
    for name, value in found:
        print(f"seam {name}: {value}", flush=True)
    return found


def identity_rows(generator, codes, blended) -> list[tuple[str, str]]:
    """dlib identity distance (< 0.6: same person) of edits to the image of w1."""
    w1, w2, w3 = codes[0:1], codes[1:2], codes[2:3]
    reference = tensor_to_pil(generator.synthesis(w1))
    reference_descriptor = metrics.face_descriptor(reference)
    middle_rows = edits.mixing_rows(generator, "middle")

    def distance(ws) -> str:
        value = metrics.identity_distance(reference, tensor_to_pil(generator.synthesis(ws)), reference_descriptor)
        return "no face found" if value is None else f"{value:.3f}"

    found = []
    for strength in (0.5, 1.0, 2.0):
        for label, rows in (("all rows", None), ("rows of 16-32 px layers", middle_rows)):
            edited = edits.expression_transfer_codes(generator, w1, w2, w3, strength, rows)
            found.append((f"expression transfer, lambda {strength}, {label}", distance(edited)))
    found.append(("style transfer, content w1, style w2", distance(edits.crossover_codes(generator, w1, w2))))
    found.append(("unrelated person (w2)", distance(w2)))
    value = metrics.identity_distance(reference, tensor_to_pil(blended), reference_descriptor)
    found.append(("feature blend w1 -> w2 (horizontal ramp)", "no face found" if value is None else f"{value:.3f}"))
    for name, value in found:
        print(f"identity {name}: {value}", flush=True)
    return found


def write_report(rows, identity, seams, rounds: int, machine_line: str) -> None:
    lines = [
        "# Edits and feature blends: speed and identity (ffhq-mobile, 1024 px, CPU)",
        "",
        f"Machine: {machine_line}. Written by `benchmarks/bench_edits.py`: medians of {rounds} round-robin",
        "rounds after a warm-up round, one process; 'forwards' = seconds / the reference forward's seconds.",
        "",
        "| operation | seconds | forwards | GFLOP | GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {seconds:.2f} | {ratio:.2f} | {flops:.1f} | {rate:.1f} |" for name, seconds, ratio, flops, rate in rows]
    lines += [
        "",
        "Targets (issue #5): style transfer, expression transfer and a blend each about one or two",
        "forwards; a 5-code panorama <= 15 s. A panorama renders N - 1 pair images, each a blend of twice",
        "the width: about 4 (N - 1) forwards of work. The library runs each blended layer twice with",
        "batch 1; the 'one batch-2 call' blend is the variant it replaced, measured for comparison.",
        "",
        f"Identity: dlib face-recognition distance to the image of w1 (seed {SEEDS[0]}; < 0.6 means the same",
        f"person). w2, w3 are seeds {SEEDS[1]}, {SEEDS[2]} at psi {PSI}: two different people, not the same person",
        "with and without an expression, so w2 - w3 also carries identity: a worst case for expression transfer.",
        "",
        "| edit | identity distance |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in identity]
    lines += [
        "",
        f"Panorama seams ({len(SEEDS)} codes): mean |step| between neighbouring columns of the [-1, 1] image.",
        "No seam: the step at a stitch or tile junction is at most the 95th percentile of all steps.",
        "",
        "| where | mean column step |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in seams]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
