"""Malformed preprocessed files give one clear `Co3DDataError` naming the offending path."""

from pathlib import Path

import numpy as np
import pytest
from co3d_fixtures import update_archive, write_hydrants

from app_co3d.data import Co3DDataError, Co3DDataset, check_dataset, main

NAME = "900_1_1"  # the first sequence, of 4 views


@pytest.fixture
def split(tmp_path: Path) -> Path:
    return write_hydrants(tmp_path / "co3d_hydrant_for_gs", ["train"]) / "train"


def load(split: Path) -> None:
    Co3DDataset(split.parent, "train").load(0)


def test_a_valid_dataset_loads_and_checks(split: Path) -> None:
    load(split)
    assert check_dataset(split.parent, ["train"]).ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda split: update_archive(split / "camera_Ts.npz", **{NAME: None}),
            r"camera_Ts\.npz: no entry for sequence '900_1_1'",
        ),
        (lambda split: (split / "camera_Rs.npz").unlink(), r"camera_Rs\.npz: missing camera archive"),
        (
            lambda split: np.savez(split / "camera_Rs.npz", **{NAME: np.array([{"R": 1}], dtype=object)}),
            r"camera_Rs\.npz: entry '900_1_1' is not a plain numeric array",
        ),
    ],
    ids=["no entry", "no archive", "pickled"],
)
def test_archive_problems_name_the_archive(split: Path, change, message: str) -> None:
    change(split)
    with pytest.raises(Co3DDataError, match=message):
        Co3DDataset(split.parent, "train")


@pytest.mark.parametrize(
    ("file", "array", "message"),
    [
        ("images_fg.npy", np.zeros((4, 16, 16, 3), np.float32), r"images_fg\.npy: images must have shape \[N 3 H H\]"),
        ("images_fg.npy", np.zeros((4, 3, 16, 12), np.float32), r"images_fg\.npy: images must have shape"),
        ("focal_lengths.npy", np.ones((4, 2), np.float32), r"focal_lengths\.npy: focal lengths must have shape"),
        ("focal_lengths.npy", -np.ones((4, 1, 2), np.float32), r"focal_lengths\.npy: focal lengths must be finite"),
        ("images_fg.npy", np.zeros((5, 3, 16, 16), np.float32), r"images_fg\.npy: frame count mismatch"),
        ("focal_lengths.npy", np.ones((3, 1, 2), np.float32), r"focal_lengths\.npy: frame count mismatch"),
        ("images_fg.npy", np.full((4, 3, 16, 16), 255.0, np.float32), r"images_fg\.npy: values must lie in \[0, 1\]"),
        ("images_fg.npy", np.full((4, 3, 16, 16), np.nan, np.float32), r"images_fg\.npy: non-finite values"),
        ("images_fg.npy", np.array([{"a": 1}] * 4, dtype=object), r"images_fg\.npy: unreadable images_fg\.npy"),
        ("focal_lengths.npy", None, r"focal_lengths\.npy: missing focal_lengths\.npy"),
    ],
)
def test_wrong_arrays_name_their_file(split: Path, file: str, array: np.ndarray | None, message: str) -> None:
    if array is None:
        (split / NAME / file).unlink()
    else:
        np.save(split / NAME / file, array, allow_pickle=True)
    with pytest.raises(Co3DDataError, match=message):
        load(split)


@pytest.mark.parametrize(
    ("archive", "change", "message"),
    [
        ("camera_Rs.npz", lambda R: R[:3], r"camera_Rs\.npz: frame count mismatch in sequence '900_1_1'"),
        ("camera_Rs.npz", lambda R: R * 2, r"camera_Rs\.npz: entry '900_1_1' is not a rotation"),
        ("camera_Rs.npz", lambda R: R[:, :2], r"camera_Rs\.npz: entry '900_1_1' must have shape \[N 3 3\]"),
        ("camera_Ts.npz", lambda T: T * np.nan, r"camera_Ts\.npz: entry '900_1_1' has non-finite values"),
    ],
    ids=["count", "scaled", "shape", "nan"],
)
def test_camera_problems_name_the_archive(split: Path, archive: str, change, message: str) -> None:
    with np.load(split / archive) as cameras:
        update_archive(split / archive, **{NAME: change(cameras[NAME])})
    with pytest.raises(Co3DDataError, match=message):
        load(split)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("00000.png\n00001.png\n", r"frame_order\.txt: frame count mismatch.*frame_order\.txt: 2"),
        ("\n", r"frame_order\.txt: frame order lists no frames"),
    ],
)
def test_frame_order_problems_name_the_file(split: Path, text: str, message: str) -> None:
    (split / NAME / "frame_order.txt").write_text(text)
    with pytest.raises(Co3DDataError, match=message):
        load(split)


def test_missing_folders_are_named(split: Path, tmp_path: Path) -> None:
    with pytest.raises(Co3DDataError, match=r"missing split folder"):
        Co3DDataset(split.parent, "val")
    with pytest.raises(Co3DDataError, match="co3d_<category>_for_gs"):
        Co3DDataset(tmp_path, "train")


def test_the_dataset_check_lists_every_problem(split: Path, capsys: pytest.CaptureFixture) -> None:
    (split / NAME / "focal_lengths.npy").unlink()
    check = check_dataset(split.parent, ["train", "val"])
    assert not check.ok and len(check.problems) == 2  # the missing file and the missing val split
    assert main(["--check-data", str(split.parent)]) == 1
    assert "focal_lengths.npy" in capsys.readouterr().out
