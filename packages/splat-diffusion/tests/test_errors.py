"""Bad input gives a ValueError naming the argument. Wrong shapes and types are also caught by the jaxtyping test hook
(TypeCheckError) before our own checks run, so those are tested with the hook switched off (`plain_checks`), as a
user without the hook would call them, and once more with it on."""

import jaxtyping
import pytest
import torch
from diffusion_strategies import plain_checks

from splat_diffusion import (
    Schedule,
    ddim_step,
    ddim_timesteps,
    eps_from_x0,
    q_sample,
    sample_timesteps,
    sdedit_start,
    timestep_weights,
    to_x0,
    unrolled_ddim,
    x0_denoiser,
)

S = Schedule.linear(100)
X = torch.zeros(2, 3)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.alpha_bar(100), r"t must lie in \[0, 99\]"),
        (lambda: S.sigma(torch.tensor([-1, 3])), r"t must lie in \[0, 99\]"),
        (lambda: q_sample(S, X, 100, X), r"t must lie in \[0, 99\]"),
        (lambda: q_sample(S, X, torch.tensor([3, -2]), X), r"t must lie in \[0, 99\]"),
        (lambda: ddim_step(S, X, 100, 50, X), r"t must lie in \[0, 99\]"),
        (lambda: ddim_step(S, X, 10, 10, X), "t_prev must be < t"),
        (lambda: ddim_step(S, X, 10, 5, X, eta=0.5), "noise is required when eta > 0"),
        (lambda: ddim_step(S, X, 10, 5, X, eta=1.5, noise=X), r"eta must lie in \[0, 1\]"),
        (lambda: eps_from_x0(S, X, 100, X), r"t must lie in \[0, 99\]"),
        (lambda: timestep_weights(S, torch.tensor([100])), r"t must lie in \[0, 99\]"),
        (lambda: ddim_timesteps(S, 10, t_start=0), r"t_start must lie in \[1, 99\]"),
        (lambda: ddim_timesteps(S, 3, t_start=-4), r"t_start must lie in \[1, 99\]"),
        (lambda: ddim_timesteps(S, 10, t_start=100), r"t_start must lie in \[1, 99\]"),
        (lambda: ddim_timesteps(S, 11, t_start=10), "num_steps must be <= t_start"),
        (lambda: ddim_timesteps(S, 0), "num_steps must be a positive int"),
        (lambda: sdedit_start(S, X, 0, X), r"t_start must lie in \[1, 99\]"),
        (lambda: sample_timesteps(S, 4, low=50, high=20), "low must be <= high"),
        (lambda: sample_timesteps(S, 4, high=100), r"high must lie in \[0, 99\]"),
        (lambda: sample_timesteps(S, 0), "batch_size must be a positive int"),
        (lambda: unrolled_ddim(lambda x, t: x, X, torch.tensor([50, 100]), S), r"timesteps must lie in \[0, 99\]"),
        (lambda: unrolled_ddim(lambda x, t: x, X, torch.tensor([10, 30]), S), "timesteps must be strictly decreasing"),
        (lambda: unrolled_ddim(lambda x, t: x, X, torch.tensor([30, 10]), S, eta=-0.1), r"eta must lie in \[0, 1\]"),
        (lambda: Schedule.linear(10), "linear schedule needs 0 < beta_start <= beta_end < 1"),
        (lambda: Schedule.linear(1), "num_train_steps must be an int >= 2"),
        (lambda: Schedule.cosine(100, s=0.0), "cosine schedule needs s > 0"),
        (lambda: Schedule.from_betas(torch.tensor([0.1, 1.0])), r"betas must lie in \(0, 1\)"),
        (
            lambda: Schedule(
                betas=torch.full((3,), 0.1, dtype=torch.float64),
                alphas_cumprod=torch.full((3,), 0.5, dtype=torch.float64),
            ),
            r"alphas_cumprod must equal cumprod\(1 - betas\)",
        ),
    ],
)
def test_bad_values_give_a_value_error_naming_the_argument(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# Wrong shapes, dtypes or kinds: the annotations say what is allowed, so the hook rejects these as well.
TYPE_MISMATCHES = [
    (lambda: S.snr(torch.tensor([0.5])), "t must be an integer tensor"),
    (lambda: timestep_weights(S, 3, "sqrt"), "kind must be one of"),
    (lambda: to_x0(S, X, 3, X, "score"), "kind must be one of"),
    (lambda: x0_denoiser(lambda x, t: x, S, "score"), "kind must be one of"),
    (lambda: Schedule.from_betas(torch.tensor([0, 1])), "betas must be a 1-D floating-point tensor"),
    (lambda: q_sample(S, X, 3, torch.zeros(2, 4)), r"noise must have the shape of x0 \[2, 3\], got \[2, 4\]"),
    (lambda: q_sample(S, X, torch.tensor([1, 2, 3]), X), r"t must be a scalar or have shape \[batch\]=\[2\]"),
    (lambda: ddim_step(S, X, 10, 5, torch.zeros(3, 3)), r"x0_hat must have the shape of x_t \[2, 3\]"),
    (lambda: ddim_step(S, X, 10, 5, X, eta=0.5, noise=torch.zeros(2)), r"noise must have the shape of x_t"),
    (lambda: ddim_step(S, X, 10, torch.tensor([5, 4, 3]), X), r"t_prev must be a scalar or have shape \[batch\]=\[2\]"),
    (lambda: eps_from_x0(S, X, 10, torch.zeros(2, 3, 1)), r"x0 must have the shape of x_t"),
    (lambda: sdedit_start(S, X, 30, torch.zeros(1, 3)), r"noise must have the shape of x0"),
    (
        lambda: unrolled_ddim(lambda x, t: x, X, torch.tensor([[30, 20, 10]]).T.expand(3, 3), S),
        r"timesteps must be \[steps\] or \[steps batch=2\], got \[3, 3\]",
    ),
    (
        lambda: unrolled_ddim(lambda x, t: x[:1], X, torch.tensor([30, 10]), S),
        r"denoise\(x_t, t\) must return x0_hat of shape \[2, 3\], got \[1, 3\]",
    ),
    (
        lambda: unrolled_ddim(lambda x, t: x, torch.zeros(()), torch.tensor([30, 10]), S),
        "x_start must have a non-empty leading batch",
    ),
]


@pytest.mark.parametrize("call, match", TYPE_MISMATCHES)
def test_mismatched_shapes_and_types_give_a_value_error_naming_the_argument(call, match: str) -> None:
    with plain_checks(), pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", TYPE_MISMATCHES)
def test_mismatched_shapes_and_types_are_rejected_under_the_shape_checking_hook_too(call, match: str) -> None:
    with pytest.raises((ValueError, jaxtyping.TypeCheckError)):
        call()
