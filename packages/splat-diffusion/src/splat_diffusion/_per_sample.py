"""Shared helpers: per-sample timesteps and coefficients broadcast against a batch `[batch ...]`."""

from torch import Tensor

from .schedule import Schedule, check_timesteps


def per_sample_timesteps(schedule: Schedule, t: int | Tensor, x: Tensor, name: str, *, low: int | None = 0) -> Tensor:
    """`t` (an int, a 0-d tensor or one value per sample) as int64 on x's device; ValueError on a bad shape/range."""
    if x.ndim < 1:
        raise ValueError(f"the sample must have a leading batch dimension to go with {name}, got a 0-d tensor")
    t = check_timesteps(schedule, t, name, low=low).to(x.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"{name} must be a scalar or have shape [batch]=[{x.shape[0]}], got {list(t.shape)}")
    return t


def append_dims(coefficient: Tensor, x: Tensor) -> Tensor:
    """A scalar or `[batch]` coefficient viewed as `[batch, 1, ..., 1]` so it broadcasts against x, in x's dtype."""
    coefficient = coefficient.to(dtype=x.dtype, device=x.device)
    if coefficient.ndim == 0:
        return coefficient
    return coefficient.reshape(coefficient.shape + (1,) * (x.ndim - 1))


def check_same_shape(name: str, value: Tensor, reference_name: str, reference: Tensor) -> None:
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {type(value).__name__}")
    if value.shape != reference.shape:
        raise ValueError(
            f"{name} must have the shape of {reference_name} {list(reference.shape)}, got {list(value.shape)}"
        )


def check_sample(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must have a non-empty leading batch dimension, got shape {list(x.shape)}")
