"""StyleGAN3-T and -R on this CPU (random weights, batch 1): forward, and forward + backward to W+.

Counts FLOPs with torch.utils.flop_counter (convolutions and the matrix products of filtered_lrelu)
and reports the achieved GFLOP/s. The cases take turns in every round (benchmarks/common.py), so a
shared machine's load hits them alike. Prints a Markdown table; --write appends it to
benchmarks/results/stylegan3.md.

    .venv/bin/python benchmarks/bench_stylegan3.py [--rounds 2 | 0] [--resolutions 256,1024]
        [--backward-resolutions 256] [--configs T,R] [--threads N] [--write]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import count_flops, interleaved_times, machine
from stylegan_core.models.stylegan3 import CONFIG_R, StyleGAN3

RESULTS = Path(__file__).resolve().parent / "results" / "stylegan3.md"


def published_model(config: str, resolution: int) -> StyleGAN3:
    """The published T / R architecture at `resolution` (R: 1x1 convs, radial filters, 2x channels)."""
    extra = dict(CONFIG_R, channel_base=65536, channel_max=1024) if config == "R" else {}
    torch.manual_seed(0)
    return StyleGAN3(resolution=resolution, **extra).eval().requires_grad_(False)


def forward_fn(model: StyleGAN3, ws: torch.Tensor):
    def run():
        with torch.no_grad():
            model.synthesis(ws)
    return run


def backward_fn(model: StyleGAN3, ws: torch.Tensor):
    def run():
        codes = ws.clone().requires_grad_(True)
        model.synthesis(codes).square().mean().backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved timed rounds after the first call; 0 reports the first call (which "
                             "also counts the FLOPs: one run per case on a slow, shared machine)")
    parser.add_argument("--resolutions", default="256,1024")
    parser.add_argument("--backward-resolutions", default="256",
                        help="forward + backward only at these (1024 needs well over 10 GB here)")
    parser.add_argument("--configs", default="T,R")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write", action="store_true", help=f"append the table to {RESULTS}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backward_at = {int(r) for r in args.backward_resolutions.split(",") if r}
    cases, flops, first_calls = {}, {}, {}
    for resolution in (int(r) for r in args.resolutions.split(",")):
        for config in args.configs.split(","):
            model = published_model(config, resolution)
            ws = model.mapping(torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(1)), psi=0.7)
            kinds = [("forward", forward_fn)] + ([("forward+backward", backward_fn)] if resolution in backward_at else [])
            for kind, make in kinds:
                name = f"StyleGAN3-{config} {resolution} px, {kind}"
                cases[name] = make(model, ws)
                start = time.perf_counter()
                flops[name] = count_flops(cases[name])
                seconds = time.perf_counter() - start
                first_calls[name] = {"wall_min": seconds, "wall_median": seconds}
                print(f"{name}: {flops[name] / 1e9:.1f} GFLOP, first call (counting FLOPs) {seconds:.1f} s", flush=True)
    times = interleaved_times(cases, args.rounds, verbose=True) if args.rounds else first_calls
    lines = [f"Machine: {machine()}", f"Timed: {'first call, counted' if not args.rounds else f'{args.rounds} interleaved rounds'}",
             "", "| case | GFLOP | wall min (s) | wall median (s) | GFLOP/s |", "|---|---|---|---|---|"]
    for name, timing in times.items():
        lines.append(f"| {name} | {flops[name] / 1e9:.1f} | {timing['wall_min']:.2f} | {timing['wall_median']:.2f} | "
                     f"{flops[name] / 1e9 / timing['wall_min']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        with RESULTS.open("a") as handle:
            handle.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
