"""The app as a service: time to serve after `python app.py` (warm caches), and 5 users at once.

Prints the numbers and writes benchmarks/results/app.md. Run it on an idle machine:
    .venv/bin/python benchmarks/bench_app.py
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from gradio_client import Client, handle_file

from common import ROOT as REPO, machine

RESULTS = REPO / "benchmarks" / "results" / "app.md"
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
ALL_RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return process, time.perf_counter() - started
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the app exited during start-up")
            time.sleep(0.1)


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def five_users(url: str) -> dict[str, float]:
    jobs = {
        "generate 2 seeds": ("/generate", ("21, 22", 0.7)),
        "invert 100 steps": ("/invert", (handle_file(str(ASTRONAUT)), "largest face", 100, "w+")),
        "style transfer": ("/style_transfer", ("seed 1", "seed 2", 64)),
        "blend": ("/blend", ("seed 3", "seed 4", "horizontal", 0.5, False, ALL_RESOLUTIONS, None)),
        "panorama 3 codes": ("/panorama", ("seed 5, seed 6, seed 7", "horizontal", 1.0)),
    }
    seconds: dict[str, float] = {}

    def user(name, api_name, args):
        started = time.perf_counter()
        Client(url, verbose=False).predict(*args, api_name=api_name)
        seconds[name] = time.perf_counter() - started

    threads = [threading.Thread(target=user, args=(name, *job)) for name, job in jobs.items()]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds["all five done"] = time.perf_counter() - started
    return seconds


def main() -> None:
    machine_line = machine()
    port = free_port()
    process, serve_s = start_app(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        Client(url, verbose=False).predict("1", 0.7, api_name="/generate")  # the model is loaded
        baseline_mb = peak_memory_mb(process.pid)
        seconds = five_users(url)
        peak_mb = peak_memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    lines = [
        "# The app: start-up and five concurrent users",
        "",
        f"Machine: {machine_line}. Written by `benchmarks/bench_app.py`.",
        "",
        f"- `python app.py` serves HTTP after **{serve_s:.1f} s** (warm caches; the model loads in the background).",
        f"- Peak server memory after the first generate: **{baseline_mb:.0f} MB**; after five concurrent users: "
        f"**{peak_mb:.0f} MB**.",
        "",
        "| five users at once (queue concurrency 2, inversions 1 at a time) | seconds until done |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in seconds.items()],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
