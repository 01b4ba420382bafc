"""The synthetic generator: exact ray casting, deterministic scenes, camera paths inside the room with overlapping
views, and an on-disk cache keyed by the options."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

# sibling modules of apps/re10k (first on sys.path under `uv run apps/re10k/...`); left unsorted because
# ruff would call `data` first-party whenever a data/ folder exists at the repository root
# isort: off
from conftest import SMALL
from data import ChunkDataset, pixel_intrinsics
from protocol import read_split
from synthetic import (
    MARKER,
    Box,
    Scene,
    Sphere,
    SyntheticOptions,
    Texture,
    _footprint_distance,
    camera_rays,
    generate_scene,
    generate_synthetic,
    main,
    render_depth,
    trace,
)
# isort: on

FLAT = Texture("checker", np.array([[0.8, 0.8, 0.8], [0.2, 0.2, 0.2]]), 0.5, 0.0, np.zeros((8, 8)))


def empty_room(*spheres: Sphere) -> Scene:
    return Scene(
        half_extent=np.array([3.0, 2.0]),
        height=2.5,
        faces=(FLAT,) * 6,
        boxes=(),
        spheres=spheres,
        light=np.array([0.0, 0.0, 2.2]),
    )


def test_trace_hits_the_room_and_a_sphere_at_their_analytic_distances() -> None:
    scene = empty_room(Sphere(np.array([1.0, 1.0, 1.0]), 0.5, FLAT))
    origins = np.array([[0.0, 0.0, 1.5], [0.0, 0.0, 1.5], [0.4, -1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, 2.0]])
    directions = np.array([[0, 0, -1.0], [2.0, 0, 0], [0, 1.0, 0], [0, 0.5, 0], [0, 0, 1.0]])
    t, colour = trace(scene, origins, directions)
    # floor 1.5 below; wall x = 3 at 3 m with a direction of length 2; wall y = 2 just past the sphere's edge;
    # sphere surface 1.5 m ahead = 3 units of a half-length direction; ceiling above the sphere
    np.testing.assert_allclose(t, [1.5, 1.5, 3.0, 3.0, 0.5], rtol=1e-5)
    assert colour.shape == (5, 3) and (colour >= 0).all() and (colour <= 1).all()


def test_objects_cast_shadows_from_the_point_light() -> None:
    lit = trace(empty_room(), np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.0, -1.0]]))[1]
    shadowed = trace(
        empty_room(Sphere(np.array([0.0, 0.0, 1.8]), 0.2, FLAT)),
        np.array([[0.3, 0.0, 1.0]]),
        np.array([[-0.3, 0.0, -1.0]]),
    )[1]
    # the same floor point (the origin), directly under the light, behind a sphere
    assert shadowed.sum() < 0.6 * lit.sum()


def test_camera_rays_pass_through_pixel_centres() -> None:
    K = pixel_intrinsics(torch.tensor([[[0.7, 0, 0.5], [0, 1.05, 0.5], [0, 0, 1.0]]]), 8, 12).double()
    c2w = torch.eye(4, dtype=torch.float64)[None]
    _, directions = camera_rays(c2w, K, 8, 12, 1)
    pixel = np.einsum("ij,hwj->hwi", K[0].numpy(), directions[0])
    columns, rows = np.meshgrid(np.arange(12) + 0.5, np.arange(8) + 0.5)
    np.testing.assert_allclose(pixel[..., 0], columns, atol=1e-5)
    np.testing.assert_allclose(pixel[..., 1], rows, atol=1e-5)
    np.testing.assert_allclose(pixel[..., 2], 1.0)


def test_scenes_are_deterministic_per_seed_and_independent_of_the_scene_count() -> None:
    options = replace(SMALL, frames=6)
    first = generate_scene(options, "train", 1)
    again = generate_scene(replace(options, train_scenes=7), "train", 1)
    other = generate_scene(replace(options, seed=1), "train", 1)
    assert first.key == again.key and np.array_equal(first.images, again.images)
    assert first.key != other.key and not np.array_equal(first.images, other.images)


def test_camera_path_stays_inside_the_room_away_from_objects() -> None:
    for split, index in [("train", 0), ("train", 1), ("test", 0), ("test", 1)]:
        generated = generate_scene(replace(SMALL, height=4, width=6), split, index)
        centres = generated.path.cam_to_world[:, :3, 3].numpy()
        hx, hy = generated.scene.half_extent
        assert (np.abs(centres[:, 0]) < hx - 1.0).all() and (np.abs(centres[:, 1]) < hy - 1.0).all()
        assert ((centres[:, 2] > 1.3) & (centres[:, 2] < generated.scene.height - 0.8)).all()
        assert len(generated.scene.objects) >= 3
        for obj in generated.scene.objects:
            assert _footprint_distance(centres[:, :2], obj).min() >= 0.5
            reach = np.linalg.norm(obj.half_size[:2]) if isinstance(obj, Box) else obj.radius
            assert (np.abs(obj.centre[:2]) + reach < generated.scene.half_extent).all()
        # a smooth walk: steps of a few centimetres, never a jump
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() < 0.06 and steps.min() > 0.005


def visible_fraction(generated, source: int, target: int, height: int, width: int) -> float:
    """Fraction of the source frame's pixels whose surface point is seen (unoccluded) in the target frame."""
    path = generated.path
    K = pixel_intrinsics(path.intrinsics, height, width).double()
    depth = render_depth(generated.scene, path.cam_to_world[[source, target]], K[[source, target]], height, width)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones((height, width))], axis=-1).reshape(-1, 3)
    camera = pixels @ np.linalg.inv(K[source].numpy()).T * depth[0].reshape(-1, 1)
    c2w = path.cam_to_world.numpy()
    world = camera @ c2w[source, :3, :3].T + c2w[source, :3, 3]
    w2c = np.linalg.inv(c2w[target])
    projected = (world @ w2c[:3, :3].T + w2c[:3, 3]) @ K[target].numpy().T
    z = projected[:, 2]
    u, v = projected[:, 0] / np.maximum(z, 1e-9), projected[:, 1] / np.maximum(z, 1e-9)
    inside = (z > 0.05) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    seen = depth[1][np.clip(v, 0, height - 1).astype(int), np.clip(u, 0, width - 1).astype(int)]
    return float((inside & (np.abs(seen - z) < 0.05 * z)).mean())


