"""Reading an image file as the readers and `sample.py` need it: RGB in [0, 1], an alpha channel composited over the
dataset's background, the size checked against what the dataset declares — with one-line errors naming the file.

Everything that can be refused from the header is refused before decoding: a size other than the declared one, more
than `MAX_PIXELS` pixels, a decompression bomb by pillow's own measure. 16-bit PNGs are scaled by 1/65535 (pillow
would keep only their high byte); other sample formats pillow cannot give at full depth are refused."""

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from .datacheck import DataError

MAX_PIXELS = 4096 * 4096
"""Most pixels (width x height) an image may have; a larger header is refused before decoding (16.8 Mpixels, below
pillow's decompression-bomb warning at 89.5 Mpixels)."""
EIGHT_BIT_MODES = frozenset({"1", "L", "P", "LA", "PA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
"""Pillow modes whose samples are 8 bits (or 1): `convert` to RGB(A) is exact, samples are divided by 255."""
GREY_16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
"""Pillow modes of 16-bit greyscale samples (a 16-bit grey PNG opens as "I;16")."""
RGB_16_RAWMODES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
"""Rawmodes of 16-bit colour PNGs (decoded by pillow to their high byte) → the unpacker that keeps the low byte."""
BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def pixel_limit_problem(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """What is wrong with an image of `width x height` pixels when it has more than `max_pixels`; None if nothing."""
    pixels = width * height
    if pixels <= max_pixels:
        return None
    return (
        f"image is {width}x{height} = {pixels / 1e6:.1f} Mpixels, more than the {max_pixels / 1e6:.1f} Mpixel limit "
        "(refused before decoding)"
    )


def check_image_size(
    path: Path, image: Image.Image, size: tuple[int, int] | None, error: type[DataError] = DataError
) -> None:
    """Refuse an image whose (height, width) is not `size` (from its header, before decoding)."""
    if size is not None and (image.height, image.width) != size:
        raise error(
            path, f"wrong image size {image.width}x{image.height} (width x height), expected {size[1]}x{size[0]}"
        )


def open_refusing_bombs(source: str | Path | io.IOBase) -> Image.Image:
    """`Image.open` with pillow's decompression-bomb warning raised as an error, like its bomb error (both are caught
    as `BOMB_ERRORS`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(source)


def open_image(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
    error: type[DataError] = DataError,
    what: str = "image",
) -> Image.Image:
    """Open an image file and check its header, without decoding: `size` = (height, width) it must have, at most
    `max_pixels` pixels, not a decompression bomb for pillow. Any failure is an `error` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(path, f"missing {what} file")
    try:
        image = open_refusing_bombs(path)
    except BOMB_ERRORS as failure:
        raise error(path, f"{what} refused as a possible decompression bomb: {failure}") from None
    except (OSError, ValueError, SyntaxError) as failure:  # pillow's UnidentifiedImageError is an OSError
        raise error(path, f"unreadable {what}: {failure}") from None
    try:
        problem = pixel_limit_problem(image.width, image.height, max_pixels)
        if problem:
            raise error(path, problem)
        check_image_size(path, image, size, error)
    except DataError:
        image.close()
        raise
    return image


def _rawmode(image: Image.Image) -> str:
    """How the file stores its samples (pillow's rawmode of the first tile, e.g. "RGB;16B"); "" once decoded."""
    args = image.tile[0].args if image.tile else None
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else ""


def _rgb16_samples(path: Path, image: Image.Image, rawmode: str) -> np.ndarray:
    """The uint16 samples [height width channels] of a 16-bit RGB(A) PNG. Pillow's decoder keeps the high byte of
    each big-endian sample; decoding the file again with the little-endian unpacker keeps the low byte."""
    image.load()
    high = np.asarray(image, dtype=np.uint16)
    with open_refusing_bombs(path) as again:
        if again.format != "PNG" or _rawmode(again) != rawmode or len(again.tile) != 1:
            raise ValueError(f"cannot re-read the 16-bit samples (rawmode {_rawmode(again)!r})")
        again.tile = [again.tile[0]._replace(args=RGB_16_RAWMODES[rawmode])]
        again.load()
        low = np.asarray(again, dtype=np.uint16)
    return high << 8 | low


def _transparency_alpha(samples: np.ndarray, transparent: object) -> np.ndarray:
    """Alpha [height width 1] of a PNG tRNS colour key: 0 where every channel equals `transparent`, else 1."""
    key = np.asarray(transparent, dtype=samples.dtype).reshape(-1)
    return (samples != key).any(axis=-1, keepdims=True).astype(np.float32)


def decoded_rgba(
    path: Path, image: Image.Image, error: type[DataError] = DataError, what: str = "image"
) -> tuple[np.ndarray, bool]:
    """An opened image decoded to float32 [height width 3 or 4] in [0, 1], and whether the 4th channel (alpha) is
    there. A sample format that cannot be read at full depth is an `error`."""
    rawmode, mode = _rawmode(image), image.mode
    transparent = image.info.get("transparency")
    if image.format == "PNG" and rawmode in RGB_16_RAWMODES:
        samples = _rgb16_samples(path, image, rawmode)
        array = samples.astype(np.float32) / 65535.0
        if mode == "RGB" and isinstance(transparent, tuple):
            return np.concatenate([array, _transparency_alpha(samples, transparent)], axis=-1), True
        return array, mode == "RGBA"
    if mode in GREY_16_MODES or (mode == "I" and rawmode in GREY_16_MODES):
        image.load()
        samples = np.asarray(image).astype(np.int64)[..., None]
        grey = np.repeat(samples.astype(np.float32) / 65535.0, 3, axis=-1)
        if isinstance(transparent, int):
            return np.concatenate([grey, _transparency_alpha(samples, transparent)], axis=-1), True
        return grey, False
    if ";16" in rawmode or mode not in EIGHT_BIT_MODES:
        samples = f"{rawmode} samples" if rawmode else f"pillow mode {mode}"
        raise error(path, f"unsupported {what} format ({samples}): save it as 8-bit RGB(A) or 16-bit RGB(A)/grey PNG")
    image.load()
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0, has_alpha


def read_image(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    background: float = 1.0,
    error: type[DataError] = DataError,
    what: str = "image",
    max_pixels: int = MAX_PIXELS,
) -> Float[Tensor, "3 height width"]:
    """Decode an image file into RGB in [0, 1]; an alpha channel is composited over `background` (grey level).
    `size` = (height, width) the image must have. A missing, mis-sized, oversized (`max_pixels`, checked from the
    header) or undecodable file, or one of an unsupported sample format, is an `error` naming it."""
    path = Path(path)
    try:
        with open_image(path, size=size, max_pixels=max_pixels, error=error, what=what) as image:
            array, has_alpha = decoded_rgba(path, image, error, what)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as failure:  # pillow reports corrupt data as these
        raise error(path, f"unreadable {what}: {failure}") from None
    pixels = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if has_alpha:
        alpha = pixels[3:]
        pixels = pixels[:3] * alpha + background * (1 - alpha)
    return pixels.contiguous()
