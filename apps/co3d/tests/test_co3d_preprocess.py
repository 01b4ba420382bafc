"""preprocess.py on a tiny raw Co3D v2 category (three flat-coloured spheres seen by known cameras, in the Co3D
annotation format): the reader's cameras then project the known 3D points to where the spheres are in the images, for
both Co3D intrinsics formats, landscape / portrait / square frames and off-centre principal points."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import UP, RawCo3D, pytorch3d_of_cam_to_world, spheres_of, write_raw_co3d

from app_co3d.data import Co3DDataError, Co3DDataset, read_frame_order
from app_co3d.preprocess import (
    PreprocessConfig,
    SequenceNormalization,
    Viewpoint,
    intrinsics_in_pixels,
    main,
    max_half_side,
    preprocess,
    read_frame_annotations,
    viewset_normalization,
)
from app_co3d.synthetic import look_at_opencv

RESOLUTION = 64


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> RawCo3D:
    return write_raw_co3d(tmp_path_factory.mktemp("co3d_raw"))


@pytest.fixture(scope="module")
def processed(raw: RawCo3D, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("co3d_out")
    return preprocess(PreprocessConfig(co3d_root=raw.root, out=out, resolution=RESOLUTION), log=lambda _: None)


def report(root: Path) -> dict:
    return json.loads((root / "preprocess_report.json").read_text())


def normalization_of(root: Path, split: str, name: str) -> SequenceNormalization:
    entry = report(root)["splits"][split]["normalization"][name]
    return SequenceNormalization(np.array(entry["rotation"]), np.array(entry["offset"]), entry["scale"])


def expected_crop_pixel(point: np.ndarray, cam_to_world: np.ndarray, K: np.ndarray, height: int, width: int):
    """Where a raw-frame point lands in the 128-style crop, from the original camera alone (no app code)."""
    x = np.linalg.inv(cam_to_world) @ np.append(point, 1.0)
    u, v = K[0, 0] * x[0] / x[2] + K[0, 2], K[1, 1] * x[1] / x[2] + K[1, 2]
    half = min(K[0, 2], width - K[0, 2], K[1, 2], height - K[1, 2])
    return np.array([u - (K[0, 2] - half), v - (K[1, 2] - half)]) * RESOLUTION / (2 * half)


def project(world_to_cam: torch.Tensor, K: torch.Tensor, point: np.ndarray) -> np.ndarray:
    x = world_to_cam.double() @ torch.tensor([*point, 1.0], dtype=torch.float64)
    pixel = K.double() @ (x[:3] / x[2])
    return pixel[:2].numpy()


def colour_centroid(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Centroid (pixel coordinates, centres at +0.5) of the pixels of `image` [3 H W] close to `colour`."""
    close = np.abs(image - colour[:, None, None]).max(axis=0) < 0.2
    rows, cols = np.nonzero(close)
    assert len(rows) > 3, "the sphere is not in the image"
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


@pytest.mark.parametrize(
    ("split", "name"), [("train", "100_1000_2000"), ("val", "200_2000_3000"), ("test", "300_3000_4000")]
)
def test_reader_cameras_project_known_points_onto_the_objects(raw: RawCo3D, processed: Path, split: str, name: str):
    dataset = Co3DDataset(processed, split)
    sequence = dataset.load(dataset.sequence_names.index(name))
    info = raw.sequences[name]
    normalization = normalization_of(processed, split, name)
    for view, frame_number in enumerate(info.frame_numbers):  # frames in timestamp order
        for centre, _, colour in spheres_of(raw.scene):
            expected = expected_crop_pixel(centre, info.cam_to_world[view], info.K[view], info.height, info.width)
            projected = project(sequence.world_to_cam[view], sequence.K[view], normalization.apply(centre))
            np.testing.assert_allclose(projected, expected, atol=2e-3)  # cameras: exact up to float32 storage
            centroid = colour_centroid(sequence.images[view].numpy(), colour)
            np.testing.assert_allclose(centroid, projected, atol=0.75)  # images: where the cameras say
        assert frame_number in info.frame_numbers


def test_focal_lengths_are_rescaled_to_the_principal_point_crop(raw: RawCo3D, processed: Path):
    for split, name in (("train", "100_1000_2000"), ("val", "200_2000_3000")):
        info = raw.sequences[name]
        focal = np.load(processed / split / name / "focal_lengths.npy", allow_pickle=False)
        assert focal.shape == (len(info.K), 1, 2)
        for view, K in enumerate(info.K):
            half = min(K[0, 2], info.width - K[0, 2], K[1, 2], info.height - K[1, 2])
            np.testing.assert_allclose(focal[view, 0], [K[0, 0] / half, K[1, 1] / half], rtol=1e-5)


