"""Multi-process training inside pytest: tiny 16 px models, a `BatchSource` of random blobs, and `spawn`, which
starts a gloo process group of W CPU processes on a free localhost port the way torchrun does (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment, then `splat_train.distributed.init_distributed`)."""

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.multiprocessing
from train_fixtures import CENTRE, orbit_cameras, tiny_student

from splat_render import Cameras, Gaussians, render
from splat_render.sh import rgb_to_sh_dc
from splat_teachers import CARS, SplatterImage, SplatterImageConfig, UNetConfig
from splat_train import distributed
from splat_train.batch import ViewBatch
from splat_train.student import GaussianDenoiser

SIZE = 16
TIMEOUT_S = 900  # a deadlock fails the test instead of hanging it (generous: the test machine may be loaded)


def teacher(seed: int = 0) -> SplatterImage:
    """A 16 px Splatter Image without dropout (dropout draws from each rank's own global RNG)."""
    unet = UNetConfig(
        resolution=SIZE, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0
    )
    config = SplatterImageConfig(unet=unet, head=replace(CARS, resolution=SIZE))
    return SplatterImage(config, generator=torch.Generator().manual_seed(seed))


def student(teacher: SplatterImage, seed: int = 0) -> GaussianDenoiser:
    return tiny_student(teacher, seed, size=SIZE, channels=8, mult=(1, 2))


def _scene(item: int, count: int = 200) -> Gaussians:
    g = torch.Generator().manual_seed(1000 + item)
    return Gaussians(
        means=CENTRE + 0.25 * torch.randn(1, count, 3, generator=g),
        quats=torch.randn(1, count, 4, generator=g),
        scales=0.03 + 0.06 * torch.rand(1, count, 3, generator=g),
        opacities=0.5 + 0.5 * torch.rand(1, count, generator=g),
        sh=rgb_to_sh_dc(torch.rand(1, count, 3, generator=g))[:, :, None],
    )


class BlobSource:
    """A `BatchSource` of `num_items` random blobs; item k of a batch is seen from a source camera and `views`
    target cameras at random angles drawn from `seeds[k]`. `nan_from_call` makes every batch from that call on
    (0-based, counted per process) have NaN target images."""

    def __init__(self, num_items: int = 4, batch_size: int = 1, views: int = 2, nan_from_call: int | None = None):
        self.num_items, self.batch_size, self.views, self.nan_from_call = num_items, batch_size, views, nan_from_call
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def make_batch(self, items: Sequence[int], seeds: Sequence[int]) -> ViewBatch:
        images, cameras = [], []
        for item, seed in zip(items, seeds, strict=True):
            g = torch.Generator().manual_seed(seed)
            angles = [0.0, *(-70 + 140 * torch.rand(self.views, generator=g)).tolist()]
            camera = orbit_cameras(angles, SIZE)
            with torch.no_grad():
                images.append(render(_scene(item), camera, background=1.0).rgb)
            cameras.append(camera)
        rgb, camera = torch.cat(images), Cameras.cat(cameras, along="batch")
        if self.nan_from_call is not None and len(self.calls) >= self.nan_from_call:
            rgb = rgb.clone()
            rgb[:, 1:] = torch.nan
        self.calls.append((tuple(items), tuple(seeds)))
        return ViewBatch(rgb[:, 0], camera.select_views(0), rgb[:, 1:], camera.select_views(slice(1, None)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, scenario: Callable[[int, Path], None], workdir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    device = distributed.init_distributed("cpu")
    assert device == torch.device("cpu") and distributed.rank() == rank and distributed.world_size() == world
    try:
        scenario(rank, Path(workdir))
    finally:
        distributed.shutdown()


def spawn(scenario: Callable[[int, Path], None], workdir: Path, world: int = 2) -> None:
    """Run `scenario(rank, workdir)` (a picklable top-level function) on `world` gloo ranks; re-raises a rank's
    exception; fails after TIMEOUT_S instead of hanging on a deadlock."""
    context = torch.multiprocessing.start_processes(
        _worker, args=(world, free_port(), scenario, str(workdir)), nprocs=world, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"{scenario.__name__} did not finish in {TIMEOUT_S} s (deadlock?)")
