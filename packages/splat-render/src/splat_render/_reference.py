"""Dense reference twin of the torch backend: every Gaussian against every pixel, no tiles, no chunks.

It is the test oracle for the tiled rasterizer (and the "dense" baseline of benchmarks/render.py): the same
formulas written the obvious way, with the alpha test in the kernel's own form (sigma then exp then min).
Memory is images x pixels x gaussians, so use it on small scenes only.
"""

import torch
from jaxtyping import Float
from torch import Tensor

from .projection import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS, project_gaussians
from .sh import eval_sh
from .types import Cameras, Gaussians, RenderOutput


def _render_dense(
    gaussians: Gaussians,
    cameras: Cameras,
    background: Float[Tensor, "batch views 3"],
    sh_degree: int,
    eps2d: float = 0.3,
) -> RenderOutput:
    batch, views, height, width = cameras.batch_size, cameras.num_views, cameras.height, cameras.width
    projection = project_gaussians(gaussians, cameras, eps2d=eps2d)
    directions = gaussians.means[:, None] - cameras.centers[:, :, None]
    sh = gaussians.sh[:, None].expand(-1, views, -1, -1, -1)
    rgb = torch.clamp_min(eval_sh(sh_degree, sh, directions) + 0.5, 0.0)

    order = torch.argsort(torch.where(projection.visible, projection.depths, torch.inf), dim=-1, stable=True)

    def sort(t: Tensor) -> Tensor:
        return torch.gather(t, 2, order.view(*order.shape, *([1] * (t.ndim - 3))).expand_as(t))

    means2d, conics, depths = sort(projection.means2d), sort(projection.conics), sort(projection.depths)
    visible, rgb = sort(projection.visible), sort(rgb)
    opacities = sort(gaussians.opacities[:, None].expand(-1, views, -1))

    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=gaussians.dtype, device=gaussians.device) + 0.5,
        torch.arange(width, dtype=gaussians.dtype, device=gaussians.device) + 0.5,
        indexing="ij",
    )
    dx = cols.reshape(1, 1, -1, 1) - means2d[:, :, None, :, 0]  # [B V P N]
    dy = rows.reshape(1, 1, -1, 1) - means2d[:, :, None, :, 1]
    a, b, c = (conics[:, :, None, :, k] for k in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(opacities[:, :, None] * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where((alpha >= ALPHA_THRESHOLD) & (sigma >= 0) & visible[:, :, None], alpha, 0.0)
    transmittance = torch.cumprod(1 - alpha, dim=-1)
    with torch.no_grad():
        alive = transmittance > TRANSMITTANCE_EPS
    weights = torch.where(alive, alpha * transmittance / (1 - alpha), 0.0)  # [B V P N]
    total = weights.sum(-1)
    color = torch.einsum("bvpn,bvnc->bvpc", weights, rgb) + (1 - total)[..., None] * background[:, :, None]
    depth = torch.einsum("bvpn,bvn->bvp", weights, depths) / total.clamp_min(1e-10)

    def image(t: Tensor) -> Tensor:
        return t.reshape(batch, views, height, width, -1).permute(0, 1, 4, 2, 3)

    return RenderOutput(rgb=image(color), alpha=image(total[..., None]), depth=image(depth[..., None]))
