"""Forward noising q(x_t | x0) (Ho et al. 2020, eq. 4), the SDEdit start of the paper, and training-time sampling."""

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ._per_sample import append_dims, check_same_shape, check_sample, per_sample_timesteps
from .schedule import Schedule, check_timesteps

Timestep = int | Int[Tensor, ""] | Int[Tensor, " batch"]


def q_sample(
    schedule: Schedule,
    x0: Float[Tensor, " batch *dims"],
    t: Timestep,
    noise: Float[Tensor, " batch *dims"],
) -> Float[Tensor, " batch *dims"]:
    """x_t = sqrt(alpha_bar(t)) x0 + sqrt(1 - alpha_bar(t)) noise, with one t for all samples or one per sample.

    `noise` is the caller's standard normal draw (no randomness is drawn here). Coefficients are computed in float64
    and cast to x0's dtype.
    """
    check_sample("x0", x0)
    check_same_shape("noise", noise, "x0", x0)
    t = per_sample_timesteps(schedule, t, x0, "t")
    alpha_bar = schedule.alpha_bar(t)
    return append_dims(alpha_bar.sqrt(), x0) * x0 + append_dims((1.0 - alpha_bar).sqrt(), x0) * noise


def sdedit_start(
    schedule: Schedule,
    x0_teacher: Float[Tensor, " batch *dims"],
    t_start: Timestep,
    noise: Float[Tensor, " batch *dims"],
) -> Float[Tensor, " batch *dims"]:
    """The "noisy teacher" start of the paper (after SDEdit, Meng et al. 2022): the teacher's prediction noised to
    `t_start` (in [1, T - 1]; the paper uses t_start > t* = 20 of T = 100), from which DDIM denoises to t = 0.

    At large enough t the noised teacher prediction and the noised ground truth have nearly the same distribution,
    which is what lets an imperfect deterministic teacher provide the starting points of the 3D diffusion model.
    """
    check_sample("x0_teacher", x0_teacher)
    per_sample_timesteps(schedule, t_start, x0_teacher, "t_start", low=1)
    return q_sample(schedule, x0_teacher, t_start, noise)


def sample_timesteps(
    schedule: Schedule,
    batch_size: int,
    *,
    low: int = 0,
    high: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Int[Tensor, " batch"]:
    """Training timesteps t ~ U{low, ..., high} (both inclusive; `high` defaults to T - 1), one per sample.

    Randomness comes from `generator` (None: torch's default generator); the generator must live on `device`.
    E.g. the bootstrap stage's image losses use `low=t_star` so that only t >= t* is supervised by rendering.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    high = schedule.num_train_steps - 1 if high is None else high
    check_timesteps(schedule, low, "low")
    check_timesteps(schedule, high, "high")
    if low > high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    return torch.randint(low, high + 1, (batch_size,), generator=generator, device=device, dtype=torch.int64)
