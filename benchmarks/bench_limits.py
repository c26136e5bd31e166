"""Worst-case memory per request: `python app.py` driven through gradio_client with the largest
inputs the limits allow, recording how far each request raises the server's peak RSS.

For each endpoint the server's peak (VmHWM) is reset through /proc/PID/clear_refs, the request
runs, and the new peak minus the resident memory just before it is that request's increase.
Target (issue 11): no request more than 2 GB above the idle level. Prints a table and writes
benchmarks/results/limits.md. Needs the real default model (STYLEGAN_WEIGHTS_DIR):
    .venv/bin/python benchmarks/bench_limits.py [--quick]
"""
from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT as REPO, machine

from stylegan_core.editing import edits, feature_blend  # noqa: E402
from stylegan_core import images, latents  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "limits.md"
TARGET_MB = 2048
ALL_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"the app did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            fields[line.split(":")[0]] = int(line.split()[1]) / 1024
    return fields


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS


# -- worst-case inputs ---------------------------------------------------------------------------
def worst_photos(folder: Path) -> dict[str, Path]:
    """The largest photos the image limits accept: tiny files, huge decodes."""
    side = int(images.MAX_PIXELS ** 0.5) - 1  # just under the pixel limit (decoded RGB: 4 bytes a pixel)
    rgb = np.zeros((side, side, 3), np.uint8)
    rgb[:, :, 0] = np.arange(side, dtype=np.uint32)[None, :] % 251
    paths = {"rgb": folder / "huge_rgb.png", "gray16": folder / "huge_gray16.png", "jpeg": folder / "huge.jpg"}
    Image.fromarray(rgb).save(paths["rgb"], compress_level=1)
    Image.fromarray(rgb).save(paths["jpeg"], quality=70)
    del rgb
    gray = np.full((side, side), 40000, np.uint16)
    Image.fromarray(gray).save(paths["gray16"], compress_level=1)
    return paths


