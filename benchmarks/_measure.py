"""Small measurement helpers shared by the benchmark scripts (not a benchmark itself: the nox session skips `_*.py`).

* `timed(fn, repeats)`: median wall time of `fn()` after one warm-up call (CUDA synchronised when needed).
* `peak_memory(fn)`: peak memory of one call of `fn()` above what was allocated before it —
  on CUDA `torch.cuda.max_memory_allocated`; on CPU the peak resident set size of a *fresh child process* that runs
  only `fn`: the kernel's high-water mark (VmHWM) is reset just before the call (`/proc/self/clear_refs` = 5) and
  read after it, minus the RSS before it. (ru_maxrss would not do: exec keeps the forking parent's peak in it.)
"""

import argparse
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable

import torch


def parse_mode(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="small sizes (default; what CI runs)")
    group.add_argument("--full", action="store_true", help="the sizes reported in benchmarks/RESULTS.md")
    return parser.parse_args()


def machine() -> str:
    cuda = f", CUDA {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {multiprocessing.cpu_count()} cores "
        f"(torch threads {torch.get_num_threads()}){cuda}, torch {torch.__version__}"
    )


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _child(setup: Callable[[], Callable[[], object]], threads: int, queue) -> None:
    torch.set_num_threads(threads)
    fn = setup()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS high-water mark to the current RSS
    before = _status_bytes("VmRSS")
    fn()
    queue.put(max(0, _status_bytes("VmHWM") - before))


def peak_memory(setup: Callable[[], Callable[[], object]], device: str = "cpu") -> int:
    """Peak bytes of one call of the function that `setup()` returns (setup itself is not counted)."""
    if device == "cuda":
        fn = setup()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    # A fresh interpreter ("spawn"): `setup` must be picklable (a top-level function or a functools.partial of one).
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(setup, torch.get_num_threads(), queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"memory measurement child exited with {process.exitcode}")
    return queue.get()


def megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
