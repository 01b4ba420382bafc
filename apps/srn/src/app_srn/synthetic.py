"""Synthetic SRN-format objects: the embedded default dataset, generated on first use and cached on disk.

Each object is a member of a procedural category (`categories`: toy cars by default, or chairs): shared parts and
proportions, mirror symmetry, and decals on either side, both or neither — a single view predicts most of the
hidden side, as on ShapeNet cars, but not all of it. Images are ray-cast analytically by
`splat_apps.synthetic.raycast` (Lambert + ambient shading with a fixed light, `supersampling`² samples where a pixel
may straddle an edge; white background); this is independent of our Gaussian renderer, so it is a ground truth for
it. Training, validation and test objects are disjoint draws (their random streams differ by split).

Cameras follow SRN: distance 1.3 from the origin, looking at it, SRN's FOV; every visible surface is then at depth
1.3 +- 0.5, inside SRN cars' [0.8, 1.8]. Train views are random on the upper hemisphere; val and test views lie on
one spiral over the hemisphere shared by all objects (as SRN's 251 test views).

Written layout (read by `data.SRNDataset` exactly like real SRN; the category is `synthetic_<category>`)::

    <cache>/<key>/srn_synthetic_cars/synthetic_cars_{train,val,test}/<object_id>/{intrinsics.txt, rgb/NNNNNN.png,
                                                                                  pose/NNNNNN.txt}
    <cache>/<key>/manifest.json      options, generator version, object ids
    <cache>/<key>/COMPLETE           written last (splat_apps.synthetic.cache): without it the folder is regenerated

`uv run apps/srn/synthetic.py --help`.
"""

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import cached, default_cache_dir, options_key
from splat_apps.synthetic.raycast import render_scene, torch_threads
from splat_render import fov_to_focal, intrinsics, look_at

from .categories import CATEGORIES, CategoryObject, sample_object
from .data import DEPTH_RANGES, SPLITS, SRN_FOV_DEGREES

GENERATOR_VERSION = 2  # 2: procedural categories instead of random unions of primitives

CAMERA_DISTANCE = 1.3
TRAIN_ELEVATION_DEGREES = (5.0, 85.0)  # upper hemisphere, away from the pole where "up" is degenerate
SPIRAL_ELEVATION_DEGREES = (80.0, 10.0)  # the spiral descends from near the pole towards the horizon
SPIRAL_TURNS = 4.0
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SyntheticOptions:
    """What to generate; every field is part of the cache key."""

    resolution: int = 64  # image height = width, pixels
    train_objects: int = 48
    val_objects: int = 4
    test_objects: int = 8
    train_views: int = 50  # random views on the upper hemisphere per train object (SRN cars train: 50)
    val_views: int = 251  # spiral views per val object (SRN: 251)
    test_views: int = 251  # spiral views per test object (SRN: 251)
    seed: int = 0
    supersampling: int = 3  # anti-aliasing: supersampling^2 rays per pixel
    category: Literal["cars", "chairs"] = "cars"  # the procedural category (`categories`)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {self.category!r}")
        for f in fields(self):
            if f.name == "category":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{f.name} must be an int, got {value!r}")
            minimum = 0 if f.name == "seed" or f.name.endswith("_objects") else 1
            if value < minimum:
                raise ValueError(f"{f.name} must be >= {minimum}, got {value}")

    def objects(self, split: str) -> int:
        return getattr(self, f"{split}_objects")

    def views(self, split: str) -> int:
        return getattr(self, f"{split}_views")

    @property
    def dataset_category(self) -> str:
        """The category name of the written dataset (`srn_<it>/<it>_<split>`)."""
        return f"synthetic_{self.category}"

    def key(self) -> str:
        """Cache folder name: readable prefix + hash of every option and the generator version."""
        return options_key(f"srn-{self.category}-res{self.resolution}-seed{self.seed}", self, GENERATOR_VERSION)


# --------------------------------------------------------------------------------------------------------------------
# Cameras


def orbit_poses(
    azimuth: Float[Tensor, " views"], elevation: Float[Tensor, " views"], distance: float = CAMERA_DISTANCE
) -> Float[Tensor, "views 4 4"]:
    """Camera-to-world poses (OpenCV axes, float64) at `distance` looking at the origin, world z up (radians)."""
    eye = distance * torch.stack(
        [elevation.cos() * azimuth.cos(), elevation.cos() * azimuth.sin(), elevation.sin()], dim=-1
    )
    up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype).expand_as(eye)
    return look_at(eye, torch.zeros_like(eye), up)


def hemisphere_poses(num_views: int, rng: np.random.Generator) -> Float[Tensor, "views 4 4"]:
    """Random train cameras: uniform by area over the band TRAIN_ELEVATION_DEGREES of the upper hemisphere."""
    low, high = (math.sin(math.radians(e)) for e in TRAIN_ELEVATION_DEGREES)
    azimuth = torch.tensor(rng.uniform(0, 2 * math.pi, size=num_views), dtype=torch.float64)
    elevation = torch.tensor(np.arcsin(rng.uniform(low, high, size=num_views)), dtype=torch.float64)
    return orbit_poses(azimuth, elevation)


def spiral_poses(num_views: int) -> Float[Tensor, "views 4 4"]:
    """Test cameras on a spiral over the hemisphere (like SRN's 251 test views): view k at parameter
    s = k / (num_views - 1), elevation linear in s from 80 deg to 10 deg, azimuth 2 pi SPIRAL_TURNS s."""
    s = torch.linspace(0, 1, num_views, dtype=torch.float64) if num_views > 1 else torch.zeros(1, dtype=torch.float64)
    start, end = (math.radians(e) for e in SPIRAL_ELEVATION_DEGREES)
    return orbit_poses(2 * math.pi * SPIRAL_TURNS * s, start + (end - start) * s)


