"""Shared helpers of the splat-teachers tests (prefixed name: test dirs of several packages share sys.path)."""

import pathlib

import torch
from safetensors.torch import load_file

from splat_render import Cameras, intrinsics

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "splatter_image"


def fixture(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / name))


def identity_cameras(batch: int, size: int, focal: float, *, dtype=torch.float32) -> Cameras:
    K = intrinsics(focal, focal, size / 2, size / 2, dtype=dtype).expand(batch, 1, 3, 3).clone()
    pose = torch.eye(4, dtype=dtype).expand(batch, 1, 4, 4).clone()
    return Cameras(pose, K, size, size)


def random_rotation(generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    q = torch.randn(4, generator=generator, dtype=dtype)
    w, x, y, z = (q / q.norm()).tolist()
    return torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ],
        dtype=dtype,
    )
