"""Hypothesis strategies and small helpers shared by the splat-diffusion tests (prefixed to avoid basename clashes)."""

import contextlib
from collections.abc import Iterator

import jaxtyping
import torch
from hypothesis import strategies as st

from splat_diffusion import Schedule


@st.composite
def schedules(draw: st.DrawFn, min_steps: int = 21, max_steps: int = 200) -> Schedule:
    """Linear (default betas, which need T >= 21) or cosine schedules of T in [min_steps, max_steps]."""
    num_train_steps = draw(st.integers(min_steps, max_steps))
    if draw(st.sampled_from(["linear", "cosine"])) == "linear":
        return Schedule.linear(num_train_steps)
    return Schedule.cosine(num_train_steps)


@st.composite
def sample_shapes(draw: st.DrawFn, max_batch: int = 4) -> tuple[int, ...]:
    """`[batch ...]` with 0 to 3 small trailing dimensions."""
    batch = draw(st.integers(1, max_batch))
    rest = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    return (batch, *rest)


seeds = st.integers(0, 2**31 - 1)


def randn(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@contextlib.contextmanager
def plain_checks() -> Iterator[None]:
    """Switch jaxtyping's runtime shape checks off, as for a user who runs without the test hook, so the library's
    own ValueErrors are what gets exercised."""
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
