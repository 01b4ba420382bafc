"""The synthetic generator: deterministic bytes, cached by options, interrupted runs redone; objects of both
categories fit SRN's depth range from every camera, are mirror-symmetric and vary; decals are drawn per side, so
one side does not tell the other's (the ray caster itself is tested in splat-apps)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from app_srn.categories import CATEGORIES, RADIUS_RANGE, CategoryObject, sample_object
from app_srn.synthetic import (
    CAMERA_DISTANCE,
    SyntheticOptions,
    generate_synthetic,
    hemisphere_poses,
    object_rngs,
    orbit_poses,
    render_scene,
    spiral_poses,
    synthetic_intrinsics,
)
from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import MARKER

SMALL = SyntheticOptions(
    resolution=12,
    train_objects=2,
    val_objects=1,
    test_objects=1,
    train_views=3,
    val_views=4,
    test_views=4,
    seed=11,
    supersampling=2,
)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def scene_for(seed: int, category: str = "cars") -> CategoryObject:
    return sample_object(category, object_rngs(seed, "train", 0)[0])


def test_generation_is_deterministic_to_the_byte(tmp_path: Path) -> None:
    first = generate_synthetic(SMALL, tmp_path / "a")
    second = generate_synthetic(SMALL, tmp_path / "b", threads=2)  # thread count does not change a byte
    assert first.name == "srn_synthetic_cars" and first.parent.name == SMALL.key()
    written = files(first.parent)
    assert written == files(second.parent)
    assert sum(name.endswith(".png") for name in written) == 2 * 3 + 4 + 4
    other = generate_synthetic(SyntheticOptions(**{**SMALL.__dict__, "seed": 12}), tmp_path / "a")
    assert other.parent != first.parent
    assert {k: v for k, v in files(other.parent).items() if k.endswith(".png")} != {
        k: v for k, v in written.items() if k.endswith(".png")
    }


def test_generation_is_cached_by_options(tmp_path: Path) -> None:
    calls = []
    root = generate_synthetic(SMALL, tmp_path, progress=lambda *args: calls.append(args))
    assert calls[-1] == ("test", 1, 1) and len(calls) == 4
    marker = root.parent / MARKER
    stamp = marker.stat().st_mtime_ns
    again = generate_synthetic(SMALL, tmp_path, progress=lambda *args: calls.append(args))
    assert again == root and len(calls) == 4 and marker.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [SMALL.key()]  # no partial folders left behind


def test_interrupted_generation_is_not_mistaken_for_a_complete_one(tmp_path: Path) -> None:
    reference = files(generate_synthetic(SMALL, tmp_path / "reference").parent)
    stale = tmp_path / "cache" / SMALL.key()
    (stale / "srn_synthetic_cars" / "synthetic_cars_train" / "half-written").mkdir(parents=True)
    (stale / "manifest.json").write_text("{}")  # but no marker: the run died before finishing
    root = generate_synthetic(SMALL, tmp_path / "cache")
    assert (root.parent / MARKER).is_file() and files(root.parent) == reference


def test_every_option_is_part_of_the_cache_key() -> None:
    base = SyntheticOptions()
    keys = {base.key()}
    for name, value in base.__dict__.items():
        other = "chairs" if name == "category" else value + 1
        keys.add(SyntheticOptions(**{**base.__dict__, name: other}).key())
    assert len(keys) == 1 + len(base.__dict__)
    with pytest.raises(ValueError, match="resolution"):
        SyntheticOptions(resolution=0)


@pytest.mark.parametrize("category", CATEGORIES)
def test_objects_fit_inside_the_srn_depth_range_by_construction(category: str) -> None:
    radii = [raycast.bounding_radius(scene_for(seed, category).primitives) for seed in range(100)]
    assert max(radii) <= RADIUS_RANGE[1] + 1e-5 and min(radii) >= RADIUS_RANGE[0] - 1e-5
    assert CAMERA_DISTANCE - RADIUS_RANGE[1] >= 0.8 and CAMERA_DISTANCE + RADIUS_RANGE[1] <= 1.8


@pytest.mark.parametrize(("seed", "category"), [(seed, category) for seed in range(3) for category in CATEGORIES])
def test_every_visible_surface_is_within_depth_0_8_to_1_8_from_every_camera(seed: int, category: str) -> None:
    scene = scene_for(seed, category)
    poses = torch.cat([hemisphere_poses(12, np.random.default_rng(seed)), spiral_poses(12)])
    K = synthetic_intrinsics(40).expand(24, 3, 3)
    depth = render_scene(scene, poses, K, 40, 40, supersampling=1).depth
    visible = depth[torch.isfinite(depth)]
    assert visible.numel() > 24 * 40  # the object is seen
    assert visible.min() >= 0.8 and visible.max() <= 1.8


def test_cameras_orbit_at_srn_distance_on_the_upper_hemisphere() -> None:
    for poses in (hemisphere_poses(100, np.random.default_rng(0)), spiral_poses(251)):
        centres = poses[:, :3, 3]
        torch.testing.assert_close(centres.norm(dim=-1), torch.full((len(poses),), 1.3, dtype=torch.float64))
        assert (centres[:, 2] > 0).all()
        forward = poses[:, :3, 2]
        torch.testing.assert_close(forward, -centres / 1.3)
    elevation = torch.asin(spiral_poses(251)[:, 2, 3] / 1.3)
    assert (elevation.diff() < 0).all()  # the spiral descends from near the pole towards the horizon


def _sides(azimuth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras seeing the object from world +y at `azimuth` and from the mirror position (y -> -y)."""
    angles = torch.tensor([azimuth, -azimuth], dtype=torch.float64)
    return orbit_poses(angles, torch.full((2,), 0.3, dtype=torch.float64)), synthetic_intrinsics(32).expand(2, 3, 3)