def test_frames_follow_timestamps_and_are_named_by_set_list_position(raw: RawCo3D, processed: Path):
    for split, entries in raw.set_lists.items():
        for name in {e[0] for e in entries} - {"101_1001_2001"}:
            positions = {number: i for i, (seq, number, _) in enumerate(entries) if seq == name}
            expected = [f"{positions[n]:05d}.png" for n in raw.sequences[name].frame_numbers]
            assert list(read_frame_order(processed / split / name / "frame_order.txt")) == expected


def test_sequence_with_nan_focal_is_skipped_but_keeps_its_cameras(processed: Path):
    assert not (processed / "train" / "101_1001_2001").exists()
    assert "non-finite" in report(processed)["splits"]["train"]["skipped"]["101_1001_2001"]
    with np.load(processed / "train" / "camera_Rs.npz", allow_pickle=False) as archive:
        assert set(archive.files) == {"100_1000_2000", "101_1001_2001"}  # as upstream: cameras of every sequence
    assert Co3DDataset(processed, "train").sequence_names == ("100_1000_2000",)


def test_images_are_foreground_on_black_in_unit_range(processed: Path):
    images = np.load(processed / "test" / "300_3000_4000" / "images_fg.npy", allow_pickle=False)
    assert images.dtype == np.float32 and images.shape[1:] == (3, RESOLUTION, RESOLUTION)
    assert images.min() >= 0 and images.max() <= 1
    assert (images[:, :, :3, :3] == 0).all()  # the corners are background
    assert (images.max(axis=(1, 2, 3)) > 0.5).all()


def test_normalised_point_cloud_fills_the_cube_with_up_along_y(raw: RawCo3D, processed: Path):
    normalization = normalization_of(processed, "test", "300_3000_4000")
    centres = np.stack([centre for centre, _, _ in spheres_of(raw.scene)])
    radii = np.array([radius for _, radius, _ in spheres_of(raw.scene)])
    normalised = normalization.apply(centres)
    extent = np.abs(normalised).max(axis=0) + radii * normalization.scale
    assert extent.max() == pytest.approx(1.2 * 0.95 / 2, rel=0.02)  # the cloud touches the 1.14 cube
    np.testing.assert_allclose(np.abs(normalization.rotation[:, 1] @ raw.up), 1.0, atol=1e-3)  # levelled
    assert normalization.rotation[:, 1] @ raw.up > 0  # and not upside down
    top, bottom = normalised[:, 1].max(), normalised[:, 1].min()  # spheres of one radius
    assert top == pytest.approx(-bottom, abs=0.01)  # centred along up


def test_origin_distance_is_the_normalised_object_centre_depth(raw: RawCo3D, processed: Path):
    dataset = Co3DDataset(processed, "test")
    sequence = dataset.load(0)
    info = raw.sequences["300_3000_4000"]
    normalization = normalization_of(processed, "test", "300_3000_4000")
    origin_raw = normalization.offset @ normalization.rotation.T  # the point mapped to the origin
    for view, pose in enumerate(info.cam_to_world):
        depth_raw = (np.linalg.inv(pose) @ np.append(origin_raw, 1.0))[2]
        assert float(sequence.origin_distances[view]) == pytest.approx(depth_raw * normalization.scale, rel=1e-4)


def test_without_normalisation_cameras_are_the_annotated_ones(raw: RawCo3D, tmp_path: Path):
    root = preprocess(
        PreprocessConfig(co3d_root=raw.root, out=tmp_path, resolution=32, splits=("val",), normalization="none"),
        log=lambda _: None,
    )
    annotations = {
        (f.sequence_name, f.frame_number): f
        for f in read_frame_annotations(raw.root / raw.category / "frame_annotations.jgz")
    }
    info = raw.sequences["200_2000_3000"]
    with np.load(root / "val" / "camera_Rs.npz", allow_pickle=False) as archive:
        R = archive["200_2000_3000"]
    expected = np.stack([annotations[("200_2000_3000", n)].viewpoint.R for n in info.frame_numbers])
    np.testing.assert_allclose(R, expected, atol=1e-6)


