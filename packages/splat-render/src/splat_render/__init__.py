"""splat-render: typed 3D Gaussians and cameras, and a differentiable Gaussian-splat renderer."""

from .projection import Projection, project_gaussians
from .render import NonFiniteInputError, RenderConfig, gsplat_available, render
from .sh import eval_sh, rgb_to_sh_dc, sh_dc_to_rgb
from .types import (
    Cameras,
    Gaussians,
    RenderOutput,
    focal_to_fov,
    fov_to_focal,
    intrinsics,
    look_at,
    rigid_inverse,
)

__all__ = [
    "Cameras",
    "Gaussians",
    "NonFiniteInputError",
    "Projection",
    "RenderConfig",
    "RenderOutput",
    "eval_sh",
    "focal_to_fov",
    "fov_to_focal",
    "gsplat_available",
    "intrinsics",
    "look_at",
    "project_gaussians",
    "render",
    "rgb_to_sh_dc",
    "rigid_inverse",
    "sh_dc_to_rgb",
]
