"""Readers of both public layouts return what the synthetic generator wrote, training targets follow Flash3D's
sampling, and malformed chunks, index files, txt files and JPEGs fail with one line naming the file (and line)."""

import io
import json
import os
import re
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
    TrainingExamples,
    TxtDataset,
    _load_failure,
    encode_jpeg,
    load_example,
    open_dataset,
    read_chunk,
    read_index,
    read_txt,
    sample_target_indices,
)
from app_re10k.synthetic import generate_scene


def test_both_layouts_return_the_cameras_and_images_that_were_generated(small_dataset, tmp_path) -> None:
    options = small_dataset.options
    for split in ("train", "test"):
        chunks, txt = open_dataset(small_dataset.chunks, split), open_dataset(small_dataset.txt, split)
        assert isinstance(chunks, ChunkDataset) and isinstance(txt, TxtDataset)
        assert sorted(chunks.keys()) == txt.keys() and len(txt) == options.scenes(split)
        for index in range(options.scenes(split)):
            generated = generate_scene(options, split, index)
            sequence, same = chunks[generated.key], txt[generated.key]
            assert len(sequence) == options.frames and sequence.timestamps.tolist() == generated.timestamps
            torch.testing.assert_close(sequence.intrinsics, generated.path.intrinsics.float())
            torch.testing.assert_close(
                sequence.world_to_cam.double(), torch.linalg.inv(generated.path.cam_to_world), atol=1e-6, rtol=0
            )
            for frame in (0, options.frames - 1):
                error = (sequence.image(frame, None) - generated.images[frame]).abs()
                assert error.mean() < 0.02 and error.max() < 0.5  # JPEG quality 95
            assert sequence.url == same.url and torch.equal(sequence.timestamps, same.timestamps)  # the txt layout
            assert torch.equal(sequence.intrinsics, same.intrinsics)
            assert torch.equal(sequence.world_to_cam, same.world_to_cam)
            assert all(sequence.jpeg(i) == same.jpeg(i) for i in range(len(sequence)))
            assert same.frames[3] == small_dataset.txt / split / generated.key / f"{same.timestamps[3].item()}.jpg"
    with pytest.raises(ValueError, match="neither"):
        open_dataset(tmp_path, "test")


def test_a_handwritten_txt_file_is_parsed_column_by_column(tmp_path) -> None:
    line = "158692025 0.474812461 0.844111024 0.5 0.5 0 0 " + " ".join(str(v / 10) for v in range(1, 13))
    (tmp_path / "0bf152ef84195293.txt").write_text(f"https://www.youtube.com/watch?v=abc\n{line}\n")
    sequence = read_txt(tmp_path / "0bf152ef84195293.txt", tmp_path / "frames")
    assert sequence.key == "0bf152ef84195293" and sequence.url == "https://www.youtube.com/watch?v=abc"
    assert sequence.timestamps.tolist() == [158692025]
    K = torch.tensor([[0.474812461, 0, 0.5], [0, 0.844111024, 0.5], [0, 0, 1]])
    torch.testing.assert_close(sequence.intrinsics[0], K)
    expected = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2], [0, 0, 0, 1]])
    torch.testing.assert_close(sequence.world_to_cam[0], expected)
    assert sequence.frames == (tmp_path / "frames" / "158692025.jpg",)


def test_frames_are_resized_with_their_intrinsics(sequence) -> None:
    native, small = sequence.image(5, None), sequence.image(5, (16, 24))
    assert native.shape == (3, 32, 48) and small.shape == (3, 16, 24)
    assert 0 <= small.min() and small.max() <= 1
    assert (small - torch.nn.functional.avg_pool2d(native[None], 2)[0]).abs().mean() < 0.05
    K = load_example(sequence, [5, 6], (16, 24)).target_cameras.K
    torch.testing.assert_close(K[..., :2, :], load_example(sequence, [5, 6], (32, 48)).target_cameras.K[..., :2, :] / 2)


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


def _jpeg() -> torch.Tensor:
    return torch.frombuffer(bytearray(encode_jpeg(np.full((4, 6, 3), 128, dtype=np.uint8))), dtype=torch.uint8)


def _example(**changes) -> dict:
    cameras = torch.cat([torch.tensor([[0.5, 0.8, 0.5, 0.5, 0, 0]] * 2), torch.eye(4)[:3].flatten().expand(2, 12)], 1)
    example = {
        "url": "https://example.invalid/v",
        "key": "abc",
        "timestamps": torch.tensor([10, 20]),
        "cameras": cameras,
    }
    example = {**example, "images": [_jpeg(), _jpeg()], **changes}
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
        (None, "not a pixelSplat chunk"),  # not a torch archive at all
    ],
    ids=["missing-key", "camera-shape", "png", "image-count", "float-timestamps", "key-type", "dict", "pickle", "junk"],
)
def test_malformed_chunks_fail_in_one_line_with_the_file_name(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "000000.torch"
    if content is None:
        path.write_bytes(b"definitely not a zip archive")
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message) as raised:
        read_chunk(path)
    assert "\n" not in str(raised.value)  # one line, whatever torch said
    assert CALLS == []  # nothing was executed while loading


class Unlisted:
    """A class `weights_only` has not been told about."""


class Shell:
    """Pickles as a call of `os.system`: what an attacker would put in a chunk."""

    def __reduce__(self):
        return (os.system, ("echo unpickled",))


