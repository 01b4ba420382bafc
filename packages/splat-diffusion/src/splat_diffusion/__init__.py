"""splat-diffusion: generic DDPM/DDIM machinery over any tensor `[batch ...]` and a `denoise(x_t, t) -> x0_hat`
callable: schedules, forward noising, x0/eps/v conversions, DDIM, the unrolled differentiable sampler, timestep
weights. Depends on torch and jaxtyping only."""

from . import parameterization, weighting
from .ddim import Trajectory, ddim_step, ddim_timesteps, unrolled_ddim
from .noising import Timestep, q_sample, sample_timesteps, sdedit_start
from .parameterization import (
    Denoiser,
    Prediction,
    eps_from_v,
    eps_from_x0,
    from_x0,
    to_x0,
    v_from_eps,
    v_from_x0,
    x0_denoiser,
    x0_from_eps,
    x0_from_v,
)
from .schedule import Schedule
from .weighting import DEFAULT_WEIGHTING, WeightingKind, timestep_weights

__all__ = [
    "DEFAULT_WEIGHTING",
    "Denoiser",
    "Prediction",
    "Schedule",
    "Timestep",
    "Trajectory",
    "WeightingKind",
    "ddim_step",
    "ddim_timesteps",
    "eps_from_v",
    "eps_from_x0",
    "from_x0",
    "parameterization",
    "q_sample",
    "sample_timesteps",
    "sdedit_start",
    "timestep_weights",
    "to_x0",
    "unrolled_ddim",
    "v_from_eps",
    "v_from_x0",
    "weighting",
    "x0_denoiser",
    "x0_from_eps",
    "x0_from_v",
]
