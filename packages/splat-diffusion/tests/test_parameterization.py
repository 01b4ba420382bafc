import pytest
import torch
from diffusion_strategies import randn, sample_shapes, schedules, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_diffusion import (
    Schedule,
    eps_from_v,
    eps_from_x0,
    from_x0,
    q_sample,
    to_x0,
    v_from_eps,
    v_from_x0,
    x0_denoiser,
    x0_from_eps,
    x0_from_v,
)

settings_ = settings(max_examples=30, deadline=None)


def draw_t(data: st.DataObject, schedule: Schedule, batch: int) -> int | torch.Tensor:
    """Either one timestep for the batch or one per sample."""
    high = schedule.num_train_steps - 1
    if data.draw(st.booleans()):
        return data.draw(st.integers(0, high))
    return torch.tensor(data.draw(st.lists(st.integers(0, high), min_size=batch, max_size=batch)))


@settings_
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, data=st.data())
def test_conversions_are_exact_inverses(
    schedule: Schedule, shape: tuple[int, ...], seed: int, data: st.DataObject
) -> None:
    t = draw_t(data, schedule, shape[0])
    x_t, y = randn(shape, seed), randn(shape, seed + 1)
    tol = {"rtol": 1e-9, "atol": 1e-9}
    torch.testing.assert_close(x0_from_eps(schedule, x_t, t, eps_from_x0(schedule, x_t, t, y)), y, **tol)
    torch.testing.assert_close(eps_from_x0(schedule, x_t, t, x0_from_eps(schedule, x_t, t, y)), y, **tol)
    torch.testing.assert_close(x0_from_v(schedule, x_t, t, v_from_x0(schedule, x_t, t, y)), y, **tol)
    torch.testing.assert_close(v_from_x0(schedule, x_t, t, x0_from_v(schedule, x_t, t, y)), y, **tol)
    torch.testing.assert_close(eps_from_v(schedule, x_t, t, v_from_eps(schedule, x_t, t, y)), y, **tol)
    torch.testing.assert_close(v_from_eps(schedule, x_t, t, eps_from_v(schedule, x_t, t, y)), y, **tol)
    for kind in ("x0", "eps", "v"):
        torch.testing.assert_close(to_x0(schedule, x_t, t, from_x0(schedule, x_t, t, y, kind), kind), y, **tol)


@settings_
@given(schedule=schedules(), shape=sample_shapes(), seed=seeds, data=st.data())
def test_conversions_recover_the_true_noise_and_velocity_of_a_forward_sample(
    schedule: Schedule, shape: tuple[int, ...], seed: int, data: st.DataObject
) -> None:
    t = draw_t(data, schedule, shape[0])
    x0, eps = randn(shape, seed), randn(shape, seed + 1)
    x_t = q_sample(schedule, x0, t, eps)
    a = schedule.alpha_bar(torch.as_tensor(t)).reshape(-1, *([1] * (len(shape) - 1)))
    v = a.sqrt() * eps - (1 - a).sqrt() * x0  # Salimans & Ho 2022, section 4
    tol = {"rtol": 1e-7, "atol": 1e-7}
    torch.testing.assert_close(eps_from_x0(schedule, x_t, t, x0), eps, **tol)
    torch.testing.assert_close(v_from_x0(schedule, x_t, t, x0), v, **tol)
    torch.testing.assert_close(x0_from_v(schedule, x_t, t, v), x0, **tol)
    torch.testing.assert_close(eps_from_v(schedule, x_t, t, v), eps, **tol)


@pytest.mark.parametrize("kind", ["x0", "eps", "v"])
def test_x0_denoiser_adapts_a_perfect_network_of_any_kind_to_the_true_x0(kind: str) -> None:
    schedule = Schedule.cosine(100)
    x0, eps = randn((3, 2, 4), 0), randn((3, 2, 4), 1)
    t = torch.tensor([3, 40, 97])
    x_t = q_sample(schedule, x0, t, eps)

    def network(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return from_x0(schedule, x, t, x0, kind)  # "perfect" network: knows x0

    torch.testing.assert_close(x0_denoiser(network, schedule, kind)(x_t, t), x0, rtol=1e-7, atol=1e-7)


def test_conversions_keep_float32_inputs_in_float32() -> None:
    schedule = Schedule.linear()
    x_t, x0 = torch.randn(2, 3), torch.randn(2, 3)
    assert eps_from_x0(schedule, x_t, 10, x0).dtype == torch.float32
