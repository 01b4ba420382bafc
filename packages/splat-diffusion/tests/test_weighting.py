import pytest
import torch
from diffusion_strategies import schedules
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_diffusion import DEFAULT_WEIGHTING, Schedule, ddim_timesteps, timestep_weights

KINDS = ["uniform", "snr", "min_snr", "truncated_snr", "linear"]


@settings(max_examples=30, deadline=None)
@given(schedule=schedules(), data=st.data())
def test_each_kind_matches_its_formula(schedule: Schedule, data: st.DataObject) -> None:
    high = schedule.num_train_steps - 1
    t = torch.tensor(data.draw(st.lists(st.integers(0, high), min_size=1, max_size=8)))
    snr = schedule.alphas_cumprod[t] / (1 - schedule.alphas_cumprod[t])
    expected = {
        "uniform": torch.ones_like(snr),
        "snr": snr,
        "min_snr": torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)),
        "truncated_snr": torch.maximum(snr, torch.tensor(1.0, dtype=torch.float64)),
        "linear": 1 - t.double() / schedule.num_train_steps,
    }
    for kind in KINDS:
        weights = timestep_weights(schedule, t, kind, dtype=torch.float64)
        torch.testing.assert_close(weights, expected[kind], rtol=1e-12, atol=0, msg=kind)


@pytest.mark.parametrize("schedule", [Schedule.linear(100), Schedule.cosine(100)], ids=["linear", "cosine"])
@pytest.mark.parametrize("kind", KINDS)
def test_weights_are_positive_and_never_favour_noisier_steps(schedule: Schedule, kind: str) -> None:
    weights = timestep_weights(schedule, torch.arange(schedule.num_train_steps), kind)
    assert weights.dtype == torch.float32 and bool((weights > 0).all())
    assert bool((weights[1:] <= weights[:-1]).all())


def test_min_snr_default_is_bounded_by_gamma_and_not_uniform_on_the_paper_grid() -> None:
    assert DEFAULT_WEIGHTING == "min_snr"
    schedule = Schedule.linear(100)
    grid = ddim_timesteps(schedule, 10)
    weights = timestep_weights(schedule, grid)
    torch.testing.assert_close(weights, timestep_weights(schedule, grid, "min_snr"), rtol=0, atol=0)
    assert weights.max().item() == 5.0 and weights.min().item() > 0
    assert weights.max().item() / weights.min().item() > 100  # weighting, unlike the unweighted ablation
    assert timestep_weights(schedule, grid, "min_snr", gamma=1.0).max().item() == 1.0


def test_weights_keep_the_shape_of_t() -> None:
    schedule = Schedule.linear(100)
    t = torch.tensor([[1, 2, 3], [40, 50, 60]])
    assert timestep_weights(schedule, t, "snr").shape == (2, 3)
    assert timestep_weights(schedule, 5).shape == ()
