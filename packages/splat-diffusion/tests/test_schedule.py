import math

import pytest
import torch
from diffusion_strategies import schedules
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_diffusion import Schedule


@settings(max_examples=40, deadline=None)
@given(schedule=schedules(min_steps=21, max_steps=1000))
def test_betas_in_open_unit_interval_and_alpha_bar_strictly_decreasing(schedule: Schedule) -> None:
    betas, alpha_bar = schedule.betas, schedule.alphas_cumprod
    assert betas.dtype == alpha_bar.dtype == torch.float64
    assert bool(((betas > 0) & (betas < 1)).all())
    assert bool(((alpha_bar > 0) & (alpha_bar < 1)).all())
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all())
    torch.testing.assert_close(alpha_bar, torch.cumprod(1 - betas, 0), rtol=0, atol=0)


@pytest.mark.parametrize("num_train_steps", [50, 100, 250, 1000])
def test_linear_default_scales_reference_betas_by_1000_over_T(num_train_steps: int) -> None:
    schedule = Schedule.linear(num_train_steps)
    scale = 1000 / num_train_steps
    assert math.isclose(schedule.betas[0].item(), 1e-4 * scale, rel_tol=1e-12)
    assert math.isclose(schedule.betas[-1].item(), 0.02 * scale, rel_tol=1e-12)
    steps = torch.diff(schedule.betas)
    torch.testing.assert_close(steps, torch.full_like(steps, steps.mean().item()), rtol=1e-9, atol=1e-15)


def test_linear_default_with_100_steps_spans_the_noise_range_of_the_1000_step_schedule() -> None:
    reference = Schedule.linear(1000, beta_start=1e-4, beta_end=0.02).alphas_cumprod
    ours = Schedule.linear(100).alphas_cumprod
    # Same alpha_bar at the same fraction of the schedule (t = 10k - 1 against 100k - 1) ...
    matched = reference[torch.arange(99, 1000, 100)]
    assert (ours[torch.arange(9, 100, 10)] - matched).abs().max().item() < 0.01
    # ... and the same ends of the noise range: almost clean at t = 0, almost pure noise (sigma ~ 1) at t = T - 1.
    assert ours[0].item() > 0.998 and reference[0].item() > 0.998
    assert ours[-1].item() < 1e-4 and reference[-1].item() < 1e-4
    assert 0.25 < ours[-1].item() / reference[-1].item() < 4


@pytest.mark.parametrize("num_train_steps", [2, 10, 100, 1000])
def test_cosine_matches_nichol_dhariwal_closed_form_and_endpoints(num_train_steps: int) -> None:
    schedule = Schedule.cosine(num_train_steps)
    s = 0.008

    def f(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    alpha_bar = schedule.alphas_cumprod
    # Before the clip at 0.999 (which only the last step reaches), alpha_bar(t) = f((t + 1) / T) / f(0).
    unclipped = int((schedule.betas < 0.999).sum())
    assert unclipped >= num_train_steps - 1
    for t in range(unclipped):
        assert math.isclose(alpha_bar[t].item(), f((t + 1) / num_train_steps) / f(0), rel_tol=1e-9)
    assert schedule.betas[-1].item() == 0.999
    assert alpha_bar[0].item() == pytest.approx(f(1 / num_train_steps) / f(0), rel=1e-12)
    assert alpha_bar[-1].item() <= 1e-3


@settings(max_examples=30, deadline=None)
@given(schedule=schedules(), data=st.data())
def test_accessors_accept_integer_tensors_of_any_shape(schedule: Schedule, data: st.DataObject) -> None:
    shape = data.draw(st.lists(st.integers(1, 3), max_size=3))
    dtype = data.draw(st.sampled_from([torch.int64, torch.int32, torch.int16]))
    t = torch.randint(0, schedule.num_train_steps, shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    alpha_bar, sigma, snr = schedule.alpha_bar(t), schedule.sigma(t), schedule.snr(t)
    assert alpha_bar.shape == sigma.shape == snr.shape == t.shape
    assert alpha_bar.dtype == torch.float64
    torch.testing.assert_close(alpha_bar, schedule.alphas_cumprod[t.long()], rtol=0, atol=0)
    torch.testing.assert_close(alpha_bar + sigma**2, torch.ones_like(alpha_bar), rtol=0, atol=1e-15)
    torch.testing.assert_close(snr, alpha_bar / (1 - alpha_bar), rtol=1e-12, atol=0)
    assert schedule.alpha_bar(t, dtype=torch.float32).dtype == torch.float32
    assert schedule.alpha_bar(3).shape == ()


def test_from_betas_and_to_preserve_the_float64_master_copy() -> None:
    betas = torch.linspace(0.01, 0.2, 30)
    schedule = Schedule.from_betas(betas)
    assert schedule.betas.dtype == torch.float64 and schedule.num_train_steps == 30
    moved = schedule.to("cpu")
    assert torch.equal(moved.alphas_cumprod, schedule.alphas_cumprod)
    assert "num_train_steps=30" in repr(schedule)
