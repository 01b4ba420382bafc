"""Fuzzing the SRN readers: valid files (written as `app_srn.synthetic` writes them) with random byte flips,
insertions, deletions and truncations, and random text, either read or fail with an `SRNDataError` naming the file;
the dataset check lists a broken or bomb PNG as a problem of its own instead of crashing."""

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from app_srn.data import SRNDataError, check_dataset, check_object, read_image, read_intrinsics, read_pose
from app_srn.synthetic import format_intrinsics, format_pose, spiral_poses, synthetic_intrinsics
from splat_render.fuzzing import Edit, byte_edits, mutated

SIDE = 8
INTRINSICS = format_intrinsics(synthetic_intrinsics(SIDE), SIDE, SIDE).encode()
POSE = format_pose(spiral_poses(3)[1]).encode()
PIXELS = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 4), dtype=np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PNGS = {"rgb": png(PIXELS[..., :3]), "rgba": png(PIXELS)}
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

edits = byte_edits(st)


def fails_naming(path: Path, read) -> None:
    """`read(path)` either succeeds or raises exactly SRNDataError with the path in its one-line message."""
    try:
        read(path)
    except SRNDataError as error:
        assert type(error) is SRNDataError
        assert str(path) in str(error) and "\n" not in str(error)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("srn_fuzz")


@FUZZ
@given(changes=edits)
@example(changes=[("flip", 3, b"\xa0")])  # a non-UTF-8 byte
def test_mutated_intrinsics_read_or_fail_naming_the_file(folder: Path, changes: list[Edit]) -> None:
    path = folder / "intrinsics.txt"
    path.write_bytes(mutated(INTRINSICS, changes))
    fails_naming(path, read_intrinsics)


@FUZZ
@given(changes=edits)
def test_mutated_poses_read_or_fail_naming_the_file(folder: Path, changes: list[Edit]) -> None:
    path = folder / "000000.txt"
    path.write_bytes(mutated(POSE, changes))
    fails_naming(path, read_pose)


tokens = st.one_of(st.floats().map(repr), st.integers(-(10**30), 10**30).map(str), st.sampled_from(["0.", "1."]))
numbers_text = st.lists(st.tuples(tokens, st.sampled_from([" ", "\n", "\t", "\r\n", ""])), max_size=20).map(
    lambda pairs: "".join(token + gap for token, gap in pairs)
)


@FUZZ
@given(text=st.one_of(st.text(max_size=80), numbers_text))
@example(text="1e400 4 4 0\n8 8")  # overflows to inf
@example(text="5 4 4 0\n8.5 8")
def test_random_text_is_a_valid_file_or_an_error_naming_it(folder: Path, text: str) -> None:
    for name, read in (("intrinsics.txt", read_intrinsics), ("pose.txt", read_pose)):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        fails_naming(path, read)


@FUZZ
@given(kind=st.sampled_from(sorted(PNGS)), changes=edits, sized=st.booleans())
def test_mutated_pngs_decode_or_fail_naming_the_file(folder: Path, kind: str, changes: list[Edit], sized) -> None:
    path = folder / "000000.png"
    path.write_bytes(mutated(PNGS[kind], changes))
    fails_naming(path, lambda p: read_image(p, (SIDE, SIDE) if sized else None))


def _png(width: int, height: int, bit_depth: int, colour_type: int, scanlines: bytes) -> bytes:
    """A PNG file of already filtered `scanlines`."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", scanlines) + chunk(b"IEND", b"")


def bomb_png(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG of `width x height` pixels: a few KB however large."""
    compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    return _png(width, height, 1, 0, b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush())


def grey_alpha_16_png(side: int) -> bytes:
    """A 16-bit grey + alpha PNG, which pillow cannot decode at full depth."""
    row = b"\0" + np.full((side, 2), 30000, dtype=">u2").tobytes()
    return _png(side, side, 16, 4, zlib.compress(row * side))


def test_the_fuzzed_bases_are_valid_files(folder: Path) -> None:
    """The mutations start from files the readers accept (otherwise every example would fail the same way)."""
    (folder / "base_intrinsics.txt").write_bytes(INTRINSICS)
    (folder / "base_pose.txt").write_bytes(POSE)
    assert read_intrinsics(folder / "base_intrinsics.txt").height == SIDE
    torch.testing.assert_close(read_pose(folder / "base_pose.txt"), spiral_poses(3)[1])
    for kind, data in PNGS.items():
        (folder / f"base_{kind}.png").write_bytes(data)
        assert read_image(folder / f"base_{kind}.png", (SIDE, SIDE)).shape == (3, SIDE, SIDE)


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "headers-only"])
def test_a_bomb_a_16_bit_grey_alpha_and_a_broken_png_are_problems_of_the_dataset_check(
    tiny_root: Path, tmp_path: Path, decode: bool
) -> None:
    root = Path(shutil.copytree(tiny_root, tmp_path / tiny_root.name))
    obj = sorted((root / "synthetic_cars_train").iterdir())[0]
    rgb = sorted((obj / "rgb").iterdir())
    rgb[0].write_bytes(bomb_png(10000, 10000))
    rgb[1].write_bytes(rgb[1].read_bytes()[:60])
    rgb[2].write_bytes(grey_alpha_16_png(16))
    count, problems = check_object(obj, decode_images=decode)
    assert count == len(rgb)
    named = {problem.path: str(problem) for problem in problems}
    assert "decompression bomb" in named[rgb[0]]
    if decode:  # headers alone cannot tell a truncated body or the sample format
        assert "unreadable PNG" in named[rgb[1]] and "unsupported PNG format (LA;16B" in named[rgb[2]]
    assert all(type(p) is SRNDataError and "\n" not in str(p) for p in problems)
    report = check_dataset(root, ["train"], decode_images=decode)
    assert not report.ok and rgb[0] in {p.path for p in report.problems}
