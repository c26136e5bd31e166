"""MobileStyleGAN FFHQ 1024 on this CPU: forward and forward + backward (gradient w.r.t. W+), batch 1.

Compares, side by side in one process (the machine is shared, so only ratios within a run are
fair), the library's synthesis against a straightforward port of the same layers (NCHW, explicit
modulation passes, generic inverse Haar), and reports achieved GFLOP/s counted with
torch.utils.flop_counter. Writes benchmarks/results/mobile.md.

    .venv/bin/python benchmarks/bench_mobile.py [--rounds 5] [--threads N]
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan_core.generator import tile_to  # noqa: E402
from stylegan_core.mobile_stylegan import (  # noqa: E402
    ConstConv, HaarUpsample, MobileStyleGAN, SeparableConv, ToImage, haar_to_subpixels,
)
from stylegan_core.weights import fetch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mobile.md"


# -- the baseline: a straightforward port (what the library did before it was tuned) ---------------
def _straightforward_haar(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1] // 4
    mix = haar_to_subpixels(c).to(x)
    return F.pixel_shuffle(F.conv2d(x, mix[:, :, None, None]), 2)


def straightforward_synthesis(model: MobileStyleGAN, ws: torch.Tensor) -> torch.Tensor:
    x = model.const.expand(ws.shape[0], -1, -1, -1)
    for layer in model.layers:
        style = layer.affine(ws[:, layer.rows[0]])[:, :, None, None]
        if isinstance(layer, HaarUpsample):
            x = _straightforward_haar(x * style)
            continue
        if isinstance(layer, ToImage):
            return _straightforward_haar(F.conv2d(x * style, layer.weight, layer.bias))
        if isinstance(layer, ConstConv):
            x = F.conv2d(x * style, layer.weight, padding=1)
        elif isinstance(layer, SeparableConv):
            x = F.conv2d(F.conv2d(x * style, layer.weight_dw, padding=1, groups=x.shape[1]), layer.weight_pw)
        noise = tile_to(layer.noise, x.shape[-2], x.shape[-1])
        x = F.leaky_relu(x + noise + layer.bias.view(1, -1, 1, 1), 0.2)
    raise AssertionError("the model has no to_img layer")


# -- measurement ------------------------------------------------------------------------------------
def forward_fn(synthesis, ws):
    def run():
        with torch.no_grad():
            return synthesis(ws)
    return run


def forward_backward_fn(synthesis, ws):
    def run():
        codes = ws.detach().requires_grad_(True)
        synthesis(codes).square().mean().backward()
        return codes.grad
    return run


def count_flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved_times(cases: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Min and median wall and CPU time per case, the cases taking turns in every round."""
    for fn in cases.values():
        fn()
    wall = {name: [] for name in cases}
    cpu = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {
        name: {"wall_min": min(wall[name]), "wall_median": sorted(wall[name])[rounds // 2],
               "cpu_min": min(cpu[name])}
        for name in cases
    }


def machine() -> str:
    model = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    model = model.split(":", 1)[-1].strip() or platform.processor()
    return f"{model}; torch {torch.__version__}; {torch.get_num_threads()} threads"


def load_model() -> MobileStyleGAN:
    names = ["MappingNetwork.xml", "MappingNetwork.bin", "SynthesisNetwork.xml", "SynthesisNetwork.bin"]
    return MobileStyleGAN.from_openvino_ir(*[fetch(f"mobilestylegan-ffhq/{name}") for name in names])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model()
    ws = model.mapping(model.seed_to_z(0), psi=0.7)
    variants = {"library": model.synthesis, "straightforward": lambda codes: straightforward_synthesis(model, codes)}
    with torch.no_grad():
        difference = (variants["library"](ws) - variants["straightforward"](ws)).abs().max().item()

    cases = {}
    for name, synthesis in variants.items():
        cases[f"{name} forward"] = forward_fn(synthesis, ws)
        cases[f"{name} forward+backward"] = forward_backward_fn(synthesis, ws)
    flops = {name: count_flops(fn) for name, fn in cases.items()}
    times = interleaved_times(cases, args.rounds)

    lines = [
        "# MobileStyleGAN FFHQ 1024, batch 1, fp32",
        "",
        f"Machine: {machine()}.",
        f"Interleaved rounds: {args.rounds}; the machine is shared, so compare the rows of one run.",
        f"Library vs straightforward port, max abs image difference: {difference:.2e}.",
        "",
        "| case | GFLOP | wall min (s) | wall median (s) | CPU min (s) | GFLOP/s (wall min) | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in times.items():
        kind = name.split(" ", 1)[1]
        speedup = times[f"straightforward {kind}"]["wall_min"] / t["wall_min"]
        lines.append(
            f"| {name} | {flops[name] / 1e9:.1f} | {t['wall_min']:.3f} | {t['wall_median']:.3f} | "
            f"{t['cpu_min']:.3f} | {flops[name] / 1e9 / t['wall_min']:.0f} | {speedup:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
