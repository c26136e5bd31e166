"""StyleGAN2 at 1024 px on this CPU (random weights): forward, and forward + backward to W+, batch 1.

Compares, side by side in one process (the machine is shared, so only ratios within a run are
fair), the library's synthesis with a straightforward implementation of the same network (NCHW,
activations scaled before and after every conv, the generic upfirdn2d reference for every FIR
step), plus the library with glibc told to keep freed memory for reuse (see `heap_reuse`) and
under bfloat16 autocast (with the image error it costs). FLOPs are counted with
torch.utils.flop_counter; the library's forward+backward count is higher than the
straightforward one because at 512 and 1024 px it modulates the weights and so also computes
weight gradients (cheaper there than the passes over the activations it saves).
Writes benchmarks/results/stylegan2.md.

    .venv/bin/python benchmarks/bench_stylegan2.py [--rounds 3] [--threads N] [--resolution 1024]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from common import count_flops, interleaved_times, machine
from stylegan_core.models.generator import tile_to
from stylegan_core.ops.upfirdn2d import setup_filter, upfirdn2d_reference
from stylegan_core.runtime import heap_reuse
from stylegan_core.models.stylegan2 import StyleGAN2, StyledConv, ToRGB

RESULTS = Path(__file__).resolve().parent / "results" / "stylegan2.md"


# -- the baseline: a straightforward implementation of the same network ---------------------------------
def straightforward_synthesis(model: StyleGAN2, ws: torch.Tensor) -> torch.Tensor:
    f = setup_filter()
    x = model.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
    img = None
    for layer in model.layers:
        styles = layer.affine(ws[:, layer.rows[0]])
        weight = layer.weight.contiguous()
        if isinstance(layer, ToRGB):
            rgb = F.conv2d(x * (styles * layer.weight_gain)[:, :, None, None], weight, layer.bias)
            img = rgb if img is None else upfirdn2d_reference(img, f, up=2, padding=(2, 1, 2, 1), gain=4.0) + rgb
            continue
        assert isinstance(layer, StyledConv)
        if layer.upsample:
            x = F.conv_transpose2d(x * styles[:, :, None, None], weight.transpose(0, 1), stride=2)
            x = upfirdn2d_reference(x, f, padding=(1, 1, 1, 1), gain=4.0)
        else:
            x = F.conv2d(x * styles[:, :, None, None], weight, padding=1)
        demodulation = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        noise = tile_to(layer.noise_const, x.shape[2], x.shape[3]) * layer.noise_strength
        x = x * demodulation[:, :, None, None] + noise + layer.bias[None, :, None, None]
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return img


# -- measurement ----------------------------------------------------------------------------------------
def forward_fn(synthesis, ws, heap: bool = False, bf16: bool = False):
    def run():
        heap_reuse(heap)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return synthesis(ws)
    return run


def forward_backward_fn(synthesis, ws, heap: bool = False, bf16: bool = False):
    def run():
        heap_reuse(heap)
        codes = ws.detach().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            image = synthesis(codes)
        image.float().square().mean().backward()
        return codes.grad
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = StyleGAN2(resolution=args.resolution).eval().requires_grad_(False)
    with torch.no_grad():  # random but plausible: non-zero noise strengths and biases
        for layer in model.layers:
            layer.bias.normal_(0, 0.1)
            if isinstance(layer, StyledConv):
                layer.noise_strength.fill_(0.1)
    ws = model.mapping(torch.randn(1, model.z_dim))
    library, plain = model.synthesis, (lambda codes: straightforward_synthesis(model, codes))

    with torch.no_grad():
        reference = plain(ws)
        difference = (library(ws) - reference).abs().max().item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_difference = (library(ws).float() - reference).abs().max().item()
    gradient = forward_backward_fn(plain, ws)()
    gradient_difference = ((forward_backward_fn(library, ws)() - gradient).abs().max() / gradient.abs().max()).item()

    cases = {}
    for kind, make in (("forward", forward_fn), ("forward+backward", forward_backward_fn)):
        cases[f"straightforward {kind}"] = make(plain, ws)
        cases[f"library {kind}"] = make(library, ws)
        cases[f"library {kind}, heap reuse"] = make(library, ws, heap=True)
        cases[f"library {kind}, bf16 autocast"] = make(library, ws, bf16=True)
    flops = {name: count_flops(fn) for name, fn in cases.items() if "," not in name}
    times = interleaved_times(cases, args.rounds)
    heap_reuse(False)

    lines = [
        f"# StyleGAN2 {args.resolution} px (config-f channels, random weights), batch 1",
        "",
        f"Machine: {machine()}.",
        f"Interleaved rounds: {args.rounds}; the machine is shared, so compare the rows of one run.",
        f"Library vs straightforward: max abs image difference {difference:.2e} (fp32), "
        f"{bf16_difference:.2e} under bf16 autocast (image range about +-{reference.abs().max().item():.1f}); "
        f"max relative W+ gradient difference {gradient_difference:.2e} (fp32).",
        "",
        f"FLOPs counted (torch.utils.flop_counter): straightforward {flops['straightforward forward'] / 1e9:.1f} / "
        f"{flops['straightforward forward+backward'] / 1e9:.1f} GFLOP, library "
        f"{flops['library forward'] / 1e9:.1f} / {flops['library forward+backward'] / 1e9:.1f} GFLOP "
        "(forward / forward+backward). 'Useful GFLOP/s' divides the straightforward count by the time.",
        "",
        "| case | wall min (s) | wall median (s) | CPU of the fastest run (s) | useful GFLOP/s | speed-up vs straightforward |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in times.items():
        kind = name.split(",")[0].split(" ", 1)[1]
        work = flops[f"straightforward {kind}"]
        speedup = times[f"straightforward {kind}"]["wall_min"] / t["wall_min"]
        lines.append(f"| {name} | {t['wall_min']:.3f} | {t['wall_median']:.3f} | {t['user'] + t['sys']:.3f} | "
                     f"{work / 1e9 / t['wall_min']:.0f} | {speedup:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
