"""What the benchmark scripts share: the machine line written next to every number, FLOP counts,
and interleaved timing (the cases take turns in every round, so a shared machine's changing load
hits all of them alike)."""
from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the scripts run as `python benchmarks/bench_X.py`


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine() -> str:
    """CPU, cores, threads, versions and the load when the numbers were taken."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads; Python {platform.python_version()}; load average {load:.1f} at the start")


def default_generator(threads: Optional[int] = None, inference: bool = True):
    """The set-up the quality benchmarks share, as the app runs: `threads` torch threads (None:
    torch's default), freed memory kept for reuse, autograd off unless the benchmark optimises
    (inversions), and the default model's generator on the CPU. Returns (the machine line, taken
    once the threads are set; the generator)."""
    from stylegan_core.loading import zoo
    from stylegan_core.runtime import heap_reuse

    if threads is not None:
        torch.set_num_threads(threads)
    heap_reuse(True)
    torch.set_grad_enabled(not inference)
    return machine(), zoo.load_model(zoo.DEFAULT_MODEL).generator


def count_flops(fn) -> float:
    """FLOPs of one call of `fn`, as torch.utils.flop_counter counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved_times(cases: dict, rounds: int, verbose: bool = False) -> dict[str, dict[str, float]]:
    """Per case: wall time (min, median over `rounds`) and the user and system CPU time of the
    fastest run (system time is mostly page faults). One warm-up call per case comes first: first
    calls allocate and pick kernels."""
    for fn in cases.values():
        fn()
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for round_index in range(rounds):
        for name, fn in cases.items():
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            fn()
            wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
            runs[name].append((wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
        if verbose:
            print(f"round {round_index + 1}/{rounds} done", flush=True)
    result = {}
    for name, samples in runs.items():
        walls = sorted(sample[0] for sample in samples)
        fastest = min(samples)
        result[name] = {"wall_min": walls[0], "wall_median": statistics.median(walls),
                        "user": fastest[1], "sys": fastest[2]}
    return result


def write_results(path: Path, title: str, preamble: str, lines: list[str]) -> None:
    """A results file: '# title', the preamble (machine, command, what the numbers mean), then the
    table and notes, one string per line."""
    path.write_text("\n".join([f"# {title}", "", preamble, "", *lines, ""]))
    print(f"wrote {path}")


def replace_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` (up to the next '## ' heading) replaced or appended."""
    if heading not in text:
        return text.rstrip("\n") + "\n\n" + section
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[:start] + section + ("" if end < 0 else text[end:])
