"""`read_image` refuses oversized images and decompression bombs from the header, in one line naming the file, and
reads 16-bit PNGs at full depth (value / 65535) instead of clipping them. The PNGs are written here byte by byte, so
every colour type, bit depth and scanline filter can be made."""

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from splat_apps.datacheck import DataError
from splat_apps.images import MAX_PIXELS, open_image, read_image

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)


class ToyDataError(DataError):
    """A reader's own error type, which `read_image` must raise."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(left: np.ndarray, up: np.ndarray, up_left: np.ndarray) -> np.ndarray:
    estimate = left + up - up_left
    pa, pb, pc = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))


def _filtered(raw: np.ndarray, bpp: int, method: int, previous: np.ndarray) -> bytes:
    """One scanline (bytes as int64) under PNG filter `method` (0 none, 1 sub, 2 up, 3 average, 4 paeth)."""
    left = np.concatenate([np.zeros(bpp, np.int64), raw[:-bpp]])
    up_left = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
    predictor = [0 * raw, left, previous, (left + previous) // 2, _paeth(left, previous, up_left)][method]
    return bytes([method]) + ((raw - predictor) % 256).astype(np.uint8).tobytes()


def png_bytes(samples: np.ndarray, colour_type: int, bit_depth: int = 16, filters: tuple[int, ...] = (0,)) -> bytes:
    """A PNG of `samples` [height width channels] (big-endian 16-bit or 8-bit), row r filtered by filters[r % n]."""
    height, width = samples.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = np.ascontiguousarray(samples.astype(dtype)).view(np.uint8).reshape(height, -1).astype(np.int64)
    bpp = CHANNELS[colour_type] * bit_depth // 8
    previous, lines = np.zeros_like(rows[0]), []
    for r, row in enumerate(rows):
        lines.append(_filtered(row, bpp, filters[r % len(filters)], previous))
        previous = row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"".join(lines))) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size: a few KB for 100 Mpixels (a decompression bomb)."""
    compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def written(tmp_path: Path, data: bytes, name: str = "image.png") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


sixteen_bit = st.integers(1, 6).flatmap(
    lambda h: st.integers(1, 6).flatmap(
        lambda w: st.sampled_from([2, 6]).flatmap(
            lambda ct: hnp.arrays(np.uint16, (h, w, CHANNELS[ct])).map(lambda a: (ct, a))
        )
    )
)


@settings(max_examples=40, deadline=None)
@given(image=sixteen_bit, filters=st.lists(st.integers(0, 4), min_size=1, max_size=5).map(tuple))
def test_sixteen_bit_rgb_pngs_read_as_value_over_65535_under_every_filter(
    tmp_path_factory: pytest.TempPathFactory, image: tuple[int, np.ndarray], filters: tuple[int, ...]
) -> None:
    colour_type, samples = image
    path = written(tmp_path_factory.mktemp("png16"), png_bytes(samples, colour_type, filters=filters))
    values = samples.astype(np.float64) / 65535
    if colour_type == 6:  # RGBA over a grey background of 0.25
        values = values[..., :3] * values[..., 3:] + 0.25 * (1 - values[..., 3:])
    pixels = read_image(path, size=samples.shape[:2], background=0.25)
    np.testing.assert_allclose(pixels.permute(1, 2, 0).numpy(), values, atol=1e-4, rtol=0)


def test_a_sixteen_bit_rgb_png_keeps_its_low_byte(tmp_path: Path) -> None:
    """257 and 511 differ only below the high byte, which is all pillow's own decoding keeps."""
    samples = np.array([[[257, 511, 65535], [0, 1, 65280]]], dtype=np.uint16)
    pixels = read_image(written(tmp_path, png_bytes(samples, 2, filters=(1,))))
    np.testing.assert_allclose(pixels.permute(1, 2, 0).numpy(), samples / 65535, atol=1e-6, rtol=0)
    assert pixels[1, 0, 0] > pixels[0, 0, 0]


@settings(max_examples=20, deadline=None)
@given(samples=hnp.arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6))))
def test_sixteen_bit_grey_pngs_saved_by_pillow_read_as_value_over_65535(
    tmp_path_factory: pytest.TempPathFactory, samples: np.ndarray
) -> None:
    path = tmp_path_factory.mktemp("grey16") / "grey.png"
    Image.fromarray(samples).save(path)
    with Image.open(path) as opened:
        assert opened.mode == "I;16"  # what this test is about
    pixels = read_image(path)
    expected = np.repeat((samples / 65535)[None], 3, axis=0)
    np.testing.assert_allclose(pixels.numpy(), expected, atol=1e-4, rtol=0)


