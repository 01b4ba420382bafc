import math

import torch
from diffusion_strategies import randn, sample_shapes, schedules, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_diffusion import Schedule, q_sample, sample_timesteps, sdedit_start

Z = 5.0  # two-sided 5-sigma bounds: a false failure has probability ~6e-7 per checked statistic


@settings(max_examples=20, deadline=None)
@given(schedule=schedules(), data=st.data())
def test_q_sample_mean_and_variance_match_the_closed_form(schedule: Schedule, data: st.DataObject) -> None:
    t = data.draw(st.integers(0, schedule.num_train_steps - 1))
    x0_values = torch.tensor(data.draw(st.lists(st.floats(-3, 3), min_size=1, max_size=4)), dtype=torch.float64)
    n = 20_000
    x0 = x0_values.expand(n, -1).contiguous()
    noise = randn(tuple(x0.shape), seed=0)  # fixed seed: the test is deterministic
    x_t = q_sample(schedule, x0, t, noise)

    a = schedule.alphas_cumprod[t].item()
    mean, var = math.sqrt(a) * x0_values, 1 - a
    # Standard errors from the sample size: of the mean sqrt(var / n), of the sample variance var * sqrt(2 / (n - 1)).
    assert ((x_t.mean(0) - mean).abs() <= Z * math.sqrt(var / n)).all()
    assert ((x_t.var(0) - var).abs() <= Z * var * math.sqrt(2 / (n - 1))).all()


@settings(max_examples=25, deadline=None)
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, data=st.data())
def test_q_sample_with_per_sample_t_equals_one_call_per_sample(
    schedule: Schedule, shape: tuple[int, ...], seed: int, data: st.DataObject
) -> None:
    t = torch.tensor(
        data.draw(st.lists(st.integers(0, schedule.num_train_steps - 1), min_size=shape[0], max_size=shape[0]))
    )
    x0, noise = randn(shape, seed), randn(shape, seed + 1)
    batched = q_sample(schedule, x0, t, noise)
    for i in range(shape[0]):
        single = q_sample(schedule, x0[i : i + 1], int(t[i]), noise[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], single, rtol=0, atol=0)


def test_q_sample_computes_in_the_data_dtype_and_keeps_gradients() -> None:
    schedule = Schedule.linear()
    x0 = torch.randn(2, 3, dtype=torch.float32, requires_grad=True)
    x_t = q_sample(schedule, x0, torch.tensor([5, 50]), torch.randn(2, 3))
    assert x_t.dtype == torch.float32
    x_t.sum().backward()
    expected = schedule.alpha_bar(torch.tensor([5, 50])).sqrt().float()[:, None].expand(2, 3)
    torch.testing.assert_close(x0.grad, expected)


def test_sdedit_start_is_the_teacher_prediction_noised_to_t_start() -> None:
    schedule = Schedule.linear(100)
    teacher, noise = randn((3, 5), 1), randn((3, 5), 2)
    start = sdedit_start(schedule, teacher, 60, noise)
    a = schedule.alphas_cumprod[60]
    torch.testing.assert_close(start, a.sqrt() * teacher + (1 - a).sqrt() * noise)


def test_sample_timesteps_covers_low_to_high_inclusive_and_is_reproducible() -> None:
    schedule = Schedule.linear(100)
    t = sample_timesteps(schedule, 4000, low=20, high=29, generator=torch.Generator().manual_seed(3))
    assert t.dtype == torch.int64 and t.shape == (4000,)
    assert set(t.tolist()) == set(range(20, 30))
    again = sample_timesteps(schedule, 4000, low=20, high=29, generator=torch.Generator().manual_seed(3))
    assert torch.equal(t, again)
    full = sample_timesteps(schedule, 5000, generator=torch.Generator().manual_seed(4))
    assert full.min().item() == 0 and full.max().item() == 99
