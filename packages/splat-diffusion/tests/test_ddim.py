import math

import torch
from diffusion_strategies import randn, sample_shapes, schedules, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_diffusion import Schedule, ddim_step, ddim_timesteps, q_sample, unrolled_ddim


def test_ddim_timesteps_of_the_paper_setting() -> None:
    grid = ddim_timesteps(Schedule.linear(100), num_steps=10)
    assert grid.tolist() == [99, 89, 79, 69, 59, 50, 40, 30, 20, 10]
    assert ddim_timesteps(Schedule.linear(100), num_steps=10, t_start=40).tolist() == [
        40,
        36,
        32,
        28,
        24,
        20,
        16,
        12,
        8,
        4,
    ]


@settings(max_examples=60, deadline=None)
@given(schedule=schedules(), data=st.data())
def test_ddim_timesteps_descend_evenly_from_t_start_and_end_above_zero(schedule: Schedule, data: st.DataObject) -> None:
    t_start = data.draw(st.integers(1, schedule.num_train_steps - 1))
    num_steps = data.draw(st.integers(1, t_start))
    grid = ddim_timesteps(schedule, num_steps, t_start)
    assert grid.dtype == torch.int64 and grid.shape == (num_steps,)
    assert grid[0].item() == t_start and grid[-1].item() >= 1
    assert bool((grid[1:] < grid[:-1]).all())
    ideal = t_start * torch.arange(num_steps, 0, -1, dtype=torch.float64) / num_steps
    assert (grid - ideal).abs().max().item() <= 0.5


def test_ddim_timesteps_with_per_sample_t_start_gives_one_grid_per_sample() -> None:
    schedule = Schedule.linear(100)
    starts = torch.tensor([99, 57, 30])
    grids = ddim_timesteps(schedule, 10, starts)
    assert grids.shape == (10, 3)
    for i, start in enumerate(starts.tolist()):
        assert torch.equal(grids[:, i], ddim_timesteps(schedule, 10, start))


@settings(max_examples=40, deadline=None)
@given(
    schedule=schedules(),
    shape=sample_shapes(),
    seed=seeds,
    dtype=st.sampled_from([torch.float64, torch.float32]),
    checkpoint=st.booleans(),
    data=st.data(),
)
def test_ddim_is_exact_with_oracle_denoiser(
    schedule: Schedule, shape: tuple[int, ...], seed: int, dtype: torch.dtype, checkpoint: bool, data: st.DataObject
) -> None:
    """With denoise = the true x0 and eta = 0, every DDIM iterate is the forward sample of the same noise at its
    timestep, and the result is x0, from any start time and with any number of steps."""
    t_start = data.draw(st.integers(1, schedule.num_train_steps - 1))
    num_steps = data.draw(st.integers(1, min(t_start, 12)))
    x0, noise = randn(shape, seed, dtype), randn(shape, seed + 1, dtype)
    timesteps = ddim_timesteps(schedule, num_steps, t_start)
    x_start = q_sample(schedule, x0, t_start, noise)

    trajectory = unrolled_ddim(lambda x, t: x0, x_start, timesteps, schedule, checkpoint=checkpoint)

    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-11}
    assert trajectory.xs.shape == (num_steps + 1, *shape) and trajectory.x0_hats.shape == (num_steps, *shape)
    torch.testing.assert_close(trajectory.sample, x0, **tol)
    assert torch.equal(trajectory.xs[-1], trajectory.sample)
    for i in range(num_steps):
        torch.testing.assert_close(trajectory.xs[i], q_sample(schedule, x0, int(timesteps[i]), noise), **tol)


