"""What `train` refuses before it touches anything — a run directory another live process trains in, bad options of
any stage — and how a run that diverged or was stopped reports it and carries on."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import toy_app
from rich.console import Console

from splat_apps import commands, train_main
from splat_apps.run_lock import RunDirectoryInUse, run_directory_lock
from splat_train import TrainingStopped

HOLD = """
import sys
from splat_apps.run_lock import run_directory_lock
with run_directory_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_on_a_held_directory_is_refused_naming_the_holder_and_a_dead_holder_frees_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-c", HOLD, str(run_dir)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(RunDirectoryInUse, match=rf"in use: pid {holder.pid} on {socket.gethostname()} since"):
                with run_directory_lock(run_dir):
                    pass
            capsys.readouterr()
            assert train_main(toy_app.APP, "toy", ["--run-dir", str(run_dir), "--threads", "1"]) == 1
            assert f"pid {holder.pid}" in capsys.readouterr().out
            assert not (run_dir / "config.json").exists()  # refused before writing anything
        finally:
            holder.kill()  # like kill -9: no clean-up runs, the kernel drops the lock
    with run_directory_lock(run_dir) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--diffusion.ddim-steps", "0"], "--diffusion.ddim-steps 0: must be >= 1"),
        (["--diffusion.t-star", "500"], "--diffusion.t-star 500: must be in 0..98"),
        (["--multistep.loop.max-steps", "-1"], "--multistep.loop.max-steps -1: must be >= 0"),
        (["--teacher.loop.checkpoint-every", "0"], "--teacher.loop.checkpoint-every 0"),
        (["--bootstrap.loop.log-every", "0"], "--bootstrap.loop.log-every 0"),
        (["--bootstrap.loop.ema-every", "0"], "--bootstrap.loop.ema-every 0"),
        (["--multistep.t-start-max", "5"], "--multistep.t-start-max 5"),
        (["--threads", "0"], "--threads 0: must be >= 1"),
        (["--device", "tpu"], "--device tpu: must be cpu, cuda or cuda:N"),
        (["--eval.t-start", "500"], "--eval.t-start 500: must be in ddim_steps..T - 1 = 10..99"),
        (["--eval.num-samples", "0"], "--eval.num-samples 0: must be >= 1"),
    ],
)
def test_bad_options_of_any_stage_are_refused_before_anything_is_written_or_trained(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], named: str
) -> None:
    run_dir = tmp_path / "run"
    assert train_main(toy_app.APP, "toy", ["--run-dir", str(run_dir), *flags]) == 1
    output = capsys.readouterr().out
    assert named in output and "nothing was written or trained" in output
    assert len(output.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_a_diverged_teacher_names_stage_step_and_rate_and_resumes_with_a_lower_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    common = ["--run-dir", str(run_dir), "--threads", "1", "--stage", "teacher", "--teacher.loop.max-steps", "4"]
    assert train_main(toy_app.APP, "toy", [*common, "--teacher.learning-rate", "1e30"]) == 1
    output = capsys.readouterr().out
    assert "error: teacher:" in output and "at step" in output and "learning rate 1e+30" in output
    assert "lower the learning rate" in output
    assert train_main(toy_app.APP, "toy", [*common, "--teacher.learning-rate", "1e-3"]) == 0
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["stage"] == "teacher"] == [1, 2, 3, 4]
    assert logged[-1]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (TrainingStopped("stopped at teacher step 7; run the same command to resume", signal.SIGTERM), 143, "step 7"),
        (TrainingStopped("stopped at bootstrap step 2; run the same command to resume", signal.SIGUSR1), 138, "step 2"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_stopped_command_prints_one_line_and_exits_with_128_plus_the_signal(
    error: BaseException, status: int, line: str
) -> None:
    console = Console(record=True, width=200)

    def run() -> None:
        raise error

    assert commands.one_line_errors(run, console) == status
    text = console.export_text()
    assert line in text and len(text.strip().splitlines()) == 1
