"""Flash3D's evaluation protocol: split generation and parsing, the 5% border crop, and the protocol's evaluation
batches (a row per item; views src, +5, +10, ±30 as slots; seeded by the batch's first row) and table. Scoring and
per-slot means are the toolkit's (packages/splat-apps/tests/test_toy_app.py, splat-train's ScoreAccumulator)."""

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app_re10k.app import APP, data_source, open_split
from app_re10k.data import ChunkDataset
from app_re10k.evaluation import COLUMNS, row_items, table_spec
from app_re10k.experiment import RE10KExperiment
from app_re10k.protocol import (
    SLOT_LABELS,
    VIEW_SLOTS,
    SplitRow,
    crop_border,
    crop_bounds,
    generate_split,
    load_split_example,
    main,
    read_split,
    write_split,
)

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
    for key in list(counts)[:1]:  # a sequence's rows do not depend on the other sequences
        assert [row for row in rows if row.key == key] == generate_split({key: counts[key]}, every=every, seed=seed)


def test_random_targets_depend_on_the_seed_and_spread_over_both_directions() -> None:
    counts = {f"{i:016x}": 200 for i in range(10)}
    first, second = generate_split(counts, every=5, seed=0), generate_split(counts, every=5, seed=1)
    assert [r.tgt_rand for r in first] != [r.tgt_rand for r in second]
    offsets = [r.tgt_rand - r.src for r in first]
    assert min(offsets) < -20 and max(offsets) > 20 and 0 not in offsets


def test_split_files_round_trip_and_the_split_command_writes_the_split_of_a_dataset(small_dataset, tmp_path) -> None:
    rows = generate_split({"aaaa": 40, "bbbb": 25}, every=7, seed=3)
    write_split(tmp_path / "rows.txt", rows)
    assert read_split(tmp_path / "rows.txt") == rows == read_split(tmp_path / "rows.txt", {"aaaa": 40, "bbbb": 25})
    (tmp_path / "rows.txt").write_text((tmp_path / "rows.txt").read_text().rstrip("\n"))  # as Flash3D's file
    assert read_split(tmp_path / "rows.txt") == rows
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


@settings(max_examples=50, deadline=None)
@given(height=st.integers(4, 400), width=st.integers(4, 400))
def test_border_crop_follows_the_ceil_floor_rule(height: int, width: int) -> None:
    y0, y1, x0, x1 = crop_bounds(height, width)
    assert (y0, y1) == (math.ceil(0.05 * height), math.floor((1 - 0.05) * height))
    assert (x0, x1) == (math.ceil(0.05 * width), math.floor((1 - 0.05) * width))
    image = torch.arange(height * width, dtype=torch.float32).reshape(1, height, width)
    torch.testing.assert_close(crop_border(image), image[:, y0:y1, x0:x1])
    assert crop_bounds(256, 384) == (13, 243, 20, 364)  # Flash3D's frames: rows ceil(12.8):floor(243.2), ...


def test_every_row_is_its_own_item_even_when_a_line_repeats() -> None:
    rows = [SplitRow("k", 0, 5, 10, 3), SplitRow("q", 0, 5, 10, 3), SplitRow("k", 0, 5, 10, 3)]
    assert row_items(rows) == ("k 0 5 10 3", "q 0 5 10 3", "k 0 5 10 3 #3")


def _evaluating(experiment: RE10KExperiment, **changes) -> RE10KExperiment:
    return replace(experiment, eval=replace(experiment.eval, **changes))


def test_the_protocol_batches_rows_with_their_four_views_as_slots_seeded_by_the_first_row(
    small_dataset, experiment
) -> None:
    experiment = _evaluating(experiment, batch_size=4, max_rows=5, grid_rows=2)
    source = data_source(experiment)
    assert source.synthetic and source.split_file == small_dataset.split_file
    protocol = APP.protocol(experiment, source)
    rows = read_split(small_dataset.split_file)[:5]
    assert protocol.count == 5 and protocol.description == "5 rows of test_files.txt"
    assert protocol.input_slot == "src" and protocol.slot_labels == SLOT_LABELS and protocol.grid_items == 2
    assert protocol.transform is crop_border and protocol.grid_scale_to == 192
    assert protocol.info == {"split_file": str(small_dataset.split_file), "image_size": [32, 64], "synthetic": True}
    batches = list(protocol.batches())
    assert [b.batch.batch_size for b in batches] == [4, 1] and [b.seed for b in batches] == [0, 4]
    assert all(b.slots == VIEW_SLOTS == ("src", "tgt5", "tgt10", "tgt_rand") for b in batches)
    assert [item for b in batches for item in b.items] == [row.line() for row in rows]
    assert batches[1].grid_names == (f"{rows[4].key[:16]}_{rows[4].src}",)
    sequence = open_split(experiment, source, "test")[rows[2].key]
    example = load_split_example(sequence, rows[2], (32, 64))  # the source as input, then views src, +5, +10, ±30
    assert example.input_view == rows[2].src and example.target_views.tolist() == [rows[2].src, *rows[2].targets]
    with pytest.raises(ValueError, match="row is for sequence other"):
        load_split_example(sequence, SplitRow("other", 0, 5, 10, 1), (32, 64))
    batch = batches[0].batch
    torch.testing.assert_close(batch.target_images[2], example.target_images)
    torch.testing.assert_close(batch.target_cameras.world_to_cam[2], example.target_cameras.world_to_cam[0])
    torch.testing.assert_close(batch.source_cameras.world_to_cam, torch.eye(4).expand(4, 1, 4, 4), atol=0, rtol=0)
    torch.testing.assert_close(batch.target_images[:, 0], batch.source_images)  # the source view is scored too


def test_an_evaluation_split_file_overrides_the_runs_and_bad_rows_name_file_and_row(
    small_dataset, experiment, tmp_path
) -> None:
    rows = read_split(small_dataset.split_file)
    path = tmp_path / "rows.txt"
    write_split(path, [rows[3], SplitRow("missing", 0, 5, 10, 3)])
    protocol = APP.protocol(_evaluating(experiment, split_file=path, batch_size=1), APP.data(experiment))
    batches = protocol.batches()
    assert next(batches).items == (rows[3].line(),) and protocol.info["split_file"] == str(path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: row 2 (missing 0 5 10 3): 'missing'")) as raised:
        next(batches)
    assert "\n" not in str(raised.value)
    missing = _evaluating(experiment, split_file=tmp_path / "none.txt")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'none.txt'}: evaluation split file not found")):
        APP.protocol(missing, data_source(missing))


def test_the_table_shows_every_slot_and_the_papers_numbers(small_dataset, experiment) -> None:
    table = table_spec(experiment, data_source(experiment), small_dataset.split_file, 6)
    assert [c.title for c in table.columns] == [
        *("PSNR ↑ +5", "PSNR ↑ +10", "PSNR ↑ ±30", "SSIM ↑ +5", "SSIM ↑ +10", "SSIM ↑ ±30"),
        *("LPIPS ↓ +5", "LPIPS ↓ +10", "LPIPS ↓ ±30", "PSNR source"),
    ]
    assert table.columns == COLUMNS and len(table.references) == 2 and "not comparable" in table.note
    assert "6 rows of test_files.txt, 32x64, 5% border crop, grey background, preset cpu-demo" in table.title
    assert [c.title for c in table.console[0][1]] == ["+5", "+10", "±30", "source"]
    assert [len(columns) for _, columns in table.console] == [4, 3, 3]  # PSNR, SSIM, LPIPS
