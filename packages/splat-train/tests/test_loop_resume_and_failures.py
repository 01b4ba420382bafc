"""The shared loop skeleton: it learns, resumes bit-for-bit, and stops cleanly on a non-finite loss."""

import json
import pathlib

import pytest
import torch
from torch import nn
from toy_loop import run as _run

from splat_train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, load_module_state
from splat_train.loop import NonFiniteLossError


def test_loop_decreases_the_loss(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 60)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 60 and records[-1]["loss"] < 0.2 * records[0]["loss"]
    assert {"mse", "grad_norm", "lr", "steps_per_s"} <= set(records[0])


def test_resume_continues_bit_for_bit(tmp_path: pathlib.Path) -> None:
    straight_model, straight_optimizer, straight = _run(tmp_path / "straight", 30)
    _run(tmp_path / "resumed", 16)  # stops at 16 (checkpoint written at exit)
    resumed_model, resumed_optimizer, resumed = _run(tmp_path / "resumed", 30)
    for key, value in straight_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    for key, value in straight.ema.items():
        assert torch.equal(value, resumed.ema[key]), key
    a, b = straight_optimizer.state_dict()["state"], resumed_optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    lines = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines]
    assert steps == sorted(set(steps)), "resumed log must not repeat steps"


def test_resume_after_a_crash_drops_log_lines_past_the_checkpoint(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NonFiniteLossError):
        _run(tmp_path, 30, nan_at=20)  # checkpoints at 7, 14; failure saves step 19; log has lines up to 18
    model, _, result = _run(tmp_path, 30)
    straight_model, _, _ = _run(tmp_path / "straight", 30)
    for key, value in straight_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    assert result.steps == 30


def test_non_finite_loss_stops_with_the_step_and_an_intact_checkpoint(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"toy: loss is nan at step 12 .*stopped.*step_00000011") as error:
        _run(tmp_path, 30, nan_at=12)
    path = latest_checkpoint(tmp_path / "checkpoints" / "toy")
    assert str(path) in str(error.value)
    state = load_checkpoint(path)
    assert state.step == 11 and all(torch.isfinite(v).all() for v in state.model.values())
    # the saved weights are those after 11 good steps
    reference, _, _ = _run(tmp_path / "reference", 11)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, state.model[key]), key


def test_checkpoints_are_atomic_and_pruned(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 30)
    directory = tmp_path / "checkpoints" / "toy"
    (directory / ".step_00000099.safetensors.tmp").write_bytes(b"half-written")
    assert [p.name for p in list_checkpoints(directory)] == ["step_00000028.safetensors", "step_00000030.safetensors"]


def test_loading_a_checkpoint_into_another_architecture_names_the_keys(tmp_path: pathlib.Path) -> None:
    _run(tmp_path, 3)
    state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints" / "toy"))
    other = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 1), nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"missing keys: \[2.bias, 2.weight\].*shape mismatches: \[0.bias"):
        load_module_state(other, state.model, what="model", source="ckpt")
    with pytest.raises(ValueError, match="not a lesson-splats training checkpoint|not a readable"):
        bogus = tmp_path / "bogus.safetensors"
        bogus.write_bytes(b"\x00" * 16)
        load_checkpoint(bogus)
