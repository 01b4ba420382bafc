"""Reading an image file as the readers and `sample.py` need it: RGB in [0, 1], an alpha channel composited over the
dataset's background, the size checked against what the dataset declares — with one-line errors naming the file."""

from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor

from .datacheck import DataError


def check_image_size(
    path: Path, image: Image.Image, size: tuple[int, int] | None, error: type[DataError] = DataError
) -> None:
    """Refuse an image whose (height, width) is not `size` (from its header, before decoding)."""
    if size is not None and (image.height, image.width) != size:
        raise error(
            path, f"wrong image size {image.width}x{image.height} (width x height), expected {size[1]}x{size[0]}"
        )


def read_image(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    background: float = 1.0,
    error: type[DataError] = DataError,
    what: str = "image",
) -> Float[Tensor, "3 height width"]:
    """Decode an image file into RGB in [0, 1]; an alpha channel is composited over `background` (grey level).
    `size` = (height, width) the image must have. A missing, mis-sized or undecodable file is an `error`."""
    path = Path(path)
    if not path.is_file():
        raise error(path, f"missing {what} file")
    try:
        with Image.open(path) as image:
            check_image_size(path, image, size, error)
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as failure:  # PIL reports truncated / corrupt data as these
        raise error(path, f"unreadable {what}: {failure}") from None
    pixels = torch.from_numpy(array).permute(2, 0, 1)
    if has_alpha:
        alpha = pixels[3:]
        pixels = pixels[:3] * alpha + background * (1 - alpha)
    return pixels.contiguous()
