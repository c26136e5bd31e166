"""The "StyleGAN of All Trades" features against their plain alternatives, on ffhq-mobile.

  seam:   canvas extension ("uncrop", replicate padding of the 8 px features by half the width on
          each side) against padding the finished image's pixels (replicate, reflect, circular).
          Per boundary between the original canvas and the new part: the pixel step across it
          divided by the 95th percentile of all column steps (<= 1: no visible seam); the detail
          in the new part (mean |horizontal gradient| there / in the original part; pixel
          replicate gives 0, a smear); how much the original part changed (PSNR against the plain
          render); faces dlib finds (1 is right).
  region: mouth transfer between seed pairs: the largest pixel change farther than 5/16 of the
          image from the mask, the share of the image changed by more than 2/255, and the mouth
          shape (inner-lip opening and width in eye distances, dlib) of target, result, reference.
  invert: S space with the Gaussian prior against W+ on the same photo and step budget: PSNR and
          SSIM against the aligned crop, dlib identity distance against the ORIGINAL photo.

Usage: python benchmarks/bench_soat.py [seam] [region] [invert] [--steps N]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import ROOT, machine
from stylegan_core.inversion import align, metrics
from stylegan_core.editing import edits, region_transfer as rt, spatial
from stylegan_core.loading import zoo
from stylegan_core.images import load_image, tensor_to_pil
from stylegan_core.inversion.projector import ProjectorOptions, project

SEEDS = [11, 22, 33, 44]
PAIRS = [(11, 22), (33, 44), (55, 66)]


def column_steps(image: torch.Tensor) -> torch.Tensor:
    return image.clamp(-1, 1).diff(dim=-1).abs().mean(dim=(0, 1, 2))


def detail(image: torch.Tensor) -> float:
    return float(image.clamp(-1, 1).diff(dim=-1).abs().mean())


def faces(image: torch.Tensor) -> int:
    picture = tensor_to_pil(image)
    return len(align.detect_faces(picture.resize((picture.width // 2, picture.height // 2))))


def seam_scores(image: torch.Tensor, plain: torch.Tensor, left: int, width: int) -> dict:
    steps = column_steps(image)
    typical = steps.quantile(0.95)
    new = torch.cat([image[..., :left], image[..., left + width:]], dim=-1)
    original = image[..., left:left + width]
    return {"seam": float(steps[[left - 1, left + width - 1]].max() / typical),
            "detail": detail(new) / detail(original),
            "psnr_original": metrics.psnr(tensor_to_pil(plain), tensor_to_pil(original)),
            "faces": faces(image)}


def bench_seam(generator) -> list[str]:
    pad = spatial.extension_pad(generator, 8, "replicate", left=0.5, right=0.5)
    _, left, _, width = spatial.extension_box(generator, pad, 8)
    rows: dict[str, list[dict]] = {}
    for seed in SEEDS:
        ws = edits.random_codes(generator, [seed], psi=0.7)
        with torch.no_grad():
            plain = generator.synthesis(ws)
        cases = {"features, replicate at 8 px (ours)": spatial.render_spatial(generator, ws, pad, 8),
                 "features, reflect at 8 px": spatial.extend_canvas(generator, ws, 8, "reflect", 0.5, 0.5)}
        for mode in ("replicate", "reflect", "circular"):
            cases[f"image pixels, {mode}"] = F.pad(plain, (left, left, 0, 0), mode=mode)
        for name, image in cases.items():
            rows.setdefault(name, []).append(seam_scores(image, plain, left, width))
        print(f"seam: seed {seed} done", flush=True)
    lines = ["| method | seam step / p95 step (max over boundaries, mean over seeds) | detail of new part / original |"
             " original part PSNR vs plain (dB) | images with exactly one face |", "|---|---|---|---|---|"]
    for name, scores in rows.items():
        mean = {k: np.mean([s[k] for s in scores]) for k in ("seam", "detail", "psnr_original")}
        ones = sum(s["faces"] == 1 for s in scores)
        lines.append(f"| {name} | {mean['seam']:.2f} | {mean['detail']:.2f} | {mean['psnr_original']:.1f} |"
                     f" {ones}/{len(scores)} |")
    return lines


def mouth_shape(image: torch.Tensor) -> np.ndarray:
    points = rt.image_landmarks(tensor_to_pil(image))
    eyes = np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0))
    return np.array([np.linalg.norm(points[66] - points[62]), np.linalg.norm(points[54] - points[48])]) / eyes


def bench_region(generator) -> list[str]:
    lines = ["| target, reference | max change farther than 5/16 image from the mask | share of image changed > 2/255 |"
             " mouth opening: target -> result (reference) | mouth width: target -> result (reference) |",
             "|---|---|---|---|---|"]
    margin = 5 * generator.resolution // 16
    for target_seed, reference_seed in PAIRS:
        codes = edits.random_codes(generator, [target_seed, reference_seed], psi=0.7)
        result = rt.transfer_region(generator, codes[0:1], codes[1:2], "mouth")
        with torch.no_grad():
            target, reference = generator.synthesis(codes[0:1]), generator.synthesis(codes[1:2])
        change = (result.image - target).abs().amax(dim=1)[0]
        support = torch.from_numpy(result.mask > 0).float()[None, None]
        support = F.max_pool2d(support, (1, 2 * margin + 1), stride=1, padding=(0, margin))
        near = F.max_pool2d(support, (2 * margin + 1, 1), stride=1, padding=(margin, 0))[0, 0] > 0
        shapes = [mouth_shape(image) for image in (target, result.image, reference)]
        opening, width = (f"{shapes[0][k]:.3f} -> {shapes[1][k]:.3f} ({shapes[2][k]:.3f})" for k in (0, 1))
        lines.append(f"| {target_seed}, {reference_seed} | {float(change[~near].max()):.1e} |"
                     f" {float((change > 2 / 255).float().mean()):.3f} | {opening} | {width} |")
        print(f"region: pair {target_seed}, {reference_seed} done", flush=True)
    return lines


def bench_invert(generator, steps: int) -> list[str]:
    photo = load_image(ROOT / "benchmarks" / "data" / "grace_hopper.jpg")
    aligned = align.align_face(photo, generator.resolution).image
    lines = [f"| space | steps | PSNR (dB) | SSIM | dlib ID distance to the original photo | time (s) |",
             "|---|---|---|---|---|---|"]
    for space in ("w+", "s"):
        started = time.perf_counter()
        result = project(generator, aligned, ProjectorOptions(space=space, steps=steps, preview_every=0))
        elapsed = time.perf_counter() - started
        pixels = metrics.compute_metrics(aligned, result.image)
        identity = metrics.identity_distance(photo, result.image)
        lines.append(f"| {space} | {steps} | {pixels['psnr']:.2f} | {pixels['ssim']:.4f} | "
                     f"{'no face' if identity is None else f'{identity:.4f}'} | {elapsed:.0f} |")
        result.image.save(Path(tempfile.gettempdir()) / f"bench_soat_{space}.png")  # to look at
        print(f"invert: {space} done", flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["seam", "region", "invert"])
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    generator = zoo.load_model("ffhq-mobile").generator
    print(machine())
    benches = {"seam": lambda: bench_seam(generator), "region": lambda: bench_region(generator),
               "invert": lambda: bench_invert(generator, args.steps)}
    for part in args.parts:
        lines = benches[part]()
        print(f"\n## {part}\n" + "\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
