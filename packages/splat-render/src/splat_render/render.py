"""`render(gaussians, cameras, background=...)`: one entry point, two backends computing the same function."""

import functools
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ._rasterize import bin_gaussians, rasterize_tiles
from .projection import project_gaussians
from .sh import eval_sh
from .types import Cameras, Gaussians, RenderOutput

Backend = Literal["auto", "torch", "gsplat"]
BACKENDS = ("auto", "torch", "gsplat")


@dataclass(frozen=True)
class RenderConfig:
    """Knobs of the renderer; the defaults are gsplat's defaults (classic 3DGS)."""

    eps2d: float = 0.3  # low-pass dilation added to the screen covariance, pixels^2
    tile_size: int = 4  # torch backend: tile edge in pixels (4 was fastest on CPU; results do not depend on it)
    chunk_elements: int = 2**19  # torch backend: pixel-Gaussian pairs composited per chunk (memory vs speed)
    gsplat_tile_size: int = 16  # gsplat backend tile edge
    check_inputs: bool = True  # raise ValueError on non-finite inputs (costs a device sync on CUDA)


@functools.cache
def gsplat_available() -> bool:
    """True when gsplat's CUDA extension can be loaded (it is compiled on first use; may take minutes)."""
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # gsplat reports build failures in many ways; any of them means "not usable"
        return False
    return _C is not None


def resolve_backend(backend: str, device: torch.device) -> Literal["torch", "gsplat"]:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got tensors on {device}")
    return backend


def _background_tensor(background: Tensor | float, gaussians: Gaussians, cameras: Cameras) -> Tensor:
    batch, views = cameras.batch_size, cameras.num_views
    if not isinstance(background, Tensor):
        background = torch.tensor(float(background))
    background = background.to(dtype=gaussians.dtype, device=gaussians.device)
    if background.ndim == 0:
        background = background.expand(3)
    if background.shape[-1] != 3 or background.ndim > 3:
        raise ValueError(f"background must be a scalar or broadcast to [batch views 3], got {list(background.shape)}")
    try:
        return background.expand(batch, views, 3)
    except RuntimeError:
        raise ValueError(
            f"background of shape {list(background.shape)} does not broadcast to [{batch}, {views}, 3]"
        ) from None


class NonFiniteInputError(ValueError):
    """A Gaussian or camera tensor given to `render` holds NaN or Inf (e.g. the output of a diverged network)."""


def validate_inputs(gaussians: Gaussians, cameras: Cameras, background: Tensor, check_finite: bool) -> None:
    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"gaussians must be a splat_render.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise ValueError(f"cameras must be a splat_render.Cameras, got {type(cameras).__name__}")
    if gaussians.batch_size != cameras.batch_size:
        raise ValueError(f"gaussians has batch size {gaussians.batch_size} but cameras has {cameras.batch_size}")
    if gaussians.dtype != cameras.dtype or gaussians.device != cameras.device:
        raise ValueError(
            f"gaussians are {gaussians.dtype} on {gaussians.device} but cameras are {cameras.dtype} on {cameras.device}"
        )
    if check_finite:
        named = {**gaussians.tensors(), "world_to_cam": cameras.world_to_cam, "K": cameras.K, "background": background}
        for name, value in named.items():
            if not torch.isfinite(value).all():
                raise NonFiniteInputError(f"{name} contains non-finite values (NaN or Inf)")


def render(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    background: Float[Tensor, "..."] | float,
    sh_degree: int | None = None,
    backend: str = "auto",  # one of BACKENDS; a plain str so that a bad value gets our ValueError
    config: RenderConfig = RenderConfig(),
) -> RenderOutput:
    """Render every scene of `gaussians` from each of its `cameras` (scene b is seen by cameras[b]).

    `background` is a colour (scalar, [3], or anything broadcasting to [batch views 3]); `sh_degree` limits the
    SH degree used (default: all coefficients). Returns rgb [B V 3 H W], alpha [B V 1 H W] and the expected
    camera-space depth [B V 1 H W] (0 where alpha is 0).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    background = _background_tensor(background, gaussians, cameras)
    validate_inputs(gaussians, cameras, background, config.check_inputs)
    if sh_degree is None:
        sh_degree = gaussians.sh_degree
    if not 0 <= sh_degree <= gaussians.sh_degree:
        raise ValueError(f"sh_degree must be in [0, {gaussians.sh_degree}] for these Gaussians, got {sh_degree}")
    if resolve_backend(backend, gaussians.device) == "gsplat":
        from ._gsplat import render_gsplat

        return render_gsplat(gaussians, cameras, background, sh_degree, config)
    return render_torch(gaussians, cameras, background, sh_degree, config)


def render_torch(
    gaussians: Gaussians,
    cameras: Cameras,
    background: Float[Tensor, "batch views 3"],
    sh_degree: int,
    config: RenderConfig,
) -> RenderOutput:
    """The pure-PyTorch backend (see `splat_render._rasterize`)."""
    batch, views = cameras.batch_size, cameras.num_views
    width, height = cameras.width, cameras.height
    projection = project_gaussians(gaussians, cameras, eps2d=config.eps2d)
    directions = gaussians.means[:, None] - cameras.centers[:, :, None]  # [B V N 3]
    sh = gaussians.sh[:, None].expand(-1, views, -1, -1, -1)
    rgb = torch.clamp_min(eval_sh(sh_degree, sh, directions) + 0.5, 0.0)
    colors = torch.cat([rgb, projection.depths[..., None]], dim=-1)  # depth rides along as a 4th channel

    def flat(t: Tensor) -> Tensor:
        return t.flatten(0, 1)

    tile = config.tile_size
    tiles_x, tiles_y = -(-width // tile), -(-height // tile)
    flat_ids, tile_counts = bin_gaussians(
        flat(projection.means2d),
        flat(projection.radii),
        flat(projection.depths),
        flat(projection.visible),
        tile,
        tiles_x,
        tiles_y,
    )
    opacities = gaussians.opacities[:, None].expand(-1, views, -1)
    accumulated, alpha = rasterize_tiles(
        flat(projection.means2d),
        flat(projection.conics),
        flat(opacities),
        flat(colors),
        flat_ids,
        tile_counts,
        width,
        height,
        tile,
        config.chunk_elements,
    )
    accumulated = accumulated.unflatten(0, (batch, views)).permute(0, 1, 4, 2, 3)  # [B V 4 H W]
    alpha = alpha.unflatten(0, (batch, views)).permute(0, 1, 4, 2, 3)
    rgb_image = accumulated[:, :, :3] + (1 - alpha) * background[..., None, None]
    depth = accumulated[:, :, 3:] / alpha.clamp_min(1e-10)
    return RenderOutput(rgb=rgb_image, alpha=alpha, depth=depth)
