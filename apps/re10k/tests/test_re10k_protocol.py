"""Flash3D's evaluation protocol: split generation and parsing, the 5% border crop, per-slot aggregation."""

import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_train.metrics import image_metrics

# sibling modules of apps/re10k (first on sys.path under `uv run apps/re10k/...`); left unsorted because
# ruff would call `data` first-party whenever a data/ folder exists at the repository root
# isort: off
from data import ChunkDataset
from protocol import (
    TARGET_SLOTS,
    main,
    SlotAccumulator,
    SplitRow,
    crop_border,
    crop_bounds,
    generate_split,
    load_split_example,
    protocol_metrics,
    read_split,
    write_split,
)
# isort: on

frame_counts = st.dictionaries(st.text("0123456789abcdef", min_size=4, max_size=16), st.integers(1, 150), max_size=6)


@settings(max_examples=60, deadline=None)
@given(counts=frame_counts, every=st.integers(1, 25), seed=st.integers(0, 2**31 - 1))
def test_generated_split_has_targets_at_5_10_and_within_30_for_every_kth_source(counts, every, seed) -> None:
    rows = generate_split(counts, every=every, seed=seed)
    for row in rows:
        count = counts[row.key]
        assert row.src % every == 0
        assert row.tgt5 == row.src + 5 and row.tgt10 == row.src + 10
        assert 0 < abs(row.tgt_rand - row.src) <= 30
        assert all(0 <= index < count for index in (row.src, *row.targets))
    # every source whose +10 target exists is there, once
    expected = sorted((key, src) for key, count in counts.items() for src in range(0, count - 10, every))
    assert sorted((row.key, row.src) for row in rows) == expected
    assert rows == generate_split(counts, every=every, seed=seed)


@settings(max_examples=20, deadline=None)
@given(counts=frame_counts.filter(lambda c: len(c) >= 2), seed=st.integers(0, 2**31 - 1))
def test_a_sequences_rows_do_not_depend_on_the_other_sequences(counts, seed) -> None:
    key = sorted(counts)[0]
    alone = generate_split({key: counts[key]}, every=3, seed=seed)
    assert [row for row in generate_split(counts, every=3, seed=seed) if row.key == key] == alone


def test_random_targets_depend_on_the_seed_and_spread_over_both_directions() -> None:
    counts = {f"{i:016x}": 200 for i in range(10)}
    first, second = generate_split(counts, every=5, seed=0), generate_split(counts, every=5, seed=1)
    assert [r.tgt_rand for r in first] != [r.tgt_rand for r in second]
    offsets = [r.tgt_rand - r.src for r in first]
    assert min(offsets) < -20 and max(offsets) > 20 and 0 not in offsets


def test_split_files_round_trip_and_are_checked_against_the_dataset(tmp_path: Path) -> None:
    rows = generate_split({"aaaa": 40, "bbbb": 25}, every=7, seed=3)
    path = tmp_path / "test_files.txt"
    write_split(path, rows)
    assert read_split(path) == rows == read_split(path, {"aaaa": 40, "bbbb": 25})
    path.write_text(path.read_text().rstrip("\n"))  # Flash3D's file has no final newline
    assert read_split(path) == rows


def test_split_command_writes_the_split_of_a_dataset(small_dataset, tmp_path: Path) -> None:
    out = tmp_path / "splits" / "test_files.txt"
    assert main(["--root", str(small_dataset.txt), "--out", str(out), "--every", "7", "--seed", "5"]) == 0
    counts = ChunkDataset(small_dataset.chunks, "test").frame_counts()
    assert read_split(out, counts) == generate_split(counts, every=7, seed=5)


@pytest.mark.parametrize(
    ("text", "counts", "message"),
    [
        ("k 0 5 10 3\nk 0 5 10\n", None, "2: expected 5 columns"),
        ("k 0 5 10 3\n\nk 0 5 ten 3\n", None, "3: frame indices must be integers"),
        ("k -1 4 9 3\n", None, "1: frame indices must be non-negative"),
        ("k 0 5 10 3\nq 0 5 10 3\n", {"k": 20}, "2: sequence q is not in the dataset"),
        ("k 0 5 10 3\nk 10 15 20 40\n", {"k": 40}, "2: frame index 40 out of range for k with 40 frames"),
    ],
    ids=["columns", "integers", "negative", "unknown-key", "out-of-range"],
)
def test_malformed_split_rows_fail_with_file_and_line(tmp_path: Path, text: str, counts, message: str) -> None:
    path = tmp_path / "split.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}:{message}")):
        read_split(path, counts)