def synthetic_intrinsics(resolution: int) -> Float[Tensor, "3 3"]:
    """SRN's K scaled to `resolution`: focal from SRN's FOV, principal point at the image centre."""
    focal = fov_to_focal(SRN_FOV_DEGREES, resolution)
    return intrinsics(focal, focal, resolution / 2, resolution / 2, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------------------------
# Files and cache


def format_pose(pose: Float[Tensor, "4 4"]) -> str:
    """16 numbers on one line, each the shortest decimal that reads back to the same float64."""
    return " ".join(repr(float(x)) for x in pose.flatten()) + "\n"


def format_intrinsics(K: Float[Tensor, "3 3"], height: int, width: int) -> str:
    """SRN's `intrinsics.txt`: `f cx cy 0`, `0. 0. 0.`, `1.`, `H W`."""
    f, cx, cy = float(K[0, 0]), float(K[0, 2]), float(K[1, 2])
    return f"{f!r} {cx!r} {cy!r} 0.\n0. 0. 0.\n1.\n{height} {width}\n"


def to_uint8(images: Float[Tensor, "views 3 height width"]) -> np.ndarray:
    return raycast.to_uint8(images).numpy()


def write_object(
    directory: Path,
    images: Float[Tensor, "views 3 height width"],
    cam_to_world: Float[Tensor, "views 4 4"],
    K: Float[Tensor, "3 3"],
) -> None:
    """Write one object in SRN layout: intrinsics.txt, rgb/NNNNNN.png (RGB, 8 bit), pose/NNNNNN.txt."""
    (directory / "rgb").mkdir(parents=True)
    (directory / "pose").mkdir()
    height, width = images.shape[-2:]
    (directory / "intrinsics.txt").write_text(format_intrinsics(K, height, width))
    for view, (pixels, pose) in enumerate(zip(to_uint8(images), cam_to_world, strict=True)):
        Image.fromarray(pixels).save(directory / "rgb" / f"{view:06d}.png", format="PNG")
        (directory / "pose" / f"{view:06d}.txt").write_text(format_pose(pose))


def object_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent streams for the shape and for the train cameras of object `index` of `split`: an object's shape
    does not change when the number of objects or views changes."""
    key = [seed, SPLIT_CODES[split], index]
    return np.random.default_rng([*key, 0]), np.random.default_rng([*key, 1])


def generate_object(
    options: SyntheticOptions, split: str, index: int
) -> tuple[str, CategoryObject, Tensor, raycast.SceneRender]:
    """(object id, scene, camera-to-world poses, render) of object `index` of `split`."""
    shape_rng, camera_rng = object_rngs(options.seed, split, index)
    object_id = shape_rng.bytes(16).hex()  # 32 hex digits, like ShapeNet ids
    scene = sample_object(options.category, shape_rng)
    views = options.views(split)
    poses = hemisphere_poses(views, camera_rng) if split == "train" else spiral_poses(views)
    K = synthetic_intrinsics(options.resolution).expand(views, 3, 3)
    render = render_scene(scene, poses, K, options.resolution, options.resolution, options.supersampling)
    return object_id, scene, poses, render


def write_splits(
    options: SyntheticOptions,
    directory: Path,
    K: Float[Tensor, "3 3"],
    manifest: dict,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Render and write every object of every split under `directory`; object ids go into `manifest`."""
    for split in SPLITS:
        name = options.dataset_category
        split_dir = directory / f"srn_{name}" / f"{name}_{split}"
        split_dir.mkdir(parents=True)
        ids = []
        for index in range(options.objects(split)):
            object_id, _, poses, render = generate_object(options, split, index)
            write_object(split_dir / object_id, render.rgb, poses, K)
            ids.append(object_id)
            if progress is not None:
                progress(split, index + 1, options.objects(split))
        manifest["objects"][split] = ids


def generate_synthetic(
    options: SyntheticOptions = SyntheticOptions(),
    cache_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    threads: int = 1,
) -> Path:
    """Generate (or reuse from `cache_dir`, default `splat_apps.synthetic.cache.default_cache_dir()`) the dataset for
    `options`; returns the dataset root `.../srn_synthetic_<category>`, to be read with `data.SRNDataset(root, split)`.

    Published atomically (`splat_apps.synthetic.cache.cached`). `progress(split, done, total)` is called after each
    object. `threads`: torch intra-op threads while rendering (the output does not depend on it); the work is many
    small tensor operations, for which one thread is the fastest on a busy 2-core machine.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def write(partial: Path) -> dict:
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "category": options.dataset_category,
            "options": asdict(options),
            "depth_range": DEPTH_RANGES[options.dataset_category],
            "objects": {},
        }
        with torch_threads(threads):
            write_splits(options, partial, synthetic_intrinsics(options.resolution), manifest, progress)
        return manifest

    return cached(cache_dir / options.key(), write) / f"srn_{options.dataset_category}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apps/srn/synthetic.py", description=__doc__.split("\n\n")[0])
    for f in fields(SyntheticOptions):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default, help=f"default {f.default}"
        )
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="default %(default)s")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while rendering (default 1)")
    args = parser.parse_args(argv)
    options = SyntheticOptions(**{f.name: getattr(args, f.name) for f in fields(SyntheticOptions)})
    from rich.progress import Progress

    with Progress() as bar:
        tasks = {s: bar.add_task(f"{s} objects", total=options.objects(s)) for s in SPLITS}
        update = lambda split, done, total: bar.update(tasks[split], completed=done)
        root = generate_synthetic(options, args.cache_dir, update, threads=args.threads)
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
