"""Every malformed file or folder raises SRNDataError naming its path and the problem; `check_dataset` and the
`--check-data` command list every planted problem."""

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_srn.data import SRNDataError, SRNDataset, check_dataset, find_split_dir, main, read_image, read_pose

APP_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def dataset_copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dataset, free to break."""
    return Path(shutil.copytree(tiny_root, tmp_path / "srn_synthetic_cars"))


def first_object(root: Path, split: str = "train") -> Path:
    return sorted((root / f"synthetic_cars_{split}").iterdir())[0]


def remove_pose(obj: Path) -> Path:
    (obj / "pose" / "000002.txt").unlink()
    return obj / "pose" / "000002.txt"


def extra_pose(obj: Path) -> Path:
    shutil.copy(obj / "pose" / "000000.txt", obj / "pose" / "000099.txt")
    return obj / "rgb" / "000099.png"


def three_by_four_pose(obj: Path) -> Path:
    path = obj / "pose" / "000001.txt"
    path.write_text(" ".join(path.read_text().split()[:12]))
    return path


def non_finite_pose(obj: Path) -> Path:
    path = obj / "pose" / "000001.txt"
    path.write_text("nan " + " ".join(path.read_text().split()[1:]))
    return path


def scaled_rotation_pose(obj: Path) -> Path:
    path = obj / "pose" / "000003.txt"
    pose = np.array(path.read_text().split(), dtype=np.float64).reshape(4, 4)
    pose[:3, :3] *= 1.1
    path.write_text(" ".join(repr(float(x)) for x in pose.flatten()))
    return path


def reflected_pose(obj: Path) -> Path:
    path = obj / "pose" / "000003.txt"
    pose = np.array(path.read_text().split(), dtype=np.float64).reshape(4, 4)
    pose[:3, 0] *= -1
    path.write_text(" ".join(repr(float(x)) for x in pose.flatten()))
    return path


def bad_last_row_pose(obj: Path) -> Path:
    path = obj / "pose" / "000000.txt"
    path.write_text(" ".join(path.read_text().split()[:12]) + " 0 0 1 1")
    return path


def text_pose(obj: Path) -> Path:
    path = obj / "pose" / "000004.txt"
    path.write_text("this is not a pose")
    return path


def garbage_png(obj: Path) -> Path:
    path = obj / "rgb" / "000001.png"
    path.write_bytes(b"definitely not a PNG file")
    return path


def truncated_png(obj: Path) -> Path:
    path = obj / "rgb" / "000005.png"
    path.write_bytes(path.read_bytes()[:60])
    return path


def wrong_size_png(obj: Path) -> Path:
    path = obj / "rgb" / "000002.png"
    Image.new("RGB", (17, 16), (255, 255, 255)).save(path)
    return path


def remove_intrinsics(obj: Path) -> Path:
    (obj / "intrinsics.txt").unlink()
    return obj / "intrinsics.txt"


def one_line_intrinsics(obj: Path) -> Path:
    (obj / "intrinsics.txt").write_text("13.125 8. 8. 0.\n")
    return obj / "intrinsics.txt"


def wordy_intrinsics(obj: Path) -> Path:
    (obj / "intrinsics.txt").write_text("focal 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n")
    return obj / "intrinsics.txt"


def negative_focal_intrinsics(obj: Path) -> Path:
    (obj / "intrinsics.txt").write_text("-13.125 8. 8. 0.\n0. 0. 0.\n1.\n16 16\n")
    return obj / "intrinsics.txt"


def remove_rgb_folder(obj: Path) -> Path:
    shutil.rmtree(obj / "rgb")
    return obj / "rgb"


def empty_object(obj: Path) -> Path:
    for kind in ("rgb", "pose"):
        for path in (obj / kind).iterdir():
            path.unlink()
    return obj


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing pose": (remove_pose, "missing pose for rgb/000002.png (6 rgb images vs 5 poses)"),
    "mismatched counts": (extra_pose, "missing image for pose/000099.txt (6 rgb images vs 7 poses)"),
    "non-4x4 pose": (three_by_four_pose, "pose must be a 4x4 matrix (16 numbers), got 12 numbers"),
    "non-finite pose": (non_finite_pose, "pose has non-finite entries"),
    "non-rigid pose": (scaled_rotation_pose, "pose rotation is not rigid"),
    "reflection pose": (reflected_pose, "pose rotation is not rigid"),
    "bad last row": (bad_last_row_pose, "pose last row must be 0 0 0 1"),
    "text pose": (text_pose, "malformed pose"),
    "garbage png": (garbage_png, "unreadable PNG"),
    "truncated png": (truncated_png, "unreadable PNG"),
    "wrong image size": (wrong_size_png, "wrong image size 17x16 (width x height), expected 16x16"),
    "missing intrinsics": (remove_intrinsics, "missing intrinsics file"),
    "one-line intrinsics": (one_line_intrinsics, "malformed intrinsics"),
    "wordy intrinsics": (wordy_intrinsics, "malformed intrinsics"),
    "negative focal": (negative_focal_intrinsics, "malformed intrinsics: need f > 0"),
    "missing rgb folder": (remove_rgb_folder, "missing rgb folder"),
    "no views": (empty_object, "object has no views"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_raises_srn_data_error_naming_its_path(dataset_copy: Path, case: str) -> None:
    plant, problem = CASES[case]
    path = plant(first_object(dataset_copy))
    dataset = SRNDataset(dataset_copy, "train")
    with pytest.raises(SRNDataError) as raised:
        dataset.load(0)
    assert isinstance(raised.value, ValueError)
    assert raised.value.path == path and problem in raised.value.problem
    assert str(path) in str(raised.value) and problem in str(raised.value)
    SRNDataset(dataset_copy, "train").load(1)  # the other object is still fine


def test_check_dataset_finds_every_planted_problem(dataset_copy: Path) -> None:
    clean = check_dataset(dataset_copy)
    assert clean.ok and [s.items for s in clean.splits] == [2, 1, 2] and clean.splits[0].views == 12
    train_a, train_b = sorted((dataset_copy / "synthetic_cars_train").iterdir())
    test_a = first_object(dataset_copy, "test")
    planted = {
        remove_pose(train_a),
        garbage_png(train_a),
        scaled_rotation_pose(train_a),
        wrong_size_png(train_b),
        one_line_intrinsics(test_a),
        extra_pose(first_object(dataset_copy, "val")),
    }
    check = check_dataset(dataset_copy)
    assert not check.ok
    assert {p.path for p in check.problems} == planted
    assert [len(s.problems) for s in check.splits] == [4, 1, 1]
    headers_only = check_dataset(dataset_copy, decode_images=False)
    assert {p.path for p in headers_only.problems} == planted  # the garbage PNG fails at its header already


def test_check_dataset_reports_a_missing_split_folder(dataset_copy: Path) -> None:
    shutil.rmtree(dataset_copy / "synthetic_cars_val")
    check = check_dataset(dataset_copy)
    assert [p.path for p in check.problems] == [dataset_copy / "synthetic_cars_val"]
    assert check_dataset(dataset_copy, ["train", "test"]).ok


def test_check_data_command_prints_problems_and_exits_nonzero(dataset_copy: Path, capsys) -> None:
    assert main(["--check-data", str(dataset_copy), "--plain"]) == 0
    assert "OK" in capsys.readouterr().out
    path = truncated_png(first_object(dataset_copy, "test"))
    assert main(["--check-data", str(dataset_copy), "--plain"]) == 1
    out = capsys.readouterr().out
    assert f"{path}: unreadable PNG" in out and "1 problem(s)" in out
    assert main(["--check-data", str(dataset_copy)]) == 1  # rich table
    assert str(path) in capsys.readouterr().out


def test_check_data_runs_as_a_script(dataset_copy: Path) -> None:
    """`python apps/srn/data.py --check-data PATH`, as a user runs it (sibling imports from the script's folder)."""
    remove_pose(first_object(dataset_copy))
    result = subprocess.run(
        [sys.executable, str(APP_DIR / "data.py"), "--check-data", str(dataset_copy), "--split", "train"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert result.returncode == 1, result.stderr
    assert "missing pose for rgb/000002.png" in result.stdout


def test_alpha_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # opaque red-ish
    rgba[0, 1, 3] = 0  # transparent: white
    rgba[0, 2, 3] = 51  # 20 % opaque
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png", (4, 4))
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([200 / 255, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 0, 1], torch.ones(3))
    torch.testing.assert_close(image[:, 0, 2], 0.2 * torch.tensor([200 / 255, 0.0, 0.0]) + 0.8)


def test_pose_may_be_written_on_one_line_or_four(tmp_path: Path) -> None:
    numbers = ["0", "0", "1", "1.3", "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "0", "1"]
    (tmp_path / "one.txt").write_text(" ".join(numbers) + "\n")
    (tmp_path / "four.txt").write_text("\n".join(" ".join(numbers[i : i + 4]) for i in range(0, 16, 4)) + "\n")
    one, four = read_pose(tmp_path / "one.txt"), read_pose(tmp_path / "four.txt")
    torch.testing.assert_close(one, four, atol=0, rtol=0)
    assert one.dtype == torch.float64 and one[0, 3] == 1.3


def test_chairs_train_nested_folder_is_found(tmp_path: Path) -> None:
    (tmp_path / "srn_chairs" / "chairs_train" / "chairs_2.0_train").mkdir(parents=True)
    (tmp_path / "srn_chairs" / "chairs_test").mkdir()
    root = tmp_path / "srn_chairs"
    assert find_split_dir(root, "train") == root / "chairs_train" / "chairs_2.0_train"
    assert find_split_dir(root, "test") == root / "chairs_test"
    with pytest.raises(SRNDataError, match="missing split folder"):
        find_split_dir(root, "val")