def test_split_rows_load_source_first_with_targets_in_slot_order(small_dataset) -> None:
    dataset = ChunkDataset(small_dataset.chunks, "test")
    row = read_split(small_dataset.split_file)[1]
    example = load_split_example(dataset[row.key], row, (16, 24))
    assert example.indices == (row.src, row.tgt5, row.tgt10, row.tgt_rand)
    torch.testing.assert_close(example.world_to_cam[0], torch.eye(4), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="row is for sequence"):
        load_split_example(dataset[row.key], SplitRow("other", 0, 5, 10, 1), (16, 24))


def test_border_crop_of_flash3d_frames() -> None:
    # 256x384: y from ceil(12.8) = 13 to floor(243.2) = 243, x from ceil(19.2) = 20 to floor(364.8) = 364
    assert crop_bounds(256, 384) == (13, 243, 20, 364)
    assert crop_border(torch.zeros(2, 4, 3, 256, 384)).shape == (2, 4, 3, 230, 344)
    assert crop_bounds(64, 96) == (4, 60, 5, 91)


@settings(max_examples=50, deadline=None)
@given(height=st.integers(4, 400), width=st.integers(4, 400))
def test_border_crop_follows_the_ceil_floor_rule(height: int, width: int) -> None:
    y0, y1, x0, x1 = crop_bounds(height, width)
    assert (y0, y1) == (math.ceil(0.05 * height), math.floor((1 - 0.05) * height))
    assert (x0, x1) == (math.ceil(0.05 * width), math.floor((1 - 0.05) * width))
    image = torch.arange(height * width, dtype=torch.float32).reshape(1, height, width)
    torch.testing.assert_close(crop_border(image), image[:, y0:y1, x0:x1])
    assert y0 >= 0.05 * height and height - y1 >= 0.05 * height - 1e-9


def test_protocol_metrics_ignore_the_border_and_equal_image_metrics_inside() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 64, 96, generator=generator)
    prediction = (target + 0.1 * torch.randn(2, 3, 64, 96, generator=generator)).clamp(0, 1)
    scores = protocol_metrics(prediction, target)
    expected = image_metrics(prediction[..., 4:60, 5:91], target[..., 4:60, 5:91])
    for name in ("psnr", "ssim"):
        torch.testing.assert_close(scores[name], expected[name])
    spoiled = prediction.clone()
    spoiled[..., :4, :] = 5.0  # garbage in the cropped border changes nothing
    spoiled[..., :, 91:] = -3.0
    torch.testing.assert_close(protocol_metrics(spoiled, target)["psnr"], scores["psnr"])
    # PSNR is not clamped: values outside [0, 1] inside the crop count fully
    assert protocol_metrics(prediction + 2.0, target)["psnr"].max() < 0


def test_slot_means_and_their_average() -> None:
    accumulator = SlotAccumulator()
    accumulator.add("tgt5", {"psnr": torch.tensor([30.0, 28.0])})
    accumulator.add("tgt5", {"psnr": torch.tensor(26.0)})
    accumulator.add("tgt10", {"psnr": torch.tensor([25.0])})
    accumulator.add("tgt_rand", {"psnr": torch.tensor([20.0, 24.0])})
    accumulator.add("src", {"psnr": torch.tensor([40.0])})
    summary = accumulator.summary()
    assert summary["tgt5"] == {"psnr": 28.0, "rows": 3.0}
    assert summary["tgt10"]["psnr"] == 25.0 and summary["tgt_rand"]["psnr"] == 22.0
    assert summary["average"] == {"psnr": 25.0}  # (28 + 25 + 22) / 3; the source slot is reported on its own
    assert summary["src"]["psnr"] == 40.0
    assert set(TARGET_SLOTS) <= set(summary)
    with pytest.raises(ValueError, match="slot"):
        accumulator.add("tgt30", {"psnr": torch.tensor(1.0)})
