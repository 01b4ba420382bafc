"""Malformed preprocessed files give one clear `Co3DDataError` naming the offending path."""

from pathlib import Path

import numpy as np
import pytest
from co3d_fixtures import random_sequence_arrays, write_sequence

from app_co3d.data import Co3DDataError, Co3DDataset, check_dataset, main

NAME = "900_1_1"


@pytest.fixture
def split(tmp_path: Path) -> Path:
    split = tmp_path / "co3d_hydrant_for_gs" / "train"
    write_sequence(split, NAME, *random_sequence_arrays(4))
    return split


def load(split: Path):
    return Co3DDataset(split.parent, "train").load(0)


def rewrite_archive(path: Path, **entries) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(entries)
    for key in [k for k, v in arrays.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def test_a_valid_sequence_loads(split: Path):
    assert load(split).num_views == 4
    assert check_dataset(split.parent, ["train"]).ok


def test_missing_camera_entry_names_the_archive(split: Path):
    rewrite_archive(split / "camera_Ts.npz", **{NAME: None, "other": np.zeros((4, 3))})
    with pytest.raises(Co3DDataError, match=r"camera_Ts\.npz: no entry for sequence '900_1_1'"):
        Co3DDataset(split.parent, "train")


def test_missing_camera_archive_names_it(split: Path):
    (split / "camera_Rs.npz").unlink()
    with pytest.raises(Co3DDataError, match=r"camera_Rs\.npz: missing camera archive"):
        Co3DDataset(split.parent, "train")


def test_pickled_camera_entry_is_refused(split: Path):
    np.savez(split / "camera_Rs.npz", **{NAME: np.array([{"R": 1}], dtype=object)})
    with pytest.raises(Co3DDataError, match=r"camera_Rs\.npz.*not a plain numeric array"):
        Co3DDataset(split.parent, "train")


@pytest.mark.parametrize(
    ("file", "array", "message"),
    [
        ("images_fg.npy", np.zeros((4, 16, 16, 3), np.float32), r"images_fg\.npy: images must have shape \[N 3 H H\]"),
        ("images_fg.npy", np.zeros((4, 3, 16, 12), np.float32), r"images_fg\.npy: images must have shape"),
        (
            "focal_lengths.npy",
            np.ones((4, 2), np.float32),
            r"focal_lengths\.npy: focal lengths must have shape \[N 1 2\]",
        ),
        ("focal_lengths.npy", -np.ones((4, 1, 2), np.float32), r"focal_lengths\.npy: focal lengths must be finite"),
        ("images_fg.npy", np.zeros((5, 3, 16, 16), np.float32), r"images_fg\.npy: frame count mismatch"),
        ("focal_lengths.npy", np.ones((3, 1, 2), np.float32), r"focal_lengths\.npy: frame count mismatch"),
        ("images_fg.npy", np.full((4, 3, 16, 16), 255.0, np.float32), r"images_fg\.npy: values must lie in \[0, 1\]"),
        ("images_fg.npy", np.array([{"a": 1}] * 4, dtype=object), r"images_fg\.npy: unreadable images_fg\.npy"),
    ],
)
def test_wrong_arrays_name_their_file(split: Path, file: str, array: np.ndarray, message: str):
    np.save(split / NAME / file, array, allow_pickle=True)
    with pytest.raises(Co3DDataError, match=message):
        load(split)


def test_nan_images_name_the_file(split: Path):
    images = np.load(split / NAME / "images_fg.npy")
    images[2, 0, 3, 3] = np.nan
    np.save(split / NAME / "images_fg.npy", images)
    with pytest.raises(Co3DDataError, match=r"images_fg\.npy: non-finite values"):
        load(split)


def test_camera_problems_name_the_archive(split: Path):
    R = np.load(split / "camera_Rs.npz")[NAME]
    rewrite_archive(split / "camera_Rs.npz", **{NAME: R[:3]})
    with pytest.raises(Co3DDataError, match=r"camera_Rs\.npz: frame count mismatch in sequence '900_1_1'"):
        load(split)
    rewrite_archive(split / "camera_Rs.npz", **{NAME: R * 2})
    with pytest.raises(Co3DDataError, match=r"camera_Rs\.npz: entry '900_1_1' is not a rotation"):
        load(split)
    rewrite_archive(split / "camera_Rs.npz", **{NAME: R[:, :2]})
    with pytest.raises(Co3DDataError, match=r"camera_Rs\.npz: entry '900_1_1' must have shape \[N 3 3\]"):
        load(split)
    rewrite_archive(split / "camera_Rs.npz", **{NAME: R})
    T = np.load(split / "camera_Ts.npz")[NAME]
    T[1, 2] = np.nan
    rewrite_archive(split / "camera_Ts.npz", **{NAME: T})
    with pytest.raises(Co3DDataError, match=r"camera_Ts\.npz: entry '900_1_1' has non-finite values"):
        load(split)


def test_frame_order_problems_name_the_file(split: Path):
    (split / NAME / "frame_order.txt").write_text("00000.png\n00001.png\n")
    with pytest.raises(Co3DDataError, match=r"frame_order\.txt: frame count mismatch.*frame_order\.txt: 2"):
        load(split)
    (split / NAME / "frame_order.txt").write_text("\n")
    with pytest.raises(Co3DDataError, match=r"frame_order\.txt: frame order lists no frames"):
        load(split)


def test_missing_files_and_folders_are_named(split: Path, tmp_path: Path):
    (split / NAME / "focal_lengths.npy").unlink()
    with pytest.raises(Co3DDataError, match=r"focal_lengths\.npy: missing focal_lengths\.npy"):
        load(split)
    with pytest.raises(Co3DDataError, match=r"missing split folder"):
        Co3DDataset(split.parent, "val")
    with pytest.raises(Co3DDataError, match="co3d_<category>_for_gs"):
        Co3DDataset(tmp_path, "train")


def test_dataset_check_lists_every_problem(split: Path, capsys: pytest.CaptureFixture):
    (split / NAME / "focal_lengths.npy").unlink()
    check = check_dataset(split.parent, ["train", "val"])
    assert not check.ok and len(check.problems) == 2  # the missing file and the missing val split
    assert main(["--check-data", str(split.parent)]) == 1
    assert "focal_lengths.npy" in capsys.readouterr().out