def test_eight_bit_pngs_still_read_as_value_over_255(tmp_path: Path) -> None:
    samples = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    pixels = read_image(written(tmp_path, png_bytes(samples, 2, bit_depth=8, filters=(4,))))
    np.testing.assert_allclose(pixels.permute(1, 2, 0).numpy(), samples / 255, atol=1e-6, rtol=0)


def test_a_sixteen_bit_grey_alpha_png_is_refused_in_one_line(tmp_path: Path) -> None:
    path = written(tmp_path, png_bytes(np.full((2, 2, 2), 40000, dtype=np.uint16), 4))
    with pytest.raises(ToyDataError, match=rf"^{path}: unsupported PNG format \(LA;16B samples\)") as raised:
        read_image(path, error=ToyDataError, what="PNG")
    assert "\n" not in str(raised.value)


def test_a_float_image_is_refused_rather_than_clipped(tmp_path: Path) -> None:
    path = tmp_path / "depth.tiff"
    Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32)).save(path)
    with pytest.raises(ToyDataError, match=rf"^{path}: unsupported image format \(.*F"):
        read_image(path, error=ToyDataError)


def test_an_image_over_the_pixel_cap_is_refused_from_its_header_without_a_declared_size(tmp_path: Path) -> None:
    path = written(tmp_path, blank_png(5000, 4000))  # 20 Mpixels, under pillow's bomb limit
    start = time.perf_counter()
    with pytest.raises(ToyDataError, match=rf"^{path}: image is 5000x4000 = 20.0 Mpixels, more than the 16.8 Mpixel"):
        read_image(path, error=ToyDataError)
    assert time.perf_counter() - start < 0.5  # refused before decoding
    assert MAX_PIXELS == 4096 * 4096


def test_the_pixel_cap_is_a_keyword(tmp_path: Path) -> None:
    path = written(tmp_path, blank_png(40, 30))
    assert read_image(path).shape == (3, 30, 40)
    with pytest.raises(DataError, match="40x30 = 0.0 Mpixels, more than the 0.0 Mpixel limit"):
        read_image(path, max_pixels=40 * 30 - 1)


@pytest.mark.parametrize(("width", "height"), [(10000, 10000), (20000, 10000)], ids=["bomb-warning", "bomb-error"])
def test_a_decompression_bomb_is_a_one_line_data_error_whatever_the_cap(tmp_path: Path, width, height) -> None:
    """Pillow warns above 89 Mpixels and refuses above 179 (before the cap is looked at): both come out as the
    reader's error, never a traceback nor a warning, even with the cap raised above pillow's limits."""
    path = written(tmp_path, blank_png(width, height))
    assert path.stat().st_size < 100_000
    for max_pixels in (MAX_PIXELS, 10**12):
        pattern = rf"^{path}: PNG refused as a possible decompression bomb: Image size \({width * height} pixels\)"
        with pytest.raises(ToyDataError, match=pattern) as raised:
            read_image(path, error=ToyDataError, what="PNG", max_pixels=max_pixels)
        assert "\n" not in str(raised.value)
    with pytest.raises(ToyDataError, match="decompression bomb"):
        open_image(path, error=ToyDataError)


def test_the_declared_size_is_checked_before_the_pixel_cap_decodes_anything(tmp_path: Path) -> None:
    path = written(tmp_path, blank_png(64, 32))
    with pytest.raises(ToyDataError, match=rf"^{path}: wrong image size 64x32 \(width x height\), expected 16x16"):
        read_image(path, size=(16, 16), error=ToyDataError)
    with open_image(path, size=(32, 64)) as image:
        assert image.size == (64, 32)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"not an image at all"], ids=["empty", "magic", "text"])
def test_missing_and_undecodable_files_are_the_readers_error(tmp_path: Path, data: bytes) -> None:
    path = written(tmp_path, data)
    with pytest.raises(ToyDataError, match=rf"^{path}: unreadable image"):
        read_image(path, error=ToyDataError)
    with pytest.raises(ToyDataError, match=rf"^{tmp_path / 'absent.png'}: missing image file"):
        read_image(tmp_path / "absent.png", error=ToyDataError)


def test_a_truncated_sixteen_bit_png_is_the_readers_error(tmp_path: Path) -> None:
    data = png_bytes(np.full((8, 8, 3), 1234, dtype=np.uint16), 2)
    path = written(tmp_path, data[: len(data) - 30])
    with pytest.raises(ToyDataError, match=rf"^{path}: unreadable image"):
        read_image(path, error=ToyDataError)
    assert torch.is_tensor(read_image(written(tmp_path, data, "whole.png")))
