"""The CUDA backend: one batched `gsplat.rasterization` call for all scenes x views (classic mode, RGB+ED)."""

from jaxtyping import Float
from torch import Tensor

from .types import Cameras, Gaussians, RenderOutput


def render_gsplat(
    gaussians: Gaussians,
    cameras: Cameras,
    background: Float[Tensor, "batch views 3"],
    sh_degree: int,
    config,
) -> RenderOutput:
    try:
        from gsplat import rasterization
    except ImportError:
        raise ValueError("backend='gsplat' needs gsplat: install splat-render[gpu]") from None

    colors, alphas, _ = rasterization(
        means=gaussians.means,
        quats=gaussians.quats,
        scales=gaussians.scales,
        opacities=gaussians.opacities,
        colors=gaussians.sh,
        viewmats=cameras.world_to_cam,
        Ks=cameras.K,
        width=cameras.width,
        height=cameras.height,
        near_plane=cameras.near,
        far_plane=cameras.far,
        eps2d=config.eps2d,
        sh_degree=sh_degree,
        packed=False,
        tile_size=config.gsplat_tile_size,
        backgrounds=background.contiguous(),
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )  # colors [B V H W 4] (last channel: expected depth), alphas [B V H W 1]
    colors = colors.permute(0, 1, 4, 2, 3)
    return RenderOutput(rgb=colors[:, :, :3], alpha=alphas.permute(0, 1, 4, 2, 3), depth=colors[:, :, 3:])
