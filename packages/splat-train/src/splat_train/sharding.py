"""Which dataset items each rank trains on at each step, and the per-sample seeds every random draw comes from.

Order of items: torch's `DistributedSampler` (shuffle=True, drop_last=False), epoch after epoch with `set_epoch`:
each epoch shuffles all items with seed + epoch, pads the permutation to a multiple of the world size by repeating
its start, and gives rank r the positions r, r + W, r + 2W, ... Rank r's j-th sample of the run (j = step · b + k for
per-rank batch size b) is position q = (j mod n) · W + r of epoch j div n, where n = ceil(N / W) is the per-rank
epoch length; within one epoch that is q = s·(b·W) + k·W + r.

Seeds: the sample at (seed, epoch, position q) gets `sample_seed(seed, epoch, q)`; the app's `make_batch` draws the
sample's views from it, the stage losses draw t, t_start and noise from `stream_generator(sample_seed, stream)`,
one stream per draw.

Together: when the dataset size is divisible by the world size, W ranks with batch b draw exactly the objects,
views and noise that 1 rank with batch W·b draws (in another order within the batch), so a loss that is a mean over
samples — and DDP's gradient average — gives the same step (up to float rounding). On resume, the sampler continues
from the checkpoint's step with the partition of the current world size; if that differs from the run's, the global
batch (b × W) changes with it.
"""

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.utils.data import DistributedSampler

from splat_diffusion import Schedule, sample_timesteps

# Streams of the stage losses (each draw of a sample has its own generator).
STREAM_TIMESTEP = 1  # t (stage 1) or t_start (stage 2)
STREAM_NOISE = 2  # the noise of the noised teacher map
STREAM_CYCLE_NOISE = 3  # the noise of the cycle-consistency pass


def _mix(*words: int) -> int:
    """A well-mixed non-negative 63-bit integer of non-negative integers (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(2, np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) & (2**63 - 1)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of the sample at `position` of the padded, shuffled order of `epoch` in a run seeded with `seed`."""
    if min(seed, epoch, position) < 0:
        raise ValueError(f"seed, epoch and position must be >= 0, got {seed}, {epoch}, {position}")
    return _mix(seed, epoch, position)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of the global torch RNG (dropout) at `step` on `rank`: fixed by the step, so resuming (on any number
    of ranks) continues bit-for-bit, and different on each rank (independent dropout masks)."""
    return _mix(seed, 2**32 + step, rank)


def stream_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for draw `stream` of the sample with seed `seed` (independent of the other streams)."""
    return torch.Generator().manual_seed(_mix(seed, stream))


def per_sample_normal(
    seeds: Int[Tensor, " batch"], stream: int, like: Float[Tensor, " batch *dims"]
) -> Float[Tensor, " batch *dims"]:
    """Standard normal noise shaped like `like` (its dtype and device): sample k's from its own generator."""
    draws = [
        torch.randn(like.shape[1:], generator=stream_generator(seed, stream), dtype=like.dtype)
        for seed in seeds.tolist()
    ]
    return torch.stack(draws).to(like.device)


def per_sample_timesteps(
    schedule: Schedule, seeds: Int[Tensor, " batch"], stream: int, *, low: int = 0, high: int | None = None
) -> Int[Tensor, " batch"]:
    """t ~ U{low, ..., high} (high: T−1 by default) per sample (`splat_diffusion.sample_timesteps`), sample k's from
    its own generator."""
    draws = [
        sample_timesteps(schedule, 1, low=low, high=high, generator=stream_generator(seed, stream), device="cpu")
        for seed in seeds.tolist()
    ]
    return torch.cat(draws)


@dataclass(frozen=True)
class RankBatch:
    """The dataset items of one rank's batch at one step, and their per-sample seeds."""

    items: tuple[int, ...]
    seeds: tuple[int, ...]


class ShardedSampler:
    """Per-rank batches of `batch_size` items, step after step, in torch's `DistributedSampler` order."""

    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        for name, value, least in (("num_items", num_items, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._sampler = DistributedSampler(
            range(num_items), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self._epoch: int | None = None
        self._indices: list[int] = []

    @property
    def items_per_epoch(self) -> int:
        """Samples of one epoch on this rank (ceil(num_items / world_size))."""
        return len(self._sampler)

    def _epoch_indices(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._sampler.set_epoch(epoch)
            self._indices, self._epoch = list(self._sampler), epoch
        return self._indices

    def batch(self, step: int) -> RankBatch:
        """This rank's items and seeds at `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        items, seeds = [], []
        for k in range(self.batch_size):
            epoch, offset = divmod(step * self.batch_size + k, self.items_per_epoch)
            items.append(self._epoch_indices(epoch)[offset])
            seeds.append(sample_seed(self.seed, epoch, offset * self.world_size + self.rank))
        return RankBatch(tuple(items), tuple(seeds))