@settings(max_examples=50, deadline=None)
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, eta=st.floats(0.0, 1.0), data=st.data())
def test_one_ddim_step_equals_the_closed_form(
    schedule: Schedule, shape: tuple[int, ...], seed: int, eta: float, data: st.DataObject
) -> None:
    """Song et al. 2021, eq. 12 and 16, written out with Python floats."""
    t = data.draw(st.integers(0, schedule.num_train_steps - 1))
    t_prev = data.draw(st.integers(-1, t - 1))
    x_t, x0_hat, noise = randn(shape, seed), randn(shape, seed + 1), randn(shape, seed + 2)

    a_t = schedule.alphas_cumprod[t].item()
    a_prev = 1.0 if t_prev < 0 else schedule.alphas_cumprod[t_prev].item()
    eps_hat = (x_t - math.sqrt(a_t) * x0_hat) / math.sqrt(1 - a_t)
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
    expected = math.sqrt(a_prev) * x0_hat + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps_hat + sigma * noise

    got = ddim_step(schedule, x_t, t, t_prev, x0_hat, eta=eta, noise=noise)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, data=st.data())
def test_ddim_step_with_eta_one_is_the_ddpm_posterior(
    schedule: Schedule, shape: tuple[int, ...], seed: int, data: st.DataObject
) -> None:
    """eta = 1 and t_prev = t - 1: mean and variance of q(x_{t-1} | x_t, x0) (Ho et al. 2020, eq. 6-7)."""
    t = data.draw(st.integers(1, schedule.num_train_steps - 1))
    x_t, x0, z = randn(shape, seed), randn(shape, seed + 1), randn(shape, seed + 2)
    beta, a_t, a_prev = (
        schedule.betas[t].item(),
        schedule.alphas_cumprod[t].item(),
        schedule.alphas_cumprod[t - 1].item(),
    )
    mean = math.sqrt(a_prev) * beta / (1 - a_t) * x0 + math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t) * x_t
    variance = (1 - a_prev) / (1 - a_t) * beta

    no_noise = ddim_step(schedule, x_t, t, t - 1, x0, eta=1.0, noise=torch.zeros_like(z))
    with_noise = ddim_step(schedule, x_t, t, t - 1, x0, eta=1.0, noise=z)
    torch.testing.assert_close(no_noise, mean, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(with_noise - no_noise, math.sqrt(variance) * z, rtol=1e-9, atol=1e-9)


def test_ddim_step_to_the_clean_sample_returns_x0_hat_exactly() -> None:
    schedule = Schedule.linear()
    x_t, x0_hat = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(ddim_step(schedule, x_t, 7, -1, x0_hat), x0_hat)
    assert torch.equal(ddim_step(schedule, x_t, torch.tensor([7, 0, 3, 99]), torch.tensor(-1), x0_hat), x0_hat)


@settings(max_examples=25, deadline=None)
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, eta=st.sampled_from([0.0, 0.7]), data=st.data())
def test_ddim_step_with_per_sample_t_equals_one_call_per_sample(
    schedule: Schedule, shape: tuple[int, ...], seed: int, eta: float, data: st.DataObject
) -> None:
    batch, high = shape[0], schedule.num_train_steps - 1
    t = torch.tensor(data.draw(st.lists(st.integers(0, high), min_size=batch, max_size=batch)))
    t_prev = torch.tensor([data.draw(st.integers(-1, int(ti) - 1)) for ti in t])
    x_t, x0_hat, noise = randn(shape, seed), randn(shape, seed + 1), randn(shape, seed + 2)
    batched = ddim_step(schedule, x_t, t, t_prev, x0_hat, eta=eta, noise=noise)
    for i in range(batch):
        one = slice(i, i + 1)
        single = ddim_step(schedule, x_t[one], int(t[i]), int(t_prev[i]), x0_hat[one], eta=eta, noise=noise[one])
        torch.testing.assert_close(batched[one], single, rtol=0, atol=0)


def test_unrolled_ddim_with_per_sample_timesteps_equals_one_run_per_sample() -> None:
    schedule = Schedule.cosine(100)
    x_start = randn((3, 2, 5), 0)
    timesteps = ddim_timesteps(schedule, 6, torch.tensor([99, 40, 25]))

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * (1 + t[:, None, None] / 100)

    together = unrolled_ddim(denoise, x_start, timesteps, schedule)
    for i in range(3):
        alone = unrolled_ddim(denoise, x_start[i : i + 1], timesteps[:, i], schedule)
        torch.testing.assert_close(together.xs[:, i : i + 1], alone.xs, rtol=0, atol=0)
