"""Panorama smoothing: does sigma change who the people in the panorama are?

A panorama of seeds (psi 0.7, ffhq-mobile, 1024 px) is grown at each sigma; the person at each
position (the W-wide window where its code sits) is compared with that seed's own render by dlib
identity distance (< 0.6: the same person). Prints a table and writes
benchmarks/results/panorama_sigma.md.
Usage: python benchmarks/bench_panorama_sigma.py [--seeds 1,2,3,4,5] [--sigmas 0,0.5,1]
"""
from __future__ import annotations

import argparse


from common import ROOT, default_generator, write_results
from stylegan_core import codes
from stylegan_core.editing import feature_blend as fb
from stylegan_core.images import tensor_to_pil
from stylegan_core.inversion import metrics
from stylegan_core.loading import zoo

RESULTS = ROOT / "benchmarks" / "results" / "panorama_sigma.md"


def distances(generator, seeds: list[int], sigma: float) -> list:
    """Identity distance of each person in the panorama to the render of its own seed."""
    own = [tensor_to_pil(generator.synthesis(codes.random_codes(generator, [seed], codes.DEFAULT_PSI)))
           for seed in seeds]
    path = fb.smoothed_random_codes(generator, seeds, sigma, codes.DEFAULT_PSI)
    panorama = tensor_to_pil(fb.render_panorama(generator, path))
    size = generator.resolution
    people = [panorama.crop((i * size, 0, (i + 1) * size, size)) for i in range(len(seeds))]
    return [metrics.identity_distance(reference, person) for reference, person in zip(own, people)]


def cell(value) -> str:
    return "no face" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--sigmas", default="0,0.5,1")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    machine_line, generator = default_generator()
    header = "| sigma | " + " | ".join(f"seed {s}" for s in seeds) + " | middle people kept (< 0.6) |"
    lines = [header, "|---" * (len(seeds) + 2) + "|"]
    print(header)
    for sigma in (float(s) for s in args.sigmas.split(",")):
        found = distances(generator, seeds, sigma)
        middle = found[1:-1]
        kept = sum(1 for d in middle if d is not None and d < metrics.SAME_PERSON_THRESHOLD)
        lines.append(f"| {sigma:g} | " + " | ".join(cell(d) for d in found) + f" | {kept} of {len(middle)} |")
        print(lines[-1], flush=True)
    write_results(RESULTS, "Panorama: smoothing and identity",
                  f"Machine: {machine_line}. Written by `benchmarks/bench_panorama_sigma.py` ({zoo.DEFAULT_MODEL}, "
                  f"1024 px, psi {codes.DEFAULT_PSI}). Each cell: dlib identity distance of the person at that "
                  "position of the panorama to the render of its own seed (< 0.6 = the same person). The app's "
                  f"default sigma is {codes.DEFAULT_SMOOTHING_SIGMA:g} (`codes.DEFAULT_SMOOTHING_SIGMA`).", lines)


if __name__ == "__main__":
    main()
