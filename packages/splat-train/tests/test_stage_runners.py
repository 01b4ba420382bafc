"""The three stage runners on a fixed tiny batch: they learn, stage 2 backpropagates through every DDIM step,
and a stage resumes bit-for-bit."""

import dataclasses
import json
import math
import pathlib

import pytest
import torch
import train_fixtures as F

from splat_train.loop import LoopConfig, NonFiniteLossError
from splat_train.sharding import STREAM_TIMESTEP, per_sample_timesteps
from splat_train.stages import (
    BootstrapConfig,
    DiffusionConfig,
    MultistepConfig,
    TeacherStageConfig,
    bootstrap,
    bootstrap_loss,
    learning_rate_decay,
    multistep,
    multistep_loss,
    train_teacher,
)
from splat_train.student import map_statistics

BATCH = F.batch([0, 1], angles=(0.0, 50.0))
WHITE = (1.0, 1.0, 1.0)
SHARED = {"diffusion": DiffusionConfig(), "background": WHITE}


def _loop(steps: int, **overrides) -> LoopConfig:
    return LoopConfig(max_steps=steps, log_every=1, progress=False, ema_start=0, **overrides)


def _losses(run_dir: pathlib.Path, stage: str, key: str = "loss") -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)[key] for line in lines if json.loads(line)["stage"] == stage]


def _student(teacher):
    student = F.tiny_student(teacher)
    with torch.no_grad():
        maps = teacher.eval()(BATCH.source_images, BATCH.source_cameras).gaussian_map
    student.set_normalizer(*map_statistics([maps]))
    return student


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_teacher_stage_decreases_its_loss(tmp_path: pathlib.Path) -> None:
    teacher = F.tiny_teacher()
    config = TeacherStageConfig(loop=_loop(25), learning_rate=3e-3)
    train_teacher(teacher, F.FixedBatches(BATCH), config, tmp_path, background=WHITE)
    losses = _losses(tmp_path, "teacher")
    assert len(losses) == 25 and _mean(losses[-3:]) < 0.7 * _mean(losses[:3])


def test_bootstrap_stage_decreases_its_loss(tmp_path: pathlib.Path) -> None:
    teacher = F.tiny_teacher()
    config = BootstrapConfig(loop=_loop(25), learning_rate=2e-3)
    bootstrap(_student(teacher), teacher, F.FixedBatches(BATCH), config, tmp_path, **SHARED)
    maps = _losses(tmp_path, "bootstrap", "map")
    assert _mean(maps[-5:]) < 0.7 * _mean(maps[:5])


def test_multistep_stage_decreases_its_loss(tmp_path: pathlib.Path) -> None:
    teacher = F.tiny_teacher()
    config = MultistepConfig(loop=_loop(12), learning_rate=1e-3)
    diffusion = DiffusionConfig(ddim_steps=4)
    multistep(
        _student(teacher), teacher, F.FixedBatches(BATCH), config, tmp_path, diffusion=diffusion, background=WHITE
    )
    losses = _losses(tmp_path, "multistep", "image")
    assert _mean(losses[-3:]) < _mean(losses[:3])


class _CountBackward(torch.autograd.Function):
    """Identity whose backward counts how many denoiser outputs the gradient passes through."""

    calls = 0

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        _CountBackward.calls += 1
        return grad


def _multistep_gradients(student, teacher, checkpoint: bool) -> tuple[list[torch.Tensor], int]:
    config = MultistepConfig(render_steps="final", cycle_weight=0.0, checkpoint_steps=checkpoint)
    _CountBackward.calls = 0
    handle = student.network.register_forward_hook(lambda module, args, output: _CountBackward.apply(output))
    try:
        diffusion = DiffusionConfig()
        batch = BATCH.with_seeds([0, 1])
        output = multistep_loss(
            student, teacher, diffusion.make_schedule(), batch, config, diffusion=diffusion, background=WHITE
        )
        grads = torch.autograd.grad(output.loss, list(student.parameters()))
    finally:
        handle.remove()
    return list(grads), _CountBackward.calls


def test_multistep_gradients_flow_through_all_ten_ddim_steps_with_and_without_checkpointing() -> None:
    teacher = F.tiny_teacher().eval().requires_grad_(False)
    student = _student(teacher)
    checkpointed, calls_checkpointed = _multistep_gradients(student, teacher, checkpoint=True)
    unrolled, calls_unrolled = _multistep_gradients(student, teacher, checkpoint=False)
    # a loss on the final sample alone backpropagates through the denoiser of every one of the 10 steps
    assert calls_unrolled == 10 and calls_checkpointed == 10
    for a, b in zip(checkpointed, unrolled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in checkpointed) > 0


