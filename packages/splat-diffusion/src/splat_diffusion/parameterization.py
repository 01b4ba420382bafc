"""Conversions between the three common network outputs, given x_t = sqrt(a) x0 + sqrt(1 - a) eps with a = alpha_bar(t):

    x0  (the sample itself; this package's denoiser contract),
    eps (the noise, Ho et al. 2020),
    v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022, section 4).

Each pair is an exact inverse for a fixed (x_t, t): e.g. `x0_from_eps(s, x_t, t, eps_from_x0(s, x_t, t, x0)) == x0` up
to rounding. `to_x0` / `from_x0` dispatch on the prediction kind in one place, and `x0_denoiser` adapts an eps- or
v-predicting network to the `denoise(x_t, t) -> x0_hat` contract of the samplers.
"""

from collections.abc import Callable
from typing import Literal

from jaxtyping import Float, Int
from torch import Tensor

from ._per_sample import append_dims, check_same_shape, check_sample, per_sample_timesteps
from .noising import Timestep
from .schedule import Schedule

Prediction = Literal["x0", "eps", "v"]
PREDICTIONS = ("x0", "eps", "v")

Denoiser = Callable[[Float[Tensor, " batch *dims"], Int[Tensor, " batch"]], Float[Tensor, " batch *dims"]]
"""The model contract of the samplers: `denoise(x_t, t) -> x0_hat`, t an int64 tensor of one timestep per sample."""


def _coefficients(
    schedule: Schedule, x_t: Tensor, t: Timestep, other: Tensor, other_name: str
) -> tuple[Tensor, Tensor]:
    """sqrt(alpha_bar(t)) and sqrt(1 - alpha_bar(t)), float64, shaped to broadcast against x_t."""
    check_sample("x_t", x_t)
    check_same_shape(other_name, other, "x_t", x_t)
    alpha_bar = schedule.alpha_bar(per_sample_timesteps(schedule, t, x_t, "t"))
    return append_dims(alpha_bar.sqrt(), x_t), append_dims((1.0 - alpha_bar).sqrt(), x_t)


def eps_from_x0(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, x0: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """eps = (x_t - sqrt(a) x0) / sqrt(1 - a)."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, x0, "x0")
    return (x_t - sqrt_a * x0) / sqrt_1ma


def x0_from_eps(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, eps: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) (Ho et al. 2020, eq. 15)."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, eps, "eps")
    return (x_t - sqrt_1ma * eps) / sqrt_a


def v_from_x0(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, x0: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """v = sqrt(a) eps - sqrt(1 - a) x0 = (sqrt(a) x_t - x0) / sqrt(1 - a)."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, x0, "x0")
    return (sqrt_a * x_t - x0) / sqrt_1ma


def x0_from_v(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, v: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """x0 = sqrt(a) x_t - sqrt(1 - a) v."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, v, "v")
    return sqrt_a * x_t - sqrt_1ma * v


def v_from_eps(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, eps: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """v = (eps - sqrt(1 - a) x_t) / sqrt(a)."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, eps, "eps")
    return (eps - sqrt_1ma * x_t) / sqrt_a


def eps_from_v(
    schedule: Schedule, x_t: Float[Tensor, " batch *dims"], t: Timestep, v: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """eps = sqrt(1 - a) x_t + sqrt(a) v."""
    sqrt_a, sqrt_1ma = _coefficients(schedule, x_t, t, v, "v")
    return sqrt_1ma * x_t + sqrt_a * v


def to_x0(
    schedule: Schedule,
    x_t: Float[Tensor, " batch *dims"],
    t: Timestep,
    prediction: Float[Tensor, " batch *dims"],
    kind: Prediction,
) -> Float[Tensor, " batch *dims"]:
    """The x0 implied by a network output of kind "x0", "eps" or "v"."""
    if kind == "x0":
        check_same_shape("prediction", prediction, "x_t", x_t)
        return prediction
    if kind == "eps":
        return x0_from_eps(schedule, x_t, t, prediction)
    if kind == "v":
        return x0_from_v(schedule, x_t, t, prediction)
    raise ValueError(f"kind must be one of {PREDICTIONS}, got {kind!r}")


def from_x0(
    schedule: Schedule,
    x_t: Float[Tensor, " batch *dims"],
    t: Timestep,
    x0: Float[Tensor, " batch *dims"],
    kind: Prediction,
) -> Float[Tensor, " batch *dims"]:
    """The network output of kind "x0", "eps" or "v" that corresponds to x0 (inverse of `to_x0`)."""
    if kind == "x0":
        check_same_shape("x0", x0, "x_t", x_t)
        return x0
    if kind == "eps":
        return eps_from_x0(schedule, x_t, t, x0)
    if kind == "v":
        return v_from_x0(schedule, x_t, t, x0)
    raise ValueError(f"kind must be one of {PREDICTIONS}, got {kind!r}")


def x0_denoiser(model: Denoiser, schedule: Schedule, kind: Prediction) -> Denoiser:
    """Adapt a network `model(x_t, t)` that predicts `kind` ("x0", "eps" or "v") to the `denoise(x_t, t) -> x0_hat`
    contract (as k-diffusion's external wrappers adapt eps-models to its denoiser contract)."""
    if kind not in PREDICTIONS:
        raise ValueError(f"kind must be one of {PREDICTIONS}, got {kind!r}")

    def denoise(x_t: Float[Tensor, " batch *dims"], t: Int[Tensor, " batch"]) -> Float[Tensor, " batch *dims"]:
        return to_x0(schedule, x_t, t, model(x_t, t), kind)

    return denoise
