"""Support for apps' end-to-end tests: a run directory's metrics log, and an entry script launched under torchrun
on local CPU processes (gloo), as a user would launch it."""

import json
import os
import subprocess
import sys
from pathlib import Path


def metrics_log(run_dir: Path) -> list[dict]:
    """The records of `<run_dir>/metrics.jsonl`, in order."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def torchrun(script: Path, args: list[str], processes: int = 2, timeout: float = 900) -> subprocess.CompletedProcess:
    """`torchrun --standalone` (a free local rendezvous) of `script args` on `processes` ranks, one thread each."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [*command, str(script), *args], capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )
