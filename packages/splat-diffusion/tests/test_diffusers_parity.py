"""Our schedules and DDIM against diffusers' `DDIMScheduler` (the reference users compare with): the same alpha_bar
tables, the same DDIM update for x0 predictions (eta 0 and 1, given the same noise), and the same samples from the
same time grid. The mapping of the grids is in the package README ("Against diffusers")."""

import pytest
import torch
from diffusers import DDIMScheduler

from splat_diffusion import Schedule, ddim_step, ddim_timesteps, unrolled_ddim

T = 100  # the paper's number of training steps


def _scheduler(beta_schedule: str = "linear", spacing: str = "trailing") -> DDIMScheduler:
    """diffusers' DDIM for x0 predictions on our default betas (1e-3 .. 0.2 over 100 steps, `Schedule.linear`)."""
    return DDIMScheduler(
        num_train_timesteps=T,
        beta_start=1e-3,
        beta_end=0.2,
        beta_schedule=beta_schedule,
        prediction_type="sample",
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing=spacing,
    )


@pytest.mark.parametrize(
    ("ours", "theirs"), [(Schedule.linear(T), "linear"), (Schedule.cosine(T), "squaredcos_cap_v2")]
)
def test_our_schedules_have_diffusers_alpha_bar_tables(ours: Schedule, theirs: str) -> None:
    reference = _scheduler(theirs).alphas_cumprod.double()  # diffusers builds them in float32
    torch.testing.assert_close(ours.alphas_cumprod, reference, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_a_ddim_step_is_diffusers_step_for_an_x0_prediction(eta: float) -> None:
    scheduler, schedule = _scheduler(), Schedule.linear(T)
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(0)
    for t in scheduler.timesteps.tolist():  # 99, 89, ..., 9; diffusers steps to t - 10 (-1: the clean sample)
        x_t, x0_hat, noise = (torch.randn(2, 3, 4, 4, generator=generator) for _ in range(3))
        theirs = scheduler.step(x0_hat, t, x_t, eta=eta, variance_noise=noise).prev_sample
        ours = ddim_step(schedule, x_t, t, t - 10, x0_hat, eta=eta, noise=noise if eta > 0 else None)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_unrolled_ddim_on_diffusers_time_grid_gives_diffusers_sample() -> None:
    scheduler, schedule = _scheduler(), Schedule.linear(T)
    scheduler.set_timesteps(10)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # any fixed function of (x_t, t)
        return torch.tanh(x) * (1 - t.float().reshape(-1, 1, 1, 1) / T)

    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    theirs = x
    for t in scheduler.timesteps:
        theirs = scheduler.step(denoise(theirs, t.reshape(1).expand(2)), int(t), theirs).prev_sample
    ours = unrolled_ddim(denoise, x, scheduler.timesteps.to(torch.int64), schedule, checkpoint=False).sample
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_our_default_grid_against_diffusers_spacings() -> None:
    """The documented mapping: ours rounds t_start * (S - i) / S; diffusers' "trailing" is the same rule from T
    minus one, "leading" starts at T - T/S and ends at 0."""
    schedule = Schedule.linear(T)
    assert ddim_timesteps(schedule, 10).tolist() == [99, 89, 79, 69, 59, 50, 40, 30, 20, 10]
    trailing, leading = _scheduler(spacing="trailing"), _scheduler(spacing="leading")
    trailing.set_timesteps(10), leading.set_timesteps(10)
    assert trailing.timesteps.tolist() == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    assert leading.timesteps.tolist() == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert (ddim_timesteps(schedule, 10, 100 - 1) - trailing.timesteps).abs().max() <= 1  # within one step
