"""Tiny models and a tiny multi-view dataset for the splat-train tests (32x32, CPU, seconds)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from splat_render import Cameras, Gaussians, fov_to_focal, intrinsics, look_at, render, rigid_inverse
from splat_render.sh import rgb_to_sh_dc
from splat_teachers import SplatterImage, UNetConfig, splatter_image_preset
from splat_train.batch import ViewBatch
from splat_train.student import GaussianDenoiser, StudentConfig

SIZE = 32
FOV = 51.98948897809546
CENTRE = torch.tensor([0.0, 0.0, 1.3])


def tiny_teacher(seed: int = 0) -> SplatterImage:
    return SplatterImage(splatter_image_preset("tiny"), generator=torch.Generator().manual_seed(seed))


def tiny_student(
    teacher: SplatterImage, seed: int = 0, *, size: int = SIZE, channels: int = 16, mult: tuple[int, ...] = (1, 2, 2)
) -> GaussianDenoiser:
    unet = UNetConfig(
        resolution=size,
        in_channels=27,
        out_channels=24,
        model_channels=channels,
        channel_mult=mult,
        num_blocks=1,
        attn_resolutions=(8,),
        noise_embedding=True,
        dropout=0.0,
    )
    return GaussianDenoiser(StudentConfig(unet=unet), teacher.map_spec, generator=torch.Generator().manual_seed(seed))


def scene(seed: int, count: int = 300) -> Gaussians:
    """A random coloured blob around the point the source camera looks at (in the source camera frame)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, count, 3, generator=g)
    return Gaussians(
        means=CENTRE + 0.25 * torch.randn(1, count, 3, generator=g),
        quats=torch.randn(1, count, 4, generator=g),
        scales=0.02 + 0.05 * torch.rand(1, count, 3, generator=g),
        opacities=0.5 + 0.5 * torch.rand(1, count, generator=g),
        sh=rgb_to_sh_dc(rgb)[:, :, None],
    )


def orbit_cameras(angles_degrees: Sequence[float], size: int = SIZE) -> Cameras:
    """Cameras relative to the source camera (identity at angle 0), orbiting CENTRE about the camera's y axis."""
    poses = []
    for angle in angles_degrees:
        a = math.radians(angle)
        offset = torch.tensor([math.sin(a), 0.0, -math.cos(a)]) * 1.3
        poses.append(look_at(CENTRE + offset, CENTRE, torch.tensor([0.0, -1.0, 0.0])))
    cam_to_world = torch.stack(poses)[None]
    source_c2w = cam_to_world[:, :1]
    relative = rigid_inverse(source_c2w)[:, 0:1] @ cam_to_world  # make view 0 the identity... of the source
    focal = fov_to_focal(FOV, size)
    K = intrinsics(focal, focal, size / 2, size / 2).expand(1, len(angles_degrees), 3, 3).clone()
    return Cameras.from_cam_to_world(relative, K, size, size)


def batch(seeds: list[int], angles: list[float] = (0.0, 40.0, -60.0), background: float = 1.0) -> ViewBatch:
    """Objects seen from the source (angle 0) and target views at `angles` (the first target is the source)."""
    items = []
    for seed in seeds:
        cameras = orbit_cameras([0.0, *angles])
        with torch.no_grad():
            images = render(scene(seed), cameras, background=background).rgb
        items.append((images, cameras))
    images = torch.cat([i for i, _ in items])
    cameras = Cameras.cat([c for _, c in items], along="batch")
    return ViewBatch(
        source_images=images[:, 0],
        source_cameras=cameras.select_views(0),
        target_images=images[:, 1:],
        target_cameras=cameras.select_views(slice(1, None)),
    )


@dataclass
class FixedBatches:
    """A `BatchSource` whose every batch is `batch` (one item per object), except the n-th call for n in
    `replacements` (e.g. a batch with a NaN at some step)."""

    batch: ViewBatch
    replacements: dict[int, ViewBatch] = field(default_factory=dict)
    calls: int = 0

    @property
    def num_items(self) -> int:
        return self.batch.batch_size

    @property
    def batch_size(self) -> int:
        return self.batch.batch_size

    def make_batch(self, items: Sequence[int], seeds: Sequence[int]) -> ViewBatch:
        self.calls += 1
        return self.replacements.get(self.calls - 1, self.batch)