def test_bootstrap_resumes_bit_for_bit(tmp_path: pathlib.Path) -> None:
    def run(run_dir: pathlib.Path, steps: int):
        teacher = F.tiny_teacher()
        student = _student(teacher)
        config = BootstrapConfig(loop=_loop(steps, checkpoint_every=100), learning_rate=1e-3)
        bootstrap(student, teacher, F.FixedBatches(BATCH), config, run_dir, **SHARED)
        return student

    straight = run(tmp_path / "straight", 6)
    run(tmp_path / "resumed", 3)
    resumed = run(tmp_path / "resumed", 6)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_nan_in_the_data_stops_the_stage_with_the_step_and_checkpoint(tmp_path: pathlib.Path) -> None:
    teacher = F.tiny_teacher()
    broken = dataclasses.replace(BATCH, target_images=BATCH.target_images * torch.nan)
    source = F.FixedBatches(BATCH, replacements={2: broken})
    config = TeacherStageConfig(loop=_loop(5), learning_rate=1e-3)
    expected = r"teacher: loss is nan at step 3 .*step_00000002.*NaN/Inf in target_images \(batch positions \[0, 1\]\)"
    with pytest.raises(NonFiniteLossError, match=expected):
        train_teacher(teacher, source, config, tmp_path, background=WHITE)


def test_the_stage_losses_refuse_a_batch_without_per_sample_seeds() -> None:
    teacher = F.tiny_teacher().eval().requires_grad_(False)
    diffusion = DiffusionConfig()
    with pytest.raises(ValueError, match="per-sample seeds"):
        bootstrap_loss(
            _student(teacher), teacher, diffusion.make_schedule(), BATCH, BootstrapConfig(), t_star=20, background=WHITE
        )


def test_cosine_lr_decay_anneals_each_step_from_the_stage_learning_rate_to_zero(tmp_path: pathlib.Path) -> None:
    teacher = F.tiny_teacher()
    config = TeacherStageConfig(loop=_loop(6), learning_rate=1e-3, lr_decay="cosine")
    train_teacher(teacher, F.FixedBatches(BATCH), config, tmp_path, background=WHITE)
    logged = _losses(tmp_path, "teacher", "lr")  # logged after step s + 1 with the rate that step s used
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)]
    assert logged == pytest.approx(expected, rel=1e-9)


def test_warmup_ramps_the_learning_rate_linearly_then_hands_over_to_the_decay() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    before_step = learning_rate_decay(optimizer, "cosine", 10, warmup_steps=4)
    rates = []
    for step in range(10):
        before_step(step)
        rates.append(optimizer.param_groups[0]["lr"])
    cosine = [1e-3 * 0.5 * (1 + math.cos(math.pi * step / 10)) for step in range(10)]
    expected = [rate * min(1.0, (step + 1) / 4) for step, rate in enumerate(cosine)]
    assert rates == pytest.approx(expected, rel=1e-12) and rates[0] == pytest.approx(cosine[0] / 4)


def test_multistep_starts_are_drawn_between_t_star_and_t_start_max() -> None:
    schedule = DiffusionConfig().make_schedule()
    starts = per_sample_timesteps(schedule, torch.arange(200), STREAM_TIMESTEP, low=21, high=30)
    assert int(starts.min()) == 21 and int(starts.max()) == 30


def test_a_stage_2_map_weight_adds_its_weighted_map_term_and_changes_nothing_else() -> None:
    teacher = F.tiny_teacher().eval().requires_grad_(False)
    student = _student(teacher)
    diffusion = dataclasses.replace(DiffusionConfig(), ddim_steps=3)
    batch = BATCH.with_seeds([0, 1])

    def loss(map_weight: float):
        config = MultistepConfig(loop=_loop(1), cycle_weight=0.0, map_weight=map_weight)
        return multistep_loss(
            student, teacher, diffusion.make_schedule(), batch, config, diffusion=diffusion, background=WHITE
        )

    plain, kept = loss(0.0), loss(0.5)
    assert "map" not in plain.terms and kept.terms["map"] > 0
    assert kept.terms["image"] == plain.terms["image"]  # the same trajectory
    assert float((kept.loss - plain.loss).detach()) == pytest.approx(0.5 * kept.terms["map"], rel=1e-5)
    assert MultistepConfig(map_weight=-1.0).problems()  # a negative weight is a bad option
