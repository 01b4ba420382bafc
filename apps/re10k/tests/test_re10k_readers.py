"""Readers of both public layouts round-trip the synthetic data, training examples follow Flash3D's sampling, and
malformed inputs fail with an error naming the file (and line)."""

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app_re10k.data import (
    JPEG_MAGIC,
    ChunkDataset,
    ExampleConfig,
    FrameSequence,
    TrainingExamples,
    TxtDataset,
    encode_jpeg,
    load_example,
    open_dataset,
    read_chunk,
    read_index,
    read_txt,
    sample_target_indices,
    write_chunk,
)
from app_re10k.synthetic import generate_scene
from splat_apps import collate
from splat_render import Cameras
from splat_train import SeededExamples

# ---------------------------------------------------------------------------------------------------------------------
# Round trips


def test_chunks_return_the_cameras_and_images_that_were_generated(small_dataset) -> None:
    options = small_dataset.options
    for split in ("train", "test"):
        dataset = ChunkDataset(small_dataset.chunks, split)
        for index in range(options.scenes(split)):
            generated = generate_scene(options, split, index)
            sequence = dataset[generated.key]
            assert len(sequence) == options.frames and sequence.timestamps.tolist() == generated.timestamps
            torch.testing.assert_close(sequence.intrinsics, generated.path.intrinsics.float())
            torch.testing.assert_close(
                sequence.world_to_cam.double(), torch.linalg.inv(generated.path.cam_to_world), atol=1e-6, rtol=0
            )
            for frame in (0, options.frames - 1):
                error = (sequence.image(frame, None) - generated.images[frame]).abs()
                assert error.mean() < 0.02 and error.max() < 0.5  # JPEG quality 95


def test_txt_layout_holds_exactly_what_the_chunks_hold(small_dataset) -> None:
    for split in ("train", "test"):
        chunks, txt = ChunkDataset(small_dataset.chunks, split), TxtDataset(small_dataset.txt, split)
        assert sorted(chunks.keys()) == txt.keys()
        for key in txt.keys():
            a, b = chunks[key], txt[key]
            assert a.url == b.url and torch.equal(a.timestamps, b.timestamps)
            assert torch.equal(a.intrinsics, b.intrinsics) and torch.equal(a.world_to_cam, b.world_to_cam)
            assert all(a.jpeg(i) == b.jpeg(i) for i in range(len(a)))
            assert b.frames[3] == small_dataset.txt / split / key / f"{b.timestamps[3].item()}.jpg"


def test_open_dataset_recognises_both_layouts(small_dataset, tmp_path) -> None:
    assert isinstance(open_dataset(small_dataset.chunks, "test"), ChunkDataset)
    assert isinstance(open_dataset(small_dataset.txt, "test"), TxtDataset)
    with pytest.raises(ValueError, match="neither"):
        open_dataset(tmp_path, "test")


def test_a_handwritten_txt_file_is_parsed_column_by_column(tmp_path) -> None:
    line = "158692025 0.474812461 0.844111024 0.5 0.5 0 0 " + " ".join(str(v / 10) for v in range(1, 13))
    (tmp_path / "0bf152ef84195293.txt").write_text(f"https://www.youtube.com/watch?v=abc\n{line}\n")
    sequence = read_txt(tmp_path / "0bf152ef84195293.txt", tmp_path / "frames")
    assert sequence.key == "0bf152ef84195293" and sequence.url == "https://www.youtube.com/watch?v=abc"
    assert sequence.timestamps.tolist() == [158692025]
    torch.testing.assert_close(
        sequence.intrinsics[0], torch.tensor([[0.474812461, 0, 0.5], [0, 0.844111024, 0.5], [0, 0, 1]])
    )
    expected = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2], [0, 0, 0, 1]])
    torch.testing.assert_close(sequence.world_to_cam[0], expected)
    assert sequence.frames == (tmp_path / "frames" / "158692025.jpg",)


def test_frames_are_resized_with_their_intrinsics(small_dataset) -> None:
    sequence = ChunkDataset(small_dataset.chunks, "train")[ChunkDataset(small_dataset.chunks, "train").keys()[0]]
    native = sequence.image(5, None)
    small = sequence.image(5, (16, 24))
    assert native.shape == (3, 32, 48) and small.shape == (3, 16, 24)
    assert 0 <= small.min() and small.max() <= 1
    pooled = torch.nn.functional.avg_pool2d(native[None], 2)[0]
    assert (small - pooled).abs().mean() < 0.05
    K = load_example(sequence, [5, 6], (16, 24)).target_cameras.K
    torch.testing.assert_close(K[..., :2, :], load_example(sequence, [5, 6], (32, 48)).target_cameras.K[..., :2, :] / 2)


