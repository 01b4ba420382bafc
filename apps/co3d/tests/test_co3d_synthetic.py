"""The synthetic hydrants: deterministic, Co3D-like frames and cameras normalised like the preprocessing, the scene's
colour plane and similarity transform, the cache key and the written layout (the ray caster and the cache are
`splat_apps.synthetic`'s, tested there and by the other apps)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app_co3d.data import load_camera_archive
from app_co3d.synthetic import (
    SyntheticCo3DOptions,
    box,
    cylinder,
    generate,
    look_at_opencv,
    make_hydrant,
    make_scene,
    make_sequence,
    random_similarity,
    render_scene,
    sample_surface,
    similarity_cam_to_world,
    sphere,
)
from splat_apps.synthetic import raycast
from splat_apps.synthetic.cache import MARKER

TINY = SyntheticCo3DOptions(resolution=16, train_sequences=1, val_sequences=0, test_sequences=1, frames_per_sequence=3)


def test_sequences_are_deterministic_and_depend_on_the_seed_and_split() -> None:
    first, again = make_sequence(TINY, "train", 0), make_sequence(TINY, "train", 0)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.R, again.R)
    other = make_sequence(SyntheticCo3DOptions(**{**TINY.__dict__, "seed": 1}), "train", 0)
    assert not np.allclose(first.images, other.images)
    assert not np.allclose(make_sequence(TINY, "test", 0).images, first.images)


def test_frames_look_like_masked_co3d_frames_and_front_and_back_differ() -> None:
    sequence = make_sequence(SyntheticCo3DOptions(resolution=32, frames_per_sequence=8), "train", 3)
    images = sequence.images
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert (images[:, :, 0, :] == 0).all() and (images[:, :, -1, :] == 0).all()  # black background around
    coverage = (images.max(axis=1) > 0).mean(axis=(1, 2))
    assert ((coverage > 0.05) & (coverage < 0.5)).all()  # the object fills a Co3D-like part of every frame
    assert ((images.max(axis=1) > 0) & (images.max(axis=1) < 0.05)).any()  # anti-aliased silhouette pixels
    assert ((sequence.focal_ndc > 1.8) & (sequence.focal_ndc < 3.3)).all() and np.ptp(sequence.focal_ndc) > 0
    distances = np.linalg.norm(sequence.cam_to_world[:, :3, 3], axis=1)
    assert ((distances > 1.2) & (distances < 5.0)).all()  # normalised object (1.14 cube), realistic distances
    assert np.abs(images[0] - images[4]).mean() > 0.02  # half an orbit apart


def test_cameras_are_normalised_like_the_preprocessing() -> None:
    sequence = make_sequence(SyntheticCo3DOptions(resolution=16, frames_per_sequence=12), "train", 1)
    points = sample_surface(sequence.scene, np.random.default_rng(0), 20000)
    assert np.abs(points).max() == pytest.approx(0.57, rel=0.03)  # fits the 1.2 * 0.95 cube
    up = -sequence.cam_to_world[:, :3, 1]  # camera "up" (OpenCV -y) in world coordinates
    assert (up[:, 1] > 0.8).all()  # the world is levelled: +y up, as ViewSet Diffusion's normalisation leaves it
    # PyTorch3D R, T written: the OpenCV pose follows from them with x and y flipped
    w2c = np.linalg.inv(sequence.cam_to_world)
    np.testing.assert_allclose(np.diag([-1, -1, 1]) @ np.swapaxes(sequence.R, 1, 2), w2c[:, :3, :3], atol=1e-9)
    np.testing.assert_allclose(sequence.T * [-1, -1, 1], w2c[:, :3, 3], atol=1e-9)


def test_the_scene_places_the_primitives_and_colours_by_the_colour_plane() -> None:
    red, blue = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    scene = make_scene(
        [
            (sphere(np.array([0, 0, 5.0]), 1.0), (red, blue)),
            (cylinder(np.array([3.0, 0, 5]), np.array([0, 1.0, 0]), 0.5, 1.0), (red, blue)),  # along y
            (box(np.array([-3.0, 0, 5]), np.eye(3), np.array([0.5, 0.5, 0.5])), (red, blue)),
        ],
        light=np.array([0, 0, -1.0]),  # from the camera
        colour_origin=np.array([0, 0, 5.0]),
        front=np.array([0, 0, -1.0]),  # the camera side is the "front" (dot(p - o, front) >= 0)
    )
    described = scene.described()
    origins = torch.tensor([[0.0, 0, 0]] * 5 + [[0, 0, 10.0]])
    directions = torch.tensor([[0, 0, 1.0], [3, 0, 5.0], [3, 0.95, 5.0], [-3, 0, 5.0], [0, 1.0, 0], [0, 0, -1.0]])
    hits = raycast.intersect(described.primitives, origins, directions)
    assert hits.primitive.tolist() == [0, 1, 1, 2, -1, 0]  # the cylinder's axis is y: the third ray hits it
    points = origins + hits.t.nan_to_num(posinf=0)[:, None] * directions
    colour = raycast.shade(described, hits, points, directions)
    torch.testing.assert_close(colour[0], torch.tensor([1.0, 0, 0]))  # front, fully lit (the light faces it)
    assert (colour[1:4, 0] > 0.35).all() and (colour[1:4, 1:] == 0).all()  # front colour, shaded
    assert colour[4].tolist() == [0, 0, 0]  # black background
    torch.testing.assert_close(colour[5], torch.tensor([0, 0, 0.35]))  # back colour, lit from behind: ambient
    labels = described.label(hits, points)
    assert labels[0] != labels[5]  # edge detection also sees the colour plane


def test_a_transformed_scene_looks_the_same_from_the_transformed_cameras() -> None:
    rng = np.random.default_rng(3)
    scene = make_hydrant(rng)
    eyes = (np.array([0.5, 0.8, 2.5]), np.array([-0.5, 0.8, -2.5]))  # in front of and behind the colour plane
    poses = np.stack([look_at_opencv(eye, np.array([0, 0.4, 0]), np.array([0, 1.0, 0])) for eye in eyes])
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    similarity = random_similarity(rng)  # rotation, scale and offset: centres, axes, sizes, plane and light move
    before = render_scene(scene, torch.from_numpy(poses), K, 32, 32)
    moved_poses = torch.from_numpy(similarity_cam_to_world(poses, similarity))
    after = render_scene(scene.transformed(similarity), moved_poses, K, 32, 32)
    assert (before.depth.isfinite().float().mean(dim=(1, 2)) > 0.05).all()  # the object is in view
    assert (before.rgb - after.rgb).abs().mean() < 1e-4  # a plane or light left unmoved: ~0.01
    torch.testing.assert_close(after.depth.isfinite(), before.depth.isfinite())


def test_the_dataset_is_written_in_the_preprocessed_layout_under_its_key(tmp_path: Path) -> None:
    root = generate(TINY, cache=tmp_path)
    assert root.name == "co3d_synthetic_for_gs" and (root.parent / MARKER).is_file()
    assert root.parent.name == TINY.key() and TINY.key().startswith("co3d-res16-seed0-")
    assert SyntheticCo3DOptions(**{**TINY.__dict__, "frames_per_sequence": 4}).key() != TINY.key()
    manifest = json.loads((root.parent / "manifest.json").read_text())
    assert manifest["options"]["resolution"] == 16 and manifest["key"] == TINY.key()
    assert manifest["sequences"] == {"train": ["synthetic_train_000"], "val": [], "test": ["synthetic_test_000"]}
    assert set(load_camera_archive(root / "train" / "camera_Rs.npz")) == {"synthetic_train_000"}
    frames = (root / "test" / "synthetic_test_000" / "frame_order.txt").read_text()
    assert frames == "00000.png\n00001.png\n00002.png\n"
    assert np.load(root / "test" / "synthetic_test_000" / "focal_lengths.npy").shape == (3, 1, 2)
    assert generate(TINY, cache=tmp_path) == root


@pytest.mark.parametrize("field", ["frames_per_sequence", "resolution", "supersampling", "test_sequences"])
def test_options_are_validated(field: str) -> None:
    minimum = {"frames_per_sequence": 2, "test_sequences": 0}.get(field, 1)
    with pytest.raises(ValueError, match=f"{field} must be >= {minimum}"):
        SyntheticCo3DOptions(**{field: minimum - 1})