@pytest.mark.parametrize(
    ("content", "refused"),
    [
        ([_example(key=Unlisted())], f"{__name__}.Unlisted"),
        ([_example(key=Shell())], f"{os.system.__module__}.system"),
    ],
    ids=["class", "os-system"],
)
def test_a_refused_pickle_names_the_refused_global_and_the_file_in_one_line(tmp_path: Path, content, refused) -> None:
    path = tmp_path / "000000.torch"
    torch.save(content, path)
    with pytest.raises(ValueError) as raised:
        read_chunk(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a pixelSplat chunk") and "\n" not in message
    assert message.endswith(f"(refused to unpickle it: global {refused})")


@pytest.mark.parametrize(
    ("text", "gist"),
    [
        (
            "Weights only load failed. ...\n\tWeightsUnpickler error: Unsupported class __main__.Thing\n\nCheck...",
            "refused to unpickle it: Unsupported class __main__.Thing",
        ),  # torch < 2.4
        (
            "Weights only load failed. ...\nWeightsUnpickler error: \n\nUnsupported operand 149\n\nCheck...",
            "refused to unpickle it: Unsupported operand 149",
        ),
        (
            "PytorchStreamReader failed reading zip archive: failed finding central directory\nmore",
            "PytorchStreamReader failed reading zip archive: failed finding central directory",
        ),
    ],
    ids=["old-class", "operand", "zip"],
)
def test_torch_load_failures_come_down_to_their_one_line_gist(text: str, gist: str) -> None:
    assert _load_failure(RuntimeError(text)) == gist


def test_a_missing_chunk_fails_and_a_corrupt_jpeg_when_decoded_naming_chunk_key_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "000000.torch"
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": chunk file not found"):
        read_chunk(path)
    broken = torch.frombuffer(bytearray(JPEG_MAGIC + b"\xe0garbage" * 4), dtype=torch.uint8)
    torch.save([_example(images=[_jpeg(), broken])], path)
    (sequence,) = read_chunk(path)
    assert sequence.image(0, None).shape == (3, 4, 6)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*key abc, frame 1.*cannot decode JPEG"):
        sequence.image(1, None)


def test_index_files_are_checked_and_training_needs_clips_longer_than_the_target_count(tmp_path: Path) -> None:
    split = tmp_path / "train"
    split.mkdir()
    (split / "index.json").write_text('{"abc": "../elsewhere.torch"}')
    with pytest.raises(ValueError, match=re.escape(str(split / "index.json")) + ".*chunk file name"):
        read_index(split / "index.json")
    (split / "index.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="not valid JSON"):
        ChunkDataset(tmp_path, "train")
    torch.save([_example()], split / "000000.torch")  # 2 frames: one possible target
    (split / "index.json").write_text(json.dumps({"abc": "000000.torch", "zzz": "000000.torch"}))
    dataset = ChunkDataset(tmp_path, "train")
    assert len(dataset["abc"]) == 2
    with pytest.raises(ValueError, match=re.escape(str(split / "000000.torch")) + ".*zzz"):
        dataset["zzz"]
    with pytest.raises(KeyError):
        dataset["nope"]
    (split / "index.json").write_text(json.dumps({"abc": "000000.torch"}))
    assert len(TrainingExamples(ChunkDataset(tmp_path, "train"), ExampleConfig(size=(4, 6), num_targets=1))) == 2
    with pytest.raises(ValueError, match="num_targets=2"):
        TrainingExamples(ChunkDataset(tmp_path, "train"), ExampleConfig(num_targets=2))
    with pytest.raises(ValueError, match="num_targets"):
        ExampleConfig(num_targets=31)


URL, GOOD = "https://www.youtube.com/watch?v=x", "100 0.5 0.8 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"


@pytest.mark.parametrize(
    ("lines", "where", "message"),
    [
        ([], ":1", "expected the video URL"),
        ([URL], "", "no frames"),
        ([URL, GOOD, GOOD.replace("100", "200", 1), "300 0.5 0.8"], ":4", "expected 19 columns, got 3"),
        ([URL, GOOD, GOOD.replace("100", "1e5", 1)], ":3", "timestamp '1e5' is not an integer"),
        ([URL, GOOD.replace(" 0.8 ", " x ")], ":2", "could not convert"),
        ([URL, GOOD.replace(" 0.8 ", " nan ")], ":2", "finite"),
        ([URL, GOOD.replace(" 0.5 0.8 ", " 0 0.8 ")], ":2", "positive"),
        ([URL, GOOD, GOOD], ":3", "appears twice"),
    ],
    ids=["url", "no-frames", "columns", "timestamp", "number", "nan", "focal", "duplicate"],
)
def test_malformed_txt_files_fail_with_file_and_line(tmp_path: Path, lines: list[str], where: str, message: str):
    path = tmp_path / "key.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}{where}: ") + ".*" + re.escape(message)):
        read_txt(path, tmp_path / "key")


def test_a_missing_frame_fails_when_read_and_clips_without_a_frame_folder_are_left_out(tmp_path: Path) -> None:
    split = tmp_path / "train"
    split.mkdir()
    for key in ("a", "b"):
        (split / f"{key}.txt").write_text(f"{URL}\n{GOOD}\n")
    (split / "b").mkdir()
    dataset = TxtDataset(tmp_path, "train")
    assert dataset.keys() == ["b"]
    with pytest.raises(ValueError, match=re.escape(str(split / "b" / "100.jpg")) + ": cannot read frame 0"):
        dataset["b"].image(0)