def test_intrinsics_follow_pytorch3d_for_both_formats():
    viewpoint = Viewpoint(np.eye(3), np.zeros(3), np.array([2.0, 2.0]), np.array([0.1, -0.2]), "ndc_isotropic")
    focal, principal = intrinsics_in_pixels(viewpoint, (100, 200))  # H 100, W 200: s = 50
    np.testing.assert_allclose(focal, [100.0, 100.0])
    np.testing.assert_allclose(principal, [100 - 5.0, 50 + 10.0])  # +x NDC is left, +y NDC is up
    legacy = Viewpoint(np.eye(3), np.zeros(3), np.array([2.0, 4.0]), np.array([0.1, -0.2]), "ndc_norm_image_bounds")
    focal, principal = intrinsics_in_pixels(legacy, (100, 200))  # s = (100, 50)
    np.testing.assert_allclose(focal, [200.0, 200.0])
    np.testing.assert_allclose(principal, [100 - 10.0, 50 + 10.0])
    assert max_half_side(np.array([95.0, 60.0]), (100, 200)) == 40.0
    with pytest.raises(ValueError, match="intrinsics_format"):
        intrinsics_in_pixels(Viewpoint(np.eye(3), np.zeros(3), np.ones(2), np.zeros(2), "screen"), (10, 10))


def test_viewset_normalisation_maps_cameras_and_points_consistently():
    rng = np.random.default_rng(3)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    eyes = np.stack([np.sin(angles), np.full(12, 0.3), np.cos(angles)], axis=1)  # orbiting the y axis
    R = np.stack([pytorch3d_of_cam_to_world(look_at_opencv(eye, np.zeros(3), UP))[0] for eye in eyes])
    T = rng.normal(size=(12, 3))
    points = rng.normal(size=(500, 3)) * [0.3, 1.0, 0.5] + [1.0, 2.0, 3.0]
    normalization = viewset_normalization(R, T, points)
    R_new, T_new = normalization.apply_to_cameras(R, T)
    cam_old = np.einsum("mi,nij->nmj", points, R) + T[:, None]
    cam_new = np.einsum("mi,nij->nmj", normalization.apply(points), R_new) + T_new[:, None]
    np.testing.assert_allclose(cam_new, normalization.scale * cam_old, atol=1e-9)
    np.testing.assert_allclose(np.abs(normalization.apply(points)).max(), 0.57, rtol=1e-9)
    np.testing.assert_allclose(normalization.rotation[:, 1], [0, 1, 0], atol=1e-9)  # up = the orbit axis
    assert np.linalg.det(normalization.rotation) == pytest.approx(1.0)
    assert normalization.notes == ()


def test_annotations_are_read_and_malformed_ones_reported_with_their_path(raw: RawCo3D, tmp_path: Path):
    frames = read_frame_annotations(raw.root / raw.category / "frame_annotations.jgz")
    first = next(f for f in frames if f.sequence_name == "100_1000_2000")
    assert first.image_size_hw == (120, 160)  # (H, W)
    assert first.viewpoint is not None and first.viewpoint.intrinsics_format == "ndc_isotropic"
    broken = tmp_path / "frame_annotations.jgz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(Co3DDataError, match="frame_annotations.jgz"):
        read_frame_annotations(broken)
    with pytest.raises(Co3DDataError, match="set_lists_fewview_test.json"):
        preprocess(PreprocessConfig(co3d_root=raw.root, out=tmp_path / "o", subset="fewview_test"), log=lambda _: None)


def test_command_line_refuses_to_overwrite(raw: RawCo3D, tmp_path: Path, capsys: pytest.CaptureFixture):
    arguments = ["--co3d-root", str(raw.root), "--out", str(tmp_path), "--resolution", "16", "--splits", "test"]
    assert main(arguments) == 0
    assert (tmp_path / "co3d_hydrant_for_gs" / "test" / "300_3000_4000" / "images_fg.npy").is_file()
    assert main(arguments) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == 0


@pytest.mark.slow
def test_worker_processes_write_the_same_dataset(raw: RawCo3D, tmp_path: Path):
    config = PreprocessConfig(co3d_root=raw.root, out=tmp_path / "one", resolution=16, splits=("train",))
    one = preprocess(config, log=lambda _: None)
    two = preprocess(PreprocessConfig(**{**config.__dict__, "out": tmp_path / "two", "workers": 2}), log=lambda _: None)
    for relative in ("train/100_1000_2000/images_fg.npy", "train/100_1000_2000/focal_lengths.npy"):
        np.testing.assert_array_equal(np.load(one / relative), np.load(two / relative))
    assert report(one)["splits"] == report(two)["splits"]
