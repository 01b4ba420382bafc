"""The synthetic generator: deterministic, Co3D-like, cached by options, written in the preprocessed layout."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app_co3d import synthetic
from app_co3d.data import Co3DDataset, load_camera_archive
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


def test_sequences_are_deterministic_and_depend_on_the_seed():
    first, again = make_sequence(TINY, "train", 0), make_sequence(TINY, "train", 0)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.R, again.R)
    other = make_sequence(SyntheticCo3DOptions(**{**TINY.__dict__, "seed": 1}), "train", 0)
    assert not np.allclose(first.images, other.images)
    assert not np.allclose(make_sequence(TINY, "test", 0).images, first.images)


def test_frames_look_like_masked_co3d_frames():
    options = SyntheticCo3DOptions(resolution=32, frames_per_sequence=8)
    sequence = make_sequence(options, "train", 3)
    images = sequence.images
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert (images[:, :, 0, :] == 0).all() and (images[:, :, -1, :] == 0).all()  # black background around
    coverage = (images.max(axis=1) > 0).mean(axis=(1, 2))
    assert ((coverage > 0.05) & (coverage < 0.5)).all()  # the object fills a Co3D-like part of every frame
    assert ((sequence.focal_ndc > 1.8) & (sequence.focal_ndc < 3.3)).all()
    assert np.ptp(sequence.focal_ndc) > 0  # per-frame focal lengths
    distances = np.linalg.norm(sequence.cam_to_world[:, :3, 3], axis=1)
    assert ((distances > 1.2) & (distances < 5.0)).all()  # normalised object (1.14 cube), realistic distances
    antialiased = (images.max(axis=1) > 0) & (images.max(axis=1) < 0.05)
    assert antialiased.any()  # partially covered silhouette pixels


def test_cameras_are_normalised_like_the_preprocessing():
    sequence = make_sequence(SyntheticCo3DOptions(resolution=16, frames_per_sequence=12), "train", 1)
    points = sample_surface(sequence.scene, np.random.default_rng(0), 20000)
    assert np.abs(points).max() == pytest.approx(0.57, rel=0.03)  # fits the 1.2 * 0.95 cube
    up = -sequence.cam_to_world[:, :3, 1]  # camera "up" (OpenCV -y) in world coordinates
    assert (up[:, 1] > 0.8).all()  # the world is levelled: +y up, as ViewSet Diffusion's normalisation leaves it
    # PyTorch3D R, T written: the OpenCV pose follows from them with x and y flipped
    w2c = np.linalg.inv(sequence.cam_to_world)
    np.testing.assert_allclose(np.diag([-1, -1, 1]) @ np.swapaxes(sequence.R, 1, 2), w2c[:, :3, :3], atol=1e-9)
    np.testing.assert_allclose(sequence.T * [-1, -1, 1], w2c[:, :3, 3], atol=1e-9)


def test_front_and_back_of_an_object_differ():
    options = SyntheticCo3DOptions(resolution=32, frames_per_sequence=8)
    images = make_sequence(options, "train", 0).images
    assert np.abs(images[0] - images[4]).mean() > 0.02  # half an orbit apart


def test_scene_description_places_the_primitives_and_the_colour_plane():
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


def test_silhouettes_are_antialiased():
    white = np.ones(3)
    scene = make_scene([(sphere(np.zeros(3), 1.0), (white, white))], np.array([0, 0, -1.0]))
    flat = replace(scene, ambient=1.0)  # no shading: the image is the coverage
    pose = torch.from_numpy(look_at_opencv(np.array([0, 0, -4.0]), np.zeros(3), np.array([0, 1.0, 0])))[None]
    K = torch.tensor([[[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]])
    render = render_scene(flat, pose, K, 32, 32, supersampling=4)
    coverage = render.rgb[0, 0]
    expected_area = np.pi * (40 / np.sqrt(15)) ** 2  # the sphere's silhouette: radius f r / sqrt(d^2 - r^2)
    assert float(coverage.sum()) == pytest.approx(expected_area, rel=0.02)
    assert ((coverage > 0) & (coverage < 1)).any()
    assert int(render.depth.isfinite().sum()) == pytest.approx(expected_area, rel=0.05)  # hits at pixel centres


def test_a_transformed_scene_looks_the_same_from_the_transformed_cameras():
    rng = np.random.default_rng(3)
    scene = make_hydrant(rng)
    eyes = (np.array([0.5, 0.8, 2.5]), np.array([-0.5, 0.8, -2.5]))  # in front of and behind the colour plane
    poses = np.stack([look_at_opencv(eye, np.array([0, 0.4, 0]), np.array([0, 1.0, 0])) for eye in eyes])
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    similarity = random_similarity(rng)  # rotation, scale and offset: centres, axes, sizes, plane and light move
    before = render_scene(scene, torch.from_numpy(poses), K, 32, 32)
    after = render_scene(
        scene.transformed(similarity), torch.from_numpy(similarity_cam_to_world(poses, similarity)), K, 32, 32
    )
    assert (before.depth.isfinite().float().mean(dim=(1, 2)) > 0.05).all()  # the object is in view
    assert (before.rgb - after.rgb).abs().mean() < 1e-4  # a plane or light left unmoved: ~0.01
    torch.testing.assert_close(after.depth.isfinite(), before.depth.isfinite())


def test_generate_caches_by_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = generate(TINY, cache=tmp_path)
    assert root.name == "co3d_synthetic_for_gs" and (root.parent / MARKER).is_file()
    assert root.parent.name == TINY.key() and TINY.key().startswith("co3d-res16-seed0-")
    manifest = json.loads((root.parent / "manifest.json").read_text())
    assert manifest["options"]["resolution"] == 16 and manifest["key"] == TINY.key()
    assert manifest["sequences"] == {"train": ["synthetic_train_000"], "val": [], "test": ["synthetic_test_000"]}
    assert set(load_camera_archive(root / "train" / "camera_Rs.npz")) == {"synthetic_train_000"}

    def fail(*args, **kwargs):
        raise AssertionError("a cached dataset must not be regenerated")

    monkeypatch.setattr(synthetic, "write_split", fail)
    assert generate(TINY, cache=tmp_path) == root
    other = SyntheticCo3DOptions(**{**TINY.__dict__, "frames_per_sequence": 4})
    assert other.key() != TINY.key()
    with pytest.raises(AssertionError, match="regenerated"):
        generate(other, cache=tmp_path)
    assert not (tmp_path / other.key()).exists()  # no half-written dataset left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_generated_dataset_reads_back(tmp_path: Path):
    root = generate(TINY, cache=tmp_path)
    dataset = Co3DDataset(root, "test")
    example = dataset.evaluation_example(0)
    assert example.target_views.tolist() == [0, 1, 2]
    assert example.target_images.shape == (3, 3, 16, 16)


def test_options_are_validated():
    with pytest.raises(ValueError, match="frames_per_sequence"):
        SyntheticCo3DOptions(frames_per_sequence=1)
    with pytest.raises(ValueError, match="resolution"):
        SyntheticCo3DOptions(resolution=0)