# ---------------------------------------------------------------------------------------------------------------------
# Training examples


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_views=st.integers(2, 90), data=st.data())
def test_target_offsets_are_distinct_nonzero_within_30_and_inside_the_sequence(seed, num_views, data) -> None:
    source = data.draw(st.integers(0, num_views - 1))
    num_targets = data.draw(st.integers(1, min(num_views - 1, 30)))
    targets = sample_target_indices(num_views, source, num_targets, 30, torch.Generator().manual_seed(seed))
    assert len(targets) == len(set(targets)) == num_targets
    assert all(0 <= t < num_views and t != source and abs(t - source) <= 30 for t in targets)
    assert targets == sample_target_indices(num_views, source, num_targets, 30, torch.Generator().manual_seed(seed))


def test_target_offsets_cover_both_directions_up_to_30() -> None:
    generator = torch.Generator().manual_seed(0)
    offsets = {t - 50 for _ in range(400) for t in sample_target_indices(120, 50, 3, 30, generator)}
    assert offsets == set(range(-30, 31)) - {0}


def _training_batches(examples: TrainingExamples, batch_size: int = 3) -> SeededExamples:
    """The training loop's source of these examples (as the app builds it)."""
    return SeededExamples(len(examples), batch_size, examples.example, collate)


def test_training_batches_have_relative_cameras_and_images_in_unit_range(small_dataset) -> None:
    config = ExampleConfig(size=(16, 24), num_targets=2)
    examples = TrainingExamples(ChunkDataset(small_dataset.chunks, "train"), config)
    assert len(examples) == small_dataset.options.train_scenes * small_dataset.options.frames
    items, seeds = [0, 45, 119], [1, 2, 3]
    batch = _training_batches(examples).make_batch(items, seeds)
    assert batch.target_images.shape == (3, 3, 3, 16, 24)  # the source and 2 targets, all rendered
    assert 0 <= batch.target_images.min() and batch.target_images.max() <= 1
    cameras = batch.target_cameras
    assert isinstance(cameras, Cameras) and (cameras.height, cameras.width) == (16, 24)
    assert (cameras.near, cameras.far) == (config.near, config.far)
    torch.testing.assert_close(batch.source_cameras.world_to_cam, torch.eye(4).expand(3, 1, 4, 4), atol=0, rtol=0)
    torch.testing.assert_close(cameras.world_to_cam[:, 0], torch.eye(4).expand(3, 4, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(batch.target_images[:, 0], batch.source_images)
    drawn = [examples.example(i, torch.Generator().manual_seed(seed)) for i, seed in zip(items, seeds, strict=True)]
    assert [(e.item, e.input_view) for e in drawn] == [examples.pair(item) for item in items]
    offsets = torch.stack([e.target_views[1:] - e.input_view for e in drawn])
    assert ((offsets != 0) & (offsets.abs() <= 30)).all()
    again = _training_batches(examples).make_batch(items, seeds)
    assert torch.equal(again.target_images, batch.target_images)  # all randomness from the seeds
    assert torch.equal(again.target_cameras.world_to_cam, cameras.world_to_cam)
    # each view is the sequence's frame, with the sequence's camera made relative to the source
    sequence = ChunkDataset(small_dataset.chunks, "train")[drawn[0].item]
    source, target = drawn[0].input_view, int(drawn[0].target_views[1])
    torch.testing.assert_close(batch.target_images[0, 1], sequence.image(target, (16, 24)))
    expected = sequence.world_to_cam[target].double() @ torch.linalg.inv(sequence.world_to_cam[source].double())
    torch.testing.assert_close(cameras.world_to_cam[0, 1].double(), expected, atol=1e-5, rtol=0)


def test_without_render_source_the_targets_are_the_frames_after_the_source(small_dataset) -> None:
    dataset = ChunkDataset(small_dataset.chunks, "train")
    config = ExampleConfig(size=(16, 24), num_targets=2)
    with_source = TrainingExamples(dataset, config).example(7, torch.Generator().manual_seed(4))
    novel = TrainingExamples(dataset, replace(config, render_source=False)).example(7, torch.Generator().manual_seed(4))
    assert novel.target_views.tolist() == with_source.target_views[1:].tolist()
    torch.testing.assert_close(novel.target_images, with_source.target_images[1:])
    torch.testing.assert_close(novel.target_cameras.world_to_cam, with_source.target_cameras.world_to_cam[:, 1:])
    torch.testing.assert_close(novel.input_image, with_source.input_image)


def test_relative_cameras_are_computed_in_float64_as_before(small_dataset) -> None:
    """The reader's cameras are `w2c_j @ inv(w2c_src)` in float64, rounded once to float32 (the old reader's)."""
    sequence = ChunkDataset(small_dataset.chunks, "test")[ChunkDataset(small_dataset.chunks, "test").keys()[0]]
    example = load_example(sequence, [20, 25, 30, 3], (16, 24))
    world_to_cam = sequence.world_to_cam[[20, 25, 30, 3]].double()
    expected = (world_to_cam @ torch.linalg.inv(world_to_cam[0])).float()
    torch.testing.assert_close(example.target_cameras.world_to_cam[0], expected, atol=1e-7, rtol=0)
    assert example.target_cameras.world_to_cam.dtype == torch.float32


def test_collate_rejects_mismatched_examples(small_dataset) -> None:
    sequence = ChunkDataset(small_dataset.chunks, "train")[ChunkDataset(small_dataset.chunks, "train").keys()[0]]
    with pytest.raises(ValueError, match="share image size and number of targets"):
        collate([load_example(sequence, [0, 1], (8, 12)), load_example(sequence, [0, 1, 2], (8, 12))])


# ---------------------------------------------------------------------------------------------------------------------
# Malformed chunks


def _jpeg() -> torch.Tensor:
    data = encode_jpeg(np.full((4, 6, 3), 128, dtype=np.uint8))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _example(**changes) -> dict:
    example = {
        "url": "https://example.invalid/v",
        "key": "abc",
        "timestamps": torch.tensor([10, 20], dtype=torch.int64),
        "cameras": torch.cat(
            [torch.tensor([[0.5, 0.8, 0.5, 0.5, 0, 0]] * 2), torch.eye(4)[:3].flatten().expand(2, 12)], 1
        ),
        "images": [_jpeg(), _jpeg()],
    }
    example.update(changes)
    return {k: v for k, v in example.items() if v is not None}


CALLS: list[str] = []


def _record(message: str) -> str:
    CALLS.append(message)
    return message


class Payload:
    """Pickles as a call of `_record`: a stand-in for a malicious object in a chunk."""

    def __reduce__(self):
        return (_record, ("unpickled",))


PNG = io.BytesIO()
Image.new("RGB", (4, 4)).save(PNG, format="PNG")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([_example(cameras=None)], r"lacks key\(s\) \['cameras'\]"),
        ([_example(cameras=torch.zeros(2, 16))], r"'cameras' must be a float tensor of shape \[2, 18\], got \[2, 16\]"),
        ([_example(images=[_jpeg(), torch.frombuffer(bytearray(PNG.getvalue()), dtype=torch.uint8)])], "not JPEG"),
        ([_example(images=[_jpeg()])], "list of 2 JPEG"),
        ([_example(timestamps=torch.tensor([1.0, 2.0]))], "timestamps"),
        ([_example(key=3)], "'key' and 'url' must be strings"),
        ({"key": "abc"}, "list of examples"),
        ([_example(key=Payload())], "not a pixelSplat chunk of plain tensors.*refused to unpickle it"),
    ],
    ids=["missing-key", "camera-shape", "png-bytes", "image-count", "float-timestamps", "key-type", "dict", "pickle"],
)
def test_malformed_chunks_fail_with_the_file_name(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "000000.torch"
    torch.save(content, path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message) as raised:
        read_chunk(path)
    assert "\n" not in str(raised.value)  # one line, whatever torch said
    assert CALLS == []  # nothing was executed while loading


def test_a_file_that_is_no_torch_archive_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "000001.torch"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ValueError, match=re.escape(str(path))) as raised:
        read_chunk(path)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="not found"):
        read_chunk(tmp_path / "missing.torch")


