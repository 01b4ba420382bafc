"""Hypothesis strategies and scene builders shared by the splat-render tests."""

import math

import torch
from hypothesis import strategies as st

from splat_render import Cameras, Gaussians, intrinsics, look_at


def random_gaussians(
    generator: torch.Generator,
    batch: int,
    count: int,
    *,
    dtype: torch.dtype = torch.float64,
    sh_degree: int = 1,
    centre: tuple[float, float, float] = (0.0, 0.0, 3.0),
    spread: float = 0.5,
    scale_range: tuple[float, float] = (0.02, 0.2),
    opacity_range: tuple[float, float] = (0.05, 0.95),
) -> Gaussians:
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, dtype=dtype)

    lo, hi = scale_range
    return Gaussians(
        means=torch.randn(batch, count, 3, generator=generator, dtype=dtype) * spread
        + torch.tensor(centre, dtype=dtype),
        quats=torch.randn(batch, count, 4, generator=generator, dtype=dtype),
        scales=lo + (hi - lo) * rand(batch, count, 3),
        opacities=opacity_range[0] + (opacity_range[1] - opacity_range[0]) * rand(batch, count),
        sh=0.5 * torch.randn(batch, count, (sh_degree + 1) ** 2, 3, generator=generator, dtype=dtype),
    )


def identity_cameras(
    batch: int, views: int, size: int, *, focal: float | None = None, dtype: torch.dtype = torch.float64
) -> Cameras:
    """Cameras at the origin looking down +z (the scene of random_gaussians sits at z = 3)."""
    focal = float(size) if focal is None else focal
    w2c = torch.eye(4, dtype=dtype).expand(batch, views, 4, 4).clone()
    K = intrinsics(focal, focal, size / 2, size / 2, dtype=dtype).expand(batch, views, 3, 3).clone()
    return Cameras(w2c, K, size, size)


def orbit_cameras(
    generator: torch.Generator,
    batch: int,
    views: int,
    width: int,
    height: int,
    *,
    target: tuple[float, float, float] = (0.0, 0.0, 3.0),
    distance: float = 3.0,
    dtype: torch.dtype = torch.float64,
) -> Cameras:
    """Cameras on a sphere around `target`, looking at it, with random focal lengths and principal points."""
    direction = torch.nn.functional.normalize(torch.randn(batch, views, 3, generator=generator, dtype=dtype), dim=-1)
    target_t = torch.tensor(target, dtype=dtype)
    eye = target_t + distance * direction
    up = torch.nn.functional.normalize(torch.randn(batch, views, 3, generator=generator, dtype=dtype), dim=-1)
    c2w = look_at(eye, target_t.expand_as(eye), up)
    focal = width * (0.8 + 0.6 * torch.rand(batch, views, generator=generator, dtype=dtype))
    K = torch.zeros(batch, views, 3, 3, dtype=dtype)
    K[..., 0, 0] = focal
    K[..., 1, 1] = focal * (0.9 + 0.2 * torch.rand(batch, views, generator=generator, dtype=dtype))
    K[..., 0, 2] = width / 2 + (torch.rand(batch, views, generator=generator, dtype=dtype) - 0.5) * 0.2 * width
    K[..., 1, 2] = height / 2 + (torch.rand(batch, views, generator=generator, dtype=dtype) - 0.5) * 0.2 * height
    K[..., 2, 2] = 1
    return Cameras.from_cam_to_world(c2w, K, width, height)


def random_rigid(generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random proper rigid transform [R t; 0 1]."""
    q = torch.nn.functional.normalize(torch.randn(4, generator=generator, dtype=dtype), dim=0)
    from splat_render.projection import quat_to_rotmat

    pose = torch.eye(4, dtype=dtype)
    pose[:3, :3] = quat_to_rotmat(q)
    pose[:3, 3] = torch.randn(3, generator=generator, dtype=dtype)
    return pose


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotmat_to_quat(rotation: torch.Tensor) -> torch.Tensor:
    """wxyz quaternion of a rotation matrix (Shepperd's method, one branch per largest component)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    candidates = torch.stack([trace, m[0, 0], m[1, 1], m[2, 2]])
    k = int(torch.argmax(candidates))
    if k == 0:
        s = math.sqrt(float(trace) + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif k == 1:
        s = math.sqrt(1.0 + float(m[0, 0] - m[1, 1] - m[2, 2])) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif k == 2:
        s = math.sqrt(1.0 + float(m[1, 1] - m[0, 0] - m[2, 2])) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + float(m[2, 2] - m[0, 0] - m[1, 1])) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return torch.stack([torch.as_tensor(v, dtype=rotation.dtype) for v in q])


seeds = st.integers(min_value=0, max_value=2**31 - 1)
