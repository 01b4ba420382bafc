"""The reader on synthetic data: round trip of images and cameras (rendering the known scene with the reader's cameras
reproduces the stored frames), training examples, batches, resizing and the bad-sequence exclusion."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import random_sequence_arrays, write_sequence

from app_co3d.data import BAD_SEQUENCES_PATH, Co3DDataError, Co3DDataset, excluded_sequences, load_bad_sequences
from app_co3d.preprocess import SequenceNormalization
from app_co3d.synthetic import SyntheticCo3DOptions, generate, make_sequence, render_scene
from splat_apps import collate, sample_view_indices

OPTIONS = SyntheticCo3DOptions(
    resolution=24, train_sequences=2, val_sequences=1, test_sequences=2, frames_per_sequence=5, seed=11
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(OPTIONS, cache=tmp_path_factory.mktemp("co3d_cache"))


def test_reader_returns_the_written_images_and_cameras(root: Path):
    dataset = Co3DDataset(root, "train")
    assert dataset.category == "synthetic" and len(dataset) == 2
    for index, name in enumerate(dataset.sequence_names):
        sequence = dataset.load(index)
        written = make_sequence(OPTIONS, "train", int(name.rsplit("_", 1)[1]))
        assert sequence.name == written.name and sequence.num_views == OPTIONS.frames_per_sequence
        np.testing.assert_array_equal(sequence.images.numpy(), written.images)
        np.testing.assert_allclose(sequence.cam_to_world.numpy(), written.cam_to_world, atol=1e-5)
        # the reader's cameras see the stored frames
        rgb = render_scene(written.scene, sequence.cam_to_world, sequence.K, 24, 24, OPTIONS.supersampling).rgb
        assert (rgb - sequence.images).abs().mean(dim=(1, 2, 3)).amax() < 1e-3


def test_example_cameras_see_the_targets_from_the_input_frame(root: Path):
    dataset = Co3DDataset(root, "test")
    example = dataset.training_example(1, 3, torch.Generator().manual_seed(5), include_input_in_targets=False)
    written = make_sequence(OPTIONS, "test", 1)
    w2c_input = np.linalg.inv(example.input_cam_to_world.double().numpy())
    to_input_frame = SequenceNormalization(w2c_input[:3, :3].T, -w2c_input[:3, 3], 1.0)  # x -> W x + t
    scene = written.scene.transformed(to_input_frame)
    poses = torch.linalg.inv(example.target_cameras.world_to_cam[0].double())
    rgb = render_scene(scene, poses, example.target_cameras.K[0], 24, 24, OPTIONS.supersampling).rgb
    assert (rgb - example.target_images).abs().mean(dim=(1, 2, 3)).amax() < 1e-3
    torch.testing.assert_close(example.input_camera.world_to_cam[0, 0], torch.eye(4))
    assert example.input_view not in example.target_views.tolist()


def test_training_examples_are_reproducible_from_the_generator(root: Path):
    dataset = Co3DDataset(root, "train")
    first = dataset.training_example(0, 3, torch.Generator().manual_seed(1))
    again = dataset.training_example(0, 3, torch.Generator().manual_seed(1))
    assert first.input_view == again.input_view and first.target_views.tolist() == again.target_views.tolist()
    assert first.input_view == int(first.target_views[0])  # Splatter Image: the input is also rendered
    assert len(set(first.target_views.tolist())) == 3
    draws = {tuple(sample_view_indices(5, 3, torch.Generator().manual_seed(s))[1]) for s in range(20)}
    assert len(draws) > 5


def test_batches_stack_examples(root: Path):
    dataset = Co3DDataset(root, "train")
    generator = torch.Generator().manual_seed(0)
    batch = collate([dataset.training_example(i, 2, generator) for i in (0, 1, 0)])
    assert batch.source_images.shape == (3, 3, 24, 24) and batch.target_images.shape == (3, 2, 3, 24, 24)
    assert batch.source_cameras.world_to_cam.shape == (3, 1, 4, 4) and batch.target_cameras.K.shape == (3, 2, 3, 3)
    source, targets = batch.teacher_inputs["origin_distance"], batch.target_teacher_inputs["origin_distance"]
    assert source.shape == (3,) and targets.shape == (3, 2)
    assert (source > 0.5).all()  # cameras a realistic distance from the object
    assert batch.source_images.min() >= 0 and batch.source_images.max() <= 1
    with pytest.raises(ValueError, match="number of targets"):
        collate([dataset.training_example(0, 2, torch.Generator()), dataset.training_example(0, 3, torch.Generator())])


def test_resolution_resizes_images_and_rescales_focal_lengths(root: Path):
    native = Co3DDataset(root, "val").load(0)
    small = Co3DDataset(root, "val", resolution=12).load(0)
    assert small.images.shape[-2:] == (12, 12)
    torch.testing.assert_close(small.K[:, 0, 0], native.K[:, 0, 0] / 2)
    torch.testing.assert_close(small.K[:, :2, 2], torch.full((small.num_views, 2), 6.0))
    torch.testing.assert_close(small.images.mean(dim=(-2, -1)), native.images.mean(dim=(-2, -1)), atol=0.02, rtol=0)


def test_bad_sequence_file_holds_the_upstream_hydrant_lists():
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


def test_bad_sequences_are_excluded_from_the_data_file(tmp_path: Path):
    split = tmp_path / "co3d_hydrant_for_gs" / "train"
    for name in ("116_13653_28885", "600_1_1", "615_99151_197824"):
        write_sequence(split, name, *random_sequence_arrays(3))
    dataset = Co3DDataset(tmp_path / "co3d_hydrant_for_gs", "train")
    assert dataset.sequence_names == ("600_1_1",)
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


def test_folders_without_frame_order_are_not_sequences(tmp_path: Path):
    split = tmp_path / "co3d_hydrant_for_gs" / "test"
    write_sequence(split, "700_1_1", *random_sequence_arrays(3))
    (split / "700_2_2").mkdir()  # Splatter Image leaves empty folders for sequences it dropped
    dataset = Co3DDataset(split.parent, "test")
    assert dataset.sequence_names == ("700_1_1",) and dataset.incomplete == ("700_2_2",)