def test_frames_30_apart_still_share_a_good_part_of_the_view() -> None:
    fractions = []
    for split, index in [("train", 0), ("train", 1), ("train", 2), ("test", 0), ("test", 1)]:
        generated = generate_scene(replace(SMALL, height=4, width=6), split, index)
        for source in range(0, 10, 3):
            fractions += [visible_fraction(generated, source, source + 30, 24, 36)]
            fractions += [visible_fraction(generated, source + 30, source, 24, 36)]
    assert min(fractions) > 0.15 and np.mean(fractions) > 0.25


def test_frames_show_varied_texture(small_dataset) -> None:
    sequence = ChunkDataset(small_dataset.chunks, "train")[ChunkDataset(small_dataset.chunks, "train").keys()[0]]
    for index in (0, 20, 39):
        image = sequence.image(index, None)
        assert image.std() > 0.08  # not a flat colour
        assert image.reshape(3, -1).std(dim=1).min() > 0.03  # every channel varies


def test_generated_dataset_has_every_layout_and_a_valid_split(small_dataset) -> None:
    root = small_dataset.root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["options"]["frames"] == SMALL.frames and (root / MARKER).is_file()
    for split in ("train", "test"):
        index = json.loads((small_dataset.chunks / split / "index.json").read_text())
        assert list(index) == manifest["scenes"][split] and len(index) == SMALL.scenes(split)
        assert len(set(index.values())) == math.ceil(SMALL.scenes(split) / SMALL.scenes_per_chunk)
        assert sorted(p.stem for p in (small_dataset.txt / split).glob("*.txt")) == sorted(index)
    counts = small_dataset.open("test").frame_counts()
    assert small_dataset.open("test", "txt").frame_counts() == counts
    rows = read_split(small_dataset.split_file, counts)
    assert len(rows) == manifest["split_rows"] == len(counts) * 3  # sources 0, 10, 20 of 40 frames (src + 10 < 40)


def test_cache_is_reused_when_complete_and_regenerated_when_not(tmp_path) -> None:
    options = SyntheticOptions(height=8, width=12, train_scenes=1, test_scenes=1, frames=12, write_txt=False)
    dataset = generate_synthetic(options, tmp_path)
    assert dataset.root.name == options.key() and dataset.txt is None
    marker = dataset.root / MARKER
    stamp = marker.stat().st_mtime_ns
    assert generate_synthetic(options, tmp_path).root == dataset.root and marker.stat().st_mtime_ns == stamp
    marker.unlink()  # as if a run was interrupted before the marker
    (dataset.root / "chunks" / "train" / "index.json").write_text("{}")
    again = generate_synthetic(options, tmp_path)
    assert (again.root / MARKER).is_file()
    assert len(json.loads((again.root / "chunks" / "train" / "index.json").read_text())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [options.key()]  # no partial folders left
    assert replace(options, seed=1).key() != options.key()


def test_command_line_generates_into_the_given_cache(tmp_path, capsys) -> None:
    argv = ["--height", "8", "--width", "12", "--train-scenes", "1", "--test-scenes", "1", "--frames", "12"]
    assert main([*argv, "--no-write-txt", "--cache-dir", str(tmp_path)]) == 0
    options = SyntheticOptions(height=8, width=12, train_scenes=1, test_scenes=1, frames=12, write_txt=False)
    assert str(tmp_path / options.key()) in capsys.readouterr().out
    assert (tmp_path / options.key() / MARKER).is_file()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="frames"):
        SyntheticOptions(frames=0)
    with pytest.raises(ValueError, match="jpeg_quality"):
        SyntheticOptions(jpeg_quality=101)