@pytest.mark.parametrize("category", CATEGORIES)
def test_objects_are_mirror_symmetric_about_the_xz_plane(category: str) -> None:
    """The depth seen from the mirrored camera is the mirrored depth image (shape only; decals and light are not)."""
    poses, K = _sides(1.1)
    for seed in range(4):
        depth = render_scene(scene_for(seed, category), poses, K, 32, 32, supersampling=1).depth
        both = torch.isfinite(depth[0]) & torch.isfinite(depth[1].flip(-1))
        assert (torch.isfinite(depth[0]) == torch.isfinite(depth[1].flip(-1))).float().mean() > 0.99
        torch.testing.assert_close(depth[0][both], depth[1].flip(-1)[both], atol=1e-3, rtol=0)


@pytest.mark.parametrize("category", CATEGORIES)
def test_decals_are_drawn_per_side_so_one_side_does_not_tell_the_other(category: str) -> None:
    sides = [tuple(sorted(scene_for(seed, category).decals[0].sides)) for seed in range(120)]
    assert {(), (-1,), (1,), (-1, 1)} == set(sides)  # neither, right, left, both
    left = next(seed for seed, found in enumerate(sides) if found == (1,))
    scene = scene_for(left, category)
    plain = CategoryObject(scene.primitives, scene.colours, ())
    poses, K = _sides(math.pi / 2 if category == "cars" else 0.4)  # a car's +y side; the front of a chair's back
    with_decal, without = (render_scene(s, poses, K, 32, 32).rgb for s in (scene, plain))
    change = (with_decal - without).abs().flatten(1).amax(dim=1)
    assert change[0] > 0.1  # the decal is seen from its side
    if category == "cars":
        assert change[1] < 0.01  # and not from the other


def test_objects_of_a_category_vary_in_shape_and_colour() -> None:
    cars = [scene_for(seed) for seed in range(30)]
    lengths = torch.tensor([float(car.primitives.sizes[0, 0] / car.primitives.sizes[0, 1]) for car in cars])
    paints = torch.stack([car.colours[0] for car in cars])
    assert lengths.std() > 0.1 and paints.std(dim=0).mean() > 0.15


def test_background_is_white_and_the_object_is_centred_and_fills_the_view() -> None:
    scene = scene_for(0)
    rgb = render_scene(scene, spiral_poses(8), synthetic_intrinsics(32).expand(8, 3, 3), 32, 32).rgb
    assert (rgb[..., 0, 0] == 1).all() and (rgb[..., -1, -1] == 1).all()
    foreground = (rgb < 0.999).any(dim=1).float()
    assert 0.1 < foreground.mean() < 0.8
    assert foreground[:, 14:18, 14:18].mean() > 0.5


def test_generation_leaves_no_partial_folder_when_it_fails(tmp_path: Path, monkeypatch) -> None:
    from app_srn import synthetic

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "write_object", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_synthetic(SMALL, tmp_path)
    assert os.listdir(tmp_path) == []
