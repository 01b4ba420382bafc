"""EWA projection of 3D Gaussians to screen-space 2D Gaussians (Zwicker et al. 2001; 3DGS eq. 5),
computed exactly as gsplat 1.5 `fully_fused_projection` (pinhole, "classic" mode):

* camera-space mean t = R mu + t_cam; the Gaussian is culled when t_z is outside [near, far];
* Jacobian of the perspective map at t, with t_x/t_z, t_y/t_z clamped to 1.3x the image frustum;
* screen covariance Sigma' = J W Sigma W^T J^T + eps2d I (eps2d = 0.3 px, the low-pass "dilation");
* conic = inverse of Sigma' stored as (a, b, c) of [[a, b], [b, c]];
* opacity-aware bounding radius r = ceil(min(3.33, sqrt(2 ln(255 o))) sqrt(diag Sigma')): outside it
  alpha < 1/255, so it only culls work, never changes the image; Gaussians with o < 1/255 or whose box
  misses the image are culled.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .types import Cameras, Gaussians

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_EPS = 1e-4
BOX_SIGMAS = 3.33


@dataclass(frozen=True)
class Projection:
    """Screen-space Gaussians of every (scene, view): only entries with `visible` contribute to an image."""

    means2d: Float[Tensor, "batch views gaussians 2"]
    conics: Float[Tensor, "batch views gaussians 3"]
    depths: Float[Tensor, "batch views gaussians"]
    radii: Int[Tensor, "batch views gaussians 2"]
    visible: Bool[Tensor, "batch views gaussians"]


def quat_to_rotmat(quats: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrix of a (not necessarily unit) wxyz quaternion."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def covariance_factor(
    quats: Float[Tensor, "*batch 4"], scales: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3 3"]:
    """L = R diag(s), so that the 3D covariance is L L^T."""
    return quat_to_rotmat(quats) * scales[..., None, :]


def covariance_3d(quats: Float[Tensor, "*batch 4"], scales: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3 3"]:
    factor = covariance_factor(quats, scales)
    return factor @ factor.transpose(-1, -2)


def project_gaussians(gaussians: Gaussians, cameras: Cameras, eps2d: float = 0.3) -> Projection:
    """Project every scene's Gaussians into each of its cameras (see the module docstring)."""
    rotation = cameras.world_to_cam[..., :3, :3]  # [B V 3 3]
    translation = cameras.world_to_cam[..., :3, 3]  # [B V 3]
    means_cam = torch.einsum("bvij,bnj->bvni", rotation, gaussians.means) + translation[:, :, None, :]
    depths = means_cam[..., 2]
    in_depth = (depths >= cameras.near) & (depths <= cameras.far)
    # Culled entries get a harmless z so that nothing downstream produces inf/NaN (and NaN gradients).
    z = torch.where(in_depth, depths, torch.ones_like(depths))
    x, y = means_cam[..., 0], means_cam[..., 1]

    K = cameras.K[:, :, None]  # [B V 1 3 3]
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    width, height = cameras.width, cameras.height
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x / z))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y / z))
    zeros = torch.zeros_like(z)
    jacobian = torch.stack([fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1).unflatten(
        -1, (2, 3)
    )  # [B V N 2 3]

    factor = covariance_factor(gaussians.quats, gaussians.scales)  # [B N 3 3]
    # Sigma' = (J W L)(J W L)^T
    projected = (jacobian @ rotation[:, :, None]) @ factor[:, None]  # [B V N 2 3]
    cov2d = projected @ projected.transpose(-1, -2)
    a = cov2d[..., 0, 0] + eps2d
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    positive = det > 0
    det = torch.where(positive, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    with torch.no_grad():
        opacities = gaussians.opacities[:, None].expand_as(depths)
        bright = opacities >= ALPHA_THRESHOLD
        extend = torch.sqrt(2 * torch.log(opacities.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp_max(BOX_SIGMAS)
        radius_x = torch.ceil(extend * torch.sqrt(a.clamp_min(0)))
        radius_y = torch.ceil(extend * torch.sqrt(c.clamp_min(0)))
        mx, my = means2d[..., 0], means2d[..., 1]
        on_screen = (mx + radius_x > 0) & (mx - radius_x < width) & (my + radius_y > 0) & (my - radius_y < height)
        has_extent = (radius_x > 0) | (radius_y > 0)
        visible = in_depth & positive & bright & on_screen & has_extent
        radii = torch.stack([radius_x, radius_y], dim=-1).to(torch.int32) * visible[..., None]
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii, visible=visible)