def test_a_corrupt_jpeg_fails_when_decoded_naming_chunk_key_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "000000.torch"
    broken = torch.frombuffer(bytearray(JPEG_MAGIC + b"\xe0garbage" * 4), dtype=torch.uint8)
    torch.save([_example(images=[_jpeg(), broken])], path)
    (sequence,) = read_chunk(path)
    assert sequence.image(0, None).shape == (3, 4, 6)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*key abc, frame 1.*cannot decode JPEG"):
        sequence.image(1, None)


def test_training_examples_need_sequences_longer_than_the_target_count(tmp_path: Path) -> None:
    split = tmp_path / "train"
    split.mkdir()
    torch.save([_example()], split / "000000.torch")  # 2 frames: one possible target
    (split / "index.json").write_text(json.dumps({"abc": "000000.torch"}))
    assert len(TrainingExamples(ChunkDataset(tmp_path, "train"), ExampleConfig(size=(4, 6), num_targets=1))) == 2
    with pytest.raises(ValueError, match="num_targets=2"):
        TrainingExamples(ChunkDataset(tmp_path, "train"), ExampleConfig(num_targets=2))
    with pytest.raises(ValueError, match="num_targets"):
        ExampleConfig(num_targets=31)


def test_index_files_are_checked(tmp_path: Path) -> None:
    split = tmp_path / "test"
    split.mkdir()
    (split / "index.json").write_text('{"abc": "../elsewhere.torch"}')
    with pytest.raises(ValueError, match=re.escape(str(split / "index.json")) + ".*chunk file name"):
        read_index(split / "index.json")
    (split / "index.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        ChunkDataset(tmp_path, "test")
    torch.save([_example()], split / "000000.torch")
    (split / "index.json").write_text(json.dumps({"abc": "000000.torch", "zzz": "000000.torch"}))
    dataset = ChunkDataset(tmp_path, "test")
    assert len(dataset["abc"]) == 2
    with pytest.raises(ValueError, match=re.escape(str(split / "000000.torch")) + ".*zzz"):
        dataset["zzz"]
    with pytest.raises(KeyError):
        dataset["nope"]


def test_written_chunks_read_back_identically(tmp_path: Path, small_dataset) -> None:
    sequence = ChunkDataset(small_dataset.chunks, "test")[ChunkDataset(small_dataset.chunks, "test").keys()[0]]
    write_chunk(tmp_path / "copy.torch", [sequence])
    (copy,) = read_chunk(tmp_path / "copy.torch")
    assert copy.key == sequence.key and torch.equal(copy.world_to_cam, sequence.world_to_cam)
    assert copy.jpeg(7) == sequence.jpeg(7) and copy.source == tmp_path / "copy.torch"
    assert replace(copy, source=sequence.source).url == sequence.url


# ---------------------------------------------------------------------------------------------------------------------
# Malformed txt files


GOOD = "100 0.5 0.8 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"


@pytest.mark.parametrize(
    ("lines", "number", "message"),
    [
        ([GOOD, GOOD.replace("100", "200", 1), "300 0.5 0.8"], 4, "expected 19 columns, got 3"),
        ([GOOD, GOOD.replace("100", "1e5", 1)], 3, "timestamp '1e5' is not an integer"),
        ([GOOD.replace(" 0.8 ", " x ")], 2, "could not convert"),
        ([GOOD.replace(" 0.8 ", " nan ")], 2, "finite"),
        ([GOOD.replace(" 0.5 0.8 ", " 0 0.8 ")], 2, "positive"),
        ([GOOD, GOOD], 3, "appears twice"),
    ],
    ids=["columns", "timestamp", "number", "nan", "focal", "duplicate"],
)
def test_malformed_txt_lines_fail_with_file_and_line(tmp_path: Path, lines: list[str], number: int, message: str):
    path = tmp_path / "key.txt"
    path.write_text("\n".join(["https://www.youtube.com/watch?v=x", *lines]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:{number}: ") + ".*" + re.escape(message)):
        read_txt(path, tmp_path / "key")


def test_txt_without_url_or_frames_and_missing_frame_files_fail_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    path.write_text("")
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: ") + "expected the video URL"):
        read_txt(path, tmp_path)
    path.write_text("https://www.youtube.com/watch?v=x\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": no frames"):
        read_txt(path, tmp_path)
    path.write_text(f"https://www.youtube.com/watch?v=x\n{GOOD}\n")
    sequence: FrameSequence = read_txt(path, tmp_path / "key")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "key" / "100.jpg")) + ": cannot read frame 0"):
        sequence.image(0)


def test_txt_dataset_lists_only_clips_with_a_frame_folder(small_dataset, tmp_path: Path) -> None:
    split = tmp_path / "train"
    split.mkdir()
    (split / "a.txt").write_text(f"u\n{GOOD}\n")
    (split / "b.txt").write_text(f"u\n{GOOD}\n")
    (split / "b").mkdir()
    assert TxtDataset(tmp_path, "train").keys() == ["b"]
