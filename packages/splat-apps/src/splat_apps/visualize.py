"""Pictures a person would rather look at than read: labelled image grids (PNG), turntable cameras and animations."""

import importlib.util
import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, ImageDraw
from torch import Tensor

from splat_render import Cameras, look_at


def to_uint8(image: Float[Tensor, "3 height width"]) -> np.ndarray:
    """[3 H W] float in [0, 1] (clamped) → [H W 3] uint8."""
    return (image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def save_image_grid(
    rows: list[list[Float[Tensor, "3 height width"]]],
    path: str | os.PathLike,
    *,
    column_labels: list[str] | None = None,
    row_labels: list[str] | None = None,
    scale: int = 1,
) -> Path:
    """A grid of equally sized images with optional column and row labels, written as PNG (nearest upscaling)."""
    if not rows or not rows[0]:
        raise ValueError("save_image_grid needs at least one image")
    height, width = rows[0][0].shape[-2:]
    cell_h, cell_w = height * scale, width * scale
    top = 14 if column_labels else 0
    left = 64 if row_labels else 0
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (left + columns * cell_w, top + len(rows) * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            tile = Image.fromarray(to_uint8(image)).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (left + c * cell_w, top + r * cell_h))
        if row_labels:
            draw.text((2, top + r * cell_h + 2), row_labels[r][:10], fill=(0, 0, 0))
    for c, label in enumerate(column_labels or []):
        draw.text((left + c * cell_w + 2, 1), label[: max(1, cell_w // 6)], fill=(0, 0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def turntable_cameras(
    center: Float[Tensor, "3"],
    radius: float,
    K: Float[Tensor, "3 3"],
    width: int,
    height: int,
    *,
    frames: int = 36,
    elevation_degrees: float = 20.0,
    up: Float[Tensor, "3"] | None = None,
    near: float = 0.01,
    far: float = 1e10,
) -> Cameras:
    """`frames` cameras (batch 1) circling `center` at `radius`, looking at it; `up` defaults to −y (OpenCV frame of
    the input camera, whose y axis points down)."""
    up = torch.tensor([0.0, -1.0, 0.0], dtype=center.dtype) if up is None else up
    up = up / up.norm()
    # an orthonormal basis of the plane orthogonal to `up`, the first axis pointing from `center` towards the origin
    toward = -center - (-center @ up) * up
    if toward.norm() < 1e-6:
        toward = torch.linalg.cross(up, torch.tensor([1.0, 0.0, 0.0], dtype=center.dtype))
    first = toward / toward.norm()
    second = torch.linalg.cross(up, first)
    elevation = math.radians(elevation_degrees)
    poses = []
    for i in range(frames):
        angle = 2 * math.pi * i / frames
        direction = (
            math.cos(elevation) * (math.cos(angle) * first + math.sin(angle) * second) + math.sin(elevation) * up
        )
        poses.append(look_at(center + radius * direction, center, up))
    cam_to_world = torch.stack(poses)[None]
    return Cameras.from_cam_to_world(cam_to_world, K.expand(1, frames, 3, 3).clone(), width, height, near, far)


def save_animation(frames: Float[Tensor, "frames 3 height width"], path: str | os.PathLike, *, fps: int = 12) -> Path:
    """Write frames as an animated GIF (or MP4 when the path ends in .mp4 and an ffmpeg plugin is installed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = np.stack([to_uint8(frame) for frame in frames])
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, images, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, images, fps=fps)
    return path


ANIMATION_FORMATS = ("gif", "mp4")


def check_animation_format(format: str) -> None:
    """Fail early, in one line, for a format `save_animation` cannot write: gif always works, mp4 needs one of
    imageio's video plugins (imageio-ffmpeg or PyAV)."""
    if format not in ANIMATION_FORMATS:
        raise ValueError(f"--format must be gif or mp4, got {format!r}")
    if format == "mp4" and not any(importlib.util.find_spec(name) for name in ("imageio_ffmpeg", "av")):
        raise ValueError("--format mp4 needs imageio's ffmpeg or pyav plugin (pip install imageio[ffmpeg]); use gif")
