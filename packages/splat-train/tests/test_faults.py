"""Faults a long run meets, each injected: torn log lines, flipped checkpoint bytes, a full disk, preemption signals,
divergence and bad options. Every one ends in a resumable run or a one-line error that names the file or the option."""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch
from toy_loop import run as _run

from splat_train import checkpoint as checkpoint_module
from splat_train.checkpoint import (
    TrainingState,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from splat_train.loop import LoopConfig, NonFiniteLossError, run_loop

TOY = pathlib.Path(__file__).with_name("toy_loop.py")


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _flip_a_byte(path: pathlib.Path, from_end: int = 9) -> None:
    data = bytearray(path.read_bytes())
    data[-from_end] ^= 0x40  # inside the last tensor's bytes: the file still parses, only the checksum can tell
    path.write_bytes(bytes(data))


def test_a_torn_last_log_line_is_dropped_with_one_warning_and_the_run_resumes(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 14)
    log = tmp_path / "metrics.jsonl"
    with open(log, "a") as handle:
        handle.write('{"stage": "toy", "step": 15, "lo')  # power lost mid-write
    with pytest.warns(RuntimeWarning, match=r"metrics\.jsonl: dropped unreadable line\(s\) \[6\]"):
        model, _, result = _run(tmp_path, 21)
    assert result.steps == 21
    records = [json.loads(line) for line in log.read_text().splitlines()]  # every line parses again
    assert [r["step"] for r in records] == [3, 6, 9, 12, 14, 15, 18, 21]
    straight, _, _ = _run(tmp_path / "straight", 21)
    _assert_same_weights(_weights(straight), _weights(model))


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one_and_is_set_aside(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 14)  # checkpoints at 7 and 14 are kept
    directory = tmp_path / "checkpoints" / "toy"
    newest = list_checkpoints(directory)[-1]
    _flip_a_byte(newest)
    with pytest.raises(ValueError, match=rf"{newest}: checksum mismatch, the file is corrupt"):
        load_checkpoint(newest)
    with pytest.warns(RuntimeWarning, match=rf"{newest}: checksum mismatch.*using .*step_00000007.safetensors"):
        model, _, result = _run(tmp_path, 20)
    assert newest.with_name(newest.name + ".corrupt").is_file() and result.steps == 20
    straight, _, _ = _run(tmp_path / "straight", 20)
    _assert_same_weights(_weights(straight), _weights(model))  # resumed from step 7: the same run


def test_when_every_checkpoint_is_corrupt_resume_refuses_and_renames_nothing(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 14)
    directory = tmp_path / "checkpoints" / "toy"
    for path in list_checkpoints(directory):
        _flip_a_byte(path)
    with pytest.raises(ValueError, match=rf"{directory}: no usable checkpoint .*step_00000014.*step_00000007"):
        latest_good_checkpoint(directory)
    assert len(list_checkpoints(directory)) == 2


def test_a_truncated_checkpoint_is_named_as_unreadable(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 7)
    path = list_checkpoints(tmp_path / "checkpoints" / "toy")[-1]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{path}: not a readable safetensors checkpoint"):
        load_checkpoint(path)


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_intact(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(tmp_path, 7)
    directory = tmp_path / "checkpoints" / "toy"
    before = {p.name: p.read_bytes() for p in list_checkpoints(directory)}
    real_save = checkpoint_module.save_file

    def save_until_the_disk_fills(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as handle:
            handle.truncate(100)  # a half-written file, then the write fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module, "save_file", save_until_the_disk_fills)
    cannot_write = r"step_00000014.safetensors: could not write the checkpoint \(No space"
    with pytest.raises(ValueError, match=cannot_write) as error:
        _run(tmp_path, 14)
    assert "the previous checkpoint" in str(error.value) and "step_00000007" in str(error.value)
    assert "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in list_checkpoints(directory)} == before
    assert sorted(p.name for p in directory.iterdir()) == sorted(before)  # no temporary file left behind
    monkeypatch.setattr(checkpoint_module, "save_file", real_save)
    _, _, result = _run(tmp_path, 14)  # space freed: the same command resumes from step 7
    assert result.steps == 14


def test_temporary_checkpoint_names_are_unique_per_process(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = []
    real_save = checkpoint_module.save_file
    monkeypatch.setattr(
        checkpoint_module, "save_file", lambda t, f, metadata=None: (written.append(f), real_save(t, f, metadata))
    )
    optimizer = {"state": {}, "param_groups": []}
    save_checkpoint(
        tmp_path, TrainingState(step=1, model={"w": torch.zeros(2)}, ema={}, optimizer=optimizer, rng={}, config={})
    )
    assert written and written[0].endswith(f".tmp-{os.getpid()}")


def test_a_checkpoint_without_optimizer_state_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "step_00000003.safetensors"
    save_file({"model.w": torch.zeros(2)}, str(path), metadata={"format": "lesson-splats training checkpoint v1"})
    with pytest.raises(ValueError, match=rf"{path}: incomplete training checkpoint \(no step, config, optimizer"):
        load_checkpoint(path)


def _start_toy(run_dir: pathlib.Path, max_steps: int, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(TOY), str(run_dir), str(max_steps), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_log_lines(path: pathlib.Path, lines: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= lines:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"{path}: fewer than {lines} lines after {timeout} s")


STOPS = {"SIGTERM": 143, "SIGINT": 130, "SIGUSR1": 138}  # SLURM preemption, Ctrl-C, SLURM's --signal


def test_stop_signals_finish_the_step_save_and_the_same_command_resumes_bit_exact(tmp_path: pathlib.Path) -> None:
    runs = {name: tmp_path / name for name in STOPS}
    processes = {name: _start_toy(run_dir, 1000, delay=0.05) for name, run_dir in runs.items()}  # started together
    for name, process in processes.items():
        _wait_for_log_lines(runs[name] / "metrics.jsonl", 1, process)  # step 3 is done: past the first checkpoint
        process.send_signal(getattr(signal, name))
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == STOPS[name], stderr
        assert "Traceback" not in stderr
        stopped_at = load_checkpoint(list_checkpoints(runs[name] / "checkpoints" / "toy")[-1]).step
        assert f"stopped at toy step {stopped_at} on {name}" in stdout and "run the same command to resume" in stdout
        assert 3 <= stopped_at < 1000
        target = stopped_at + 4
        model, _, result = _run(runs[name], target)
        straight, _, _ = _run(tmp_path / f"straight-{name}", target)
        assert result.steps == target
        _assert_same_weights(_weights(straight), _weights(model))


def test_a_huge_learning_rate_reports_stage_step_terms_and_the_last_good_checkpoint(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NonFiniteLossError) as error:
        _run(tmp_path, 200, lr=1e30)
    message = str(error.value)
    assert message.startswith("toy: ") and " at step " in message and "learning rate 1e+30" in message
    assert "The last good checkpoint is " in message and "lower the learning rate" in message
    assert "\n" not in message
    named = pathlib.Path(message.split("The last good checkpoint is ")[1].split(";")[0])
    state = load_checkpoint(named)
    assert all(torch.isfinite(v).all() for v in state.model.values())


class _Empty:
    num_items, batch_size = 0, 4

    def make_batch(self, items, seeds):  # pragma: no cover - never called
        raise AssertionError


def _run_on_nothing(run_dir: pathlib.Path, config: LoopConfig) -> None:
    """`run_loop` of a one-weight model on a batch source with no items."""
    model = torch.nn.Linear(1, 1)
    run_loop(
        stage="toy",
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        batches=_Empty(),
        compute_loss=lambda batch: None,
        config=config,
        run_dir=run_dir,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"checkpoint_every": 0}, r"toy: bad loop config: --toy\.loop\.checkpoint-every 0: must be >= 1"),
        ({"log_every": 0}, r"toy\.loop\.log-every 0: must be >= 1"),
        ({"ema_every": 0}, r"toy\.loop\.ema-every 0: must be >= 1"),
        ({"max_steps": -1}, r"toy\.loop\.max-steps -1: must be >= 0"),
        ({"ema_decay": 1.5}, r"toy\.loop\.ema-decay 1\.5"),
    ],
)
def test_bad_loop_options_are_one_line_errors_before_any_work(
    tmp_path: pathlib.Path, overrides: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        _run_on_nothing(tmp_path, LoopConfig(**{"max_steps": 5, **overrides}))
    assert "\n" not in str(error.value) and not (tmp_path / "metrics.jsonl").exists()


def test_an_empty_split_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match=r"toy: no training items \(an empty split\?\)"):
        _run_on_nothing(tmp_path, LoopConfig(max_steps=5))
