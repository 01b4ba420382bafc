"""Finite-difference gradient checks (float64) of the torch backend w.r.t. every Gaussian parameter."""

import pytest
import torch
from render_strategies import orbit_cameras, random_gaussians

from splat_render import Gaussians, render


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_torch_backend_passes_gradcheck(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scene = random_gaussians(generator, 1, 5, sh_degree=1, scale_range=(0.1, 0.4), opacity_range=(0.2, 0.8))
    cameras = orbit_cameras(generator, 1, 2, 10, 9, distance=4.0)
    background = torch.rand(1, 2, 3, generator=generator, dtype=torch.float64)
    names = ["means", "quats", "scales", "opacities", "sh"]
    inputs = [getattr(scene, n).clone().requires_grad_() for n in names]

    def function(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = render(
            Gaussians(**dict(zip(names, tensors, strict=True))), cameras, background=background, backend="torch"
        )
        return out.rgb, out.alpha, out.depth

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