def painted_mask_file(folder: Path) -> Path:
    side = feature_blend.MAX_MASK_SIDE
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[:, side // 2:, 3] = 255  # B on the right half
    path = folder / "mask.png"
    Image.fromarray(rgba, "RGBA").save(path, compress_level=1)
    return path


def library_file(folder: Path, model_name: str, num_ws: int, w_dim: int, count: int) -> Path:
    arrays = {"format": np.array("stylegan_core.library.v1"), "count": np.array(count)}
    rng = np.random.default_rng(0)
    for i in range(count):
        arrays[f"ws_{i}"] = rng.standard_normal((1, num_ws, w_dim)).astype(np.float32)
        arrays[f"name_{i}"] = np.array(f"code {i}")
        arrays[f"model_name_{i}"] = np.array(model_name)
        arrays[f"source_{i}"] = np.array("seed")
    path = folder / f"library_{model_name}_{count}.npz"
    np.savez(path, **arrays)
    return path


def zip_bomb_latent(folder: Path) -> Path:
    """~1 MB on disk, a 1 GiB float32 array inside (the issue's attack)."""
    path = folder / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1, 2**18, 1024)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("ws.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(2**24)
            for _ in range(64):
                member.write(zeros)
        for key, value in (("model_name", "ffhq-mobile"), ("space", "w+")):
            buffer = io.BytesIO()
            np.save(buffer, np.array(value))
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def requests(folder: Path, quick: bool) -> list[tuple[str, str, tuple]]:
    from gradio_client import handle_file

    photos = worst_photos(folder)
    mask = handle_file(str(painted_mask_file(folder)))
    editor = {"background": mask, "layers": [mask], "composite": mask}
    panorama = min(feature_blend.MAX_PANORAMA_CODES, feature_blend.MAX_PANORAMA_SIDE // 1024)  # the model is 1024 px
    seeds = ", ".join(f"seed {i}" for i in range(1, panorama + 1))
    side = edits.MAX_MIXING_SEEDS
    calls = [
        ("import 8 codes of this model (thumbnails)", "/import_library",
         (handle_file(str(library_file(folder, "ffhq-mobile", 23, 512, 8))),)),
        ("generate 16 seeds", "/generate", ("0-15", 0.7)),
        ("detect faces, 100 MP RGB PNG", "/detect_faces", (handle_file(str(photos["rgb"])),)),
        ("detect faces, 100 MP 16-bit PNG", "/detect_faces", (handle_file(str(photos["gray16"])),)),
        ("detect faces, 100 MP JPEG", "/detect_faces", (handle_file(str(photos["jpeg"])),)),
        # without /detect_faces first the API offers only "largest face" (issue 11, item 10)
        ("invert 100 MP PNG (no face in it)", "/invert", (handle_file(str(photos["rgb"])), "largest face", 10, "w+")),
        ("invert a portrait, 10 steps", "/invert",
         (handle_file(str(REPO / "examples" / "astronaut.jpg")), "largest face", 10, "w+")),
        ("restore a 1 GiB-declaring .npz", "/restore_latent", (handle_file(str(zip_bomb_latent(folder))),)),
        # the app's Frames slider stops at 16, and Gradio refuses larger values from the API too
        ("morph 16 frames", "/morph", ("seed 1", "seed 2", 16, "linear W+")),
        ("style transfer", "/style_transfer", ("seed 1", "seed 2", 64)),
        ("expression transfer", "/expression_transfer", ("seed 1", "seed 2", "seed 3", 1.0, 0, -1)),
        (f"style mixing {side} x {side}", "/style_mixing",
         (f"1-{side}", f"{side + 1}-{2 * side}", "coarse", 0.7)),
        ("blend, painted 4096 px mask", "/blend",
         ("seed 1", "seed 2", "painted", 0.5, True, ALL_RESOLUTIONS, editor)),
        (f"panorama {panorama} codes", "/panorama", (seeds, "horizontal", 1.0)),
    ]
    calls.append(("import 64 codes of max shape (other model)", "/import_library",
                  (handle_file(str(library_file(folder, "other", latents.MAX_NUM_WS, latents.MAX_W_DIM, 64))),)))
    # the library that the 64-code import filled (same session): export and list it
    calls += [("export a full library", "/export_library", ()), ("list a full library", "/list_codes", ())]
    if quick:  # a smoke run of the bench itself
        calls = [(n, a, x) for n, a, x in calls if a in ("/generate", "/restore_latent", "/style_transfer")]
    return calls


def run(quick: bool) -> list[dict]:
    from gradio_client import Client

    folder = Path(tempfile.mkdtemp(prefix="bench_limits_"))
    port = free_port()
    process = start_app(port, folder / "server.log")
    try:
        url = f"http://127.0.0.1:{port}/"
        Client(url, verbose=False).predict("1", 0.7, api_name="/generate")  # wait for the model (warm-up)
        calls = requests(folder, quick)
        idle = memory_mb(process.pid)["VmRSS"]
        rows = []
        for name, api, args in calls:
            if api not in ("/export_library", "/list_codes"):
                client = Client(url, verbose=False)  # a new session: an empty library for each request
            before = memory_mb(process.pid)["VmRSS"]
            reset_peak(process.pid)
            started = time.perf_counter()
            try:
                client.predict(*args, api_name=api)
                outcome = "ok"
            except Exception as error:  # noqa: BLE001 - a refusal is a result too
                outcome = f"refused: {str(error).splitlines()[0][:90]}"
            seconds = time.perf_counter() - started
            after = memory_mb(process.pid)
            row = {"request": name, "api": api, "seconds": seconds, "retained": after["VmRSS"] - before,
                   "increase": after["VmHWM"] - before, "above_idle": after["VmHWM"] - idle, "outcome": outcome}
            rows.append(row)
            print(f"{name:45s} {api:20s} {seconds:7.1f} s  +{row['increase']:7.0f} MB  "
                  f"(peak {row['above_idle']:6.0f} MB above idle)  {outcome}", flush=True)
        return rows
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def budgets() -> list[tuple[str, float]]:
    """edits.worst_case_bytes for the default model, with S measured on it (one synthesis)."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from peak_memory import peak_tensor_bytes
    from stylegan_core.loading import zoo

    generator = zoo.load_model(zoo.DEFAULT_MODEL, device="cpu").generator
    ws = edits.random_codes(generator, [1], 0.7)
    with torch.no_grad():
        synthesis = peak_tensor_bytes(lambda: generator.synthesis(ws))
    rows = [("one synthesis (S)", synthesis / 2**20)]
    for name in ("render_codes", "morph_frames", "style_mixing_grid", "feature_blend", "render_panorama"):
        rows.append((name, edits.worst_case_bytes(name, synthesis, generator.resolution) / 2**20))
    for name, mb in rows:
        print(f"budget {name:20s} {mb:8.0f} MB", flush=True)
    return rows


def write(rows: list[dict], budget_rows: list[tuple[str, float]]) -> None:
    worst = max(rows, key=lambda row: row["above_idle"])
    lines = [
        "# Worst-case memory per request (benchmarks/bench_limits.py)",
        "",
        f"Machine: {machine()}. Under contention from other jobs on the machine: times are only indicative.",
        "",
        "`python app.py` with the default model, driven through gradio_client with the largest inputs the",
        "limits allow. Per request: the server's peak RSS (VmHWM, reset before each request) minus its",
        f"RSS just before it, and the peak above the idle level after warm-up. Target: < {TARGET_MB} MB.",
        "\"Kept after\" is RSS after minus before: the allocator keeps freed pages for the next request",
        "(`runtime.heap_reuse`), so the process grows to a plateau and \"above idle\" accumulates over the run.",
        "",
        "| request | API | time (s) | peak increase (MB) | kept after (MB) | peak above idle (MB) | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['request']} | `{row['api']}` | {row['seconds']:.1f} | {row['increase']:.0f} | "
                     f"{row['retained']:.0f} | {row['above_idle']:.0f} | {row['outcome']} |")
    lines += ["", f"Worst: {worst['request']} at {worst['above_idle']:.0f} MB above idle "
              f"({'within' if worst['above_idle'] < TARGET_MB else 'OVER'} the {TARGET_MB} MB target).", "",
              "## The library's budgets for this model", "",
              "`edits.worst_case_bytes` (tensors and arrays an operation holds at its limits; checked on tiny",
              "models by tests/test_limits.py) evaluated with S, the peak tensor bytes of one synthesis of the",
              f"default model measured here. They exclude the app's own copies (PNG encoding, Gradio).", "",
              "| operation | budget (MB) |", "|---|---|"]
    lines += [f"| {name} | {mb:.0f} |" for name, mb in budget_rows] + [""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three cheap requests only (checks the script)")
    args = parser.parse_args()
    rows = run(args.quick)
    if not args.quick:
        write(rows, budgets())


if __name__ == "__main__":
    main()
