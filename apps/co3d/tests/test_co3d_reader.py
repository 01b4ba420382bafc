"""The reader: rendering the known synthetic scene with the reader's cameras reproduces the stored frames, resizing
keeps the cameras, bad sequences and folders without frame order are left out."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import random_sequence_arrays, write_sequence

from app_co3d.data import BAD_SEQUENCES_PATH, Co3DDataError, Co3DDataset, excluded_sequences, load_bad_sequences
from app_co3d.synthetic import SyntheticCo3DOptions, generate, make_sequence, render_scene

OPTIONS = SyntheticCo3DOptions(
    resolution=24, train_sequences=2, val_sequences=1, test_sequences=0, frames_per_sequence=5, seed=11
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(OPTIONS, cache=tmp_path_factory.mktemp("co3d_cache"))


def test_the_reader_returns_the_written_images_and_cameras_that_see_them(root: Path) -> None:
    dataset = Co3DDataset(root, "train")
    assert dataset.category == "synthetic" and dataset.sequence_names == ("synthetic_train_000", "synthetic_train_001")
    for index in range(len(dataset)):
        sequence, written = dataset.load(index), make_sequence(OPTIONS, "train", index)
        assert sequence.name == written.name and sequence.num_views == OPTIONS.frames_per_sequence
        np.testing.assert_array_equal(sequence.images.numpy(), written.images)
        np.testing.assert_allclose(sequence.cam_to_world.numpy(), written.cam_to_world, atol=1e-5)
        rgb = render_scene(written.scene, sequence.cam_to_world, sequence.K, 24, 24, OPTIONS.supersampling).rgb
        assert (rgb - sequence.images).abs().mean(dim=(1, 2, 3)).amax() < 1e-3


def test_resolution_resizes_images_and_rescales_focal_lengths(root: Path) -> None:
    native = Co3DDataset(root, "val").load(0)
    small = Co3DDataset(root, "val", resolution=12).load(0)
    assert small.images.shape[-2:] == (12, 12)
    torch.testing.assert_close(small.K[:, 0, 0], native.K[:, 0, 0] / 2)
    torch.testing.assert_close(small.K[:, :2, 2], torch.full((small.num_views, 2), 6.0))
    torch.testing.assert_close(small.images.mean(dim=(-2, -1)), native.images.mean(dim=(-2, -1)), atol=0.02, rtol=0)


def test_the_bad_sequence_file_holds_the_upstream_hydrant_lists() -> None:
    lists = load_bad_sequences("hydrant")
    assert set(lists) == {
        "nan",
        "exclude",
        "no_foreground_input_frame",
        "large_focal_frame",
        "cameras_close",
        "cameras_far_away",
        "low_quality",
    }
    assert len(excluded_sequences("hydrant")) == 109
    assert "116_13653_28885" in lists["nan"] and "250_26810_55497" in lists["exclude"]
    assert excluded_sequences("synthetic") == frozenset()
    assert "provenance" in json.loads(BAD_SEQUENCES_PATH.read_text())


def test_bad_sequences_and_folders_without_frame_order_are_left_out(tmp_path: Path) -> None:
    split = tmp_path / "co3d_hydrant_for_gs" / "train"
    for name in ("116_13653_28885", "600_1_1", "615_99151_197824"):
        write_sequence(split, name, *random_sequence_arrays(3))
    (split / "700_2_2").mkdir()  # Splatter Image leaves empty folders for sequences it dropped
    dataset = Co3DDataset(split.parent, "train")
    assert dataset.sequence_names == ("600_1_1",) and dataset.incomplete == ("700_2_2",)
    assert set(dataset.skipped) == {"116_13653_28885", "615_99151_197824"}
    custom = tmp_path / "bad.json"
    custom.write_text(json.dumps({"categories": {"hydrant": {"mine": {"sequences": ["600_1_1"]}}}}))
    assert Co3DDataset(split.parent, "train", bad_sequences=custom).sequence_names == (
        "116_13653_28885",
        "615_99151_197824",
    )
    assert len(Co3DDataset(split.parent, "train", exclude=()).sequence_names) == 3
    custom.write_text("{not json")
    with pytest.raises(Co3DDataError, match="bad.json"):
        Co3DDataset(split.parent, "train", bad_sequences=custom)
