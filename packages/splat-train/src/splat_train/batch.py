"""`ViewBatch`: what every stage trains on — one source image per object and some target views of it — and
`BatchSource`, how an app hands its data to the stage runners.

Cameras are relative to the source camera (the source camera is the identity), so the teacher's and the student's
Gaussians, which live in the source camera's frame, render directly with `target_cameras`. Apps convert their own
batches (SRN, Co3D, RealEstate10K) to this one type.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from splat_render import Cameras


@dataclass(frozen=True)
class ViewBatch:
    """A batch of objects: source image + camera, target images + cameras, extra teacher inputs.

    `teacher_inputs` are keyword arguments of the teacher for the source images (e.g. Co3D's `origin_distance`
    [batch]); `target_teacher_inputs` the same for each target view ([batch views] values), used when a rendered
    target view is fed back as a conditioning image (cycle consistency).

    `seeds` are the per-sample seeds the stage losses draw every random number from (t, t_start, noise; see
    `splat_train.sharding`), so that a sample's loss does not depend on which rank or batch it lands in. The loop sets
    them when it draws from a `BatchSource`; evaluation batches need none. They stay on the CPU.
    """

    source_images: Float[Tensor, "batch 3 height width"]
    source_cameras: Cameras
    target_images: Float[Tensor, "batch views 3 height width"]
    target_cameras: Cameras
    teacher_inputs: dict[str, Tensor] = field(default_factory=dict)
    target_teacher_inputs: dict[str, Tensor] = field(default_factory=dict)
    seeds: Int[Tensor, " batch"] | None = None

    def __post_init__(self) -> None:
        batch = self.source_images.shape[0]
        if self.seeds is not None and (self.seeds.shape != (batch,) or self.seeds.dtype != torch.int64):
            raise ValueError(f"seeds must be int64 [batch={batch}], got {self.seeds.dtype} {list(self.seeds.shape)}")
        if self.source_cameras.batch_size != batch or self.source_cameras.num_views != 1:
            raise ValueError(
                f"source_cameras must be [batch={batch}, 1 view], got {self.source_cameras.batch_size}"
                f"x{self.source_cameras.num_views}"
            )
        if self.target_images.shape[:2] != (self.target_cameras.batch_size, self.target_cameras.num_views):
            raise ValueError(
                f"target_images {list(self.target_images.shape)} do not match target_cameras "
                f"[{self.target_cameras.batch_size}, {self.target_cameras.num_views}]"
            )
        if self.target_cameras.batch_size != batch:
            raise ValueError(f"target_cameras have batch {self.target_cameras.batch_size}, source images {batch}")

    @property
    def batch_size(self) -> int:
        return self.source_images.shape[0]

    @property
    def num_views(self) -> int:
        return self.target_cameras.num_views

    def to(self, device: torch.device | str) -> "ViewBatch":
        return replace(
            self,
            source_images=self.source_images.to(device),
            source_cameras=self.source_cameras.to(device),
            target_images=self.target_images.to(device),
            target_cameras=self.target_cameras.to(device),
            teacher_inputs={k: v.to(device) for k, v in self.teacher_inputs.items()},
            target_teacher_inputs={k: v.to(device) for k, v in self.target_teacher_inputs.items()},
        )  # seeds stay on the CPU (they seed CPU generators)

    def with_seeds(self, seeds: Sequence[int]) -> "ViewBatch":
        """The same batch with per-sample `seeds`."""
        return replace(self, seeds=torch.tensor([int(s) for s in seeds], dtype=torch.int64))


@runtime_checkable
class BatchSource(Protocol):
    """How an app hands its training data to the stage runners, on one process or many (torchrun).

    The loop owns the sampling (`splat_train.sharding`): every epoch it shuffles the `num_items` dataset items
    (objects, sequences) with torch's `DistributedSampler` semantics, gives rank r every world-size-th item, and asks
    each rank for `batch_size` items per step — the *per-rank* batch; the global batch is `batch_size` × world size.

    `make_batch(items, seeds)` builds the batch of those dataset items; every random choice for item k (which views,
    crops, ...) must come from `torch.Generator().manual_seed(seeds[k])`, so that a sample is the same whichever rank
    draws it. The stage runners put `seeds` on the returned `ViewBatch` (`ViewBatch.seeds`).
    """

    num_items: int  # dataset items to draw from (objects, sequences)
    batch_size: int  # items per step on each rank

    def make_batch(self, items: Sequence[int], seeds: Sequence[int]) -> ViewBatch: ...


@dataclass(frozen=True)
class SeededExamples:
    """The usual `BatchSource`: a dataset of `num_items` items, item k of a batch drawn by `example(item, generator)`
    from a generator seeded with `seeds[k]`, the examples joined into a `ViewBatch` by `collate`."""

    num_items: int
    batch_size: int  # items per step on each rank (global batch = batch_size × world size)
    example: Callable[[int, torch.Generator], object]  # (dataset item, its generator) -> one training example
    collate: Callable[[list], ViewBatch]  # examples -> the batch, on the training device

    def make_batch(self, items: Sequence[int], seeds: Sequence[int]) -> ViewBatch:
        return self.collate(
            [self.example(item, torch.Generator().manual_seed(seed)) for item, seed in zip(items, seeds, strict=True)]
        )


def view_as_input_camera(cameras: Cameras, view: int) -> Cameras:
    """The camera of target view `view` as a teacher/student *input* camera: identity pose, same intrinsics."""
    K = cameras.K[:, view : view + 1]
    eye = torch.eye(4, dtype=K.dtype, device=K.device).expand(K.shape[0], 1, 4, 4).clone()
    return Cameras(eye, K, cameras.width, cameras.height, cameras.near, cameras.far)


def source_seen_from_view(source_cameras: Cameras, target_cameras: Cameras, view: int) -> Cameras:
    """The source camera expressed in the frame of target view `view` (for Gaussians predicted from that view).

    A point p in the target camera's frame is c2w_v p in the source frame, which the source camera (identity) sees
    as is (its pose is the identity): world_to_cam = w2c_source c2w_v.
    """
    world_to_cam = source_cameras.world_to_cam @ target_cameras.cam_to_world[:, view : view + 1]
    return Cameras(
        world_to_cam,
        source_cameras.K,
        source_cameras.width,
        source_cameras.height,
        source_cameras.near,
        source_cameras.far,
    )
