"""Our projection and SH evaluation agree with gsplat's own pure-PyTorch references (`gsplat.cuda._torch_impl`,
which run on CPU), values and vector-Jacobian products."""

import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics
from hypothesis import given, settings
from hypothesis import strategies as st
from render_strategies import orbit_cameras, random_gaussians, seeds

from splat_render import Gaussians, project_gaussians
from splat_render.projection import covariance_3d
from splat_render.sh import eval_sh


@settings(max_examples=25, deadline=None)
@given(seed=seeds, count=st.integers(1, 100), views=st.integers(1, 3))
def test_projection_matches_gsplat_torch_reference(seed: int, count: int, views: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    # opacity 1: our opacity-aware box then uses min(3.33, sqrt(2 ln 255)) = 3.3290..., gsplat's torch twin 3.33
    scene = random_gaussians(generator, 1, count, spread=1.5, opacity_range=(1.0, 1.0))
    cameras = orbit_cameras(generator, 1, views, 40, 30, distance=2.5)
    ours = project_gaussians(scene, cameras)
    covars, _ = _quat_scale_to_covar_preci(scene.quats[0], scene.scales[0], compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        scene.means[0], covars, cameras.world_to_cam[0], cameras.K[0], 40, 30, near_plane=cameras.near
    )
    visible = ours.visible[0]
    assert torch.equal(visible, (radii > 0).all(-1)) or (visible ^ (radii > 0).all(-1)).sum() <= 1
    both = visible & (radii > 0).all(-1)
    torch.testing.assert_close(ours.means2d[0][both], means2d[both])
    torch.testing.assert_close(ours.conics[0][both], conics[both])
    torch.testing.assert_close(ours.depths[0], depths)
    assert ((ours.radii[0][both] - radii[both]).abs() <= 1).all()


def test_projection_vjp_matches_gsplat_torch_reference() -> None:
    generator = torch.Generator().manual_seed(7)
    scene = random_gaussians(generator, 1, 50, spread=1.0)
    cameras = orbit_cameras(generator, 1, 2, 40, 30, distance=2.5)
    means, quats, scales = (t.clone().requires_grad_() for t in (scene.means, scene.quats, scene.scales))
    ours = project_gaussians(Gaussians(means, quats, scales, scene.opacities, scene.sh), cameras)
    covars, _ = _quat_scale_to_covar_preci(quats[0], scales[0], compute_preci=False)
    _, means2d, depths, conics, _ = _fully_fused_projection(
        means[0], covars, cameras.world_to_cam[0], cameras.K[0], 40, 30
    )
    v_means2d = torch.randn(means2d.shape, generator=generator, dtype=torch.float64)
    v_conics = torch.randn(conics.shape, generator=generator, dtype=torch.float64)
    v_depths = torch.randn(depths.shape, generator=generator, dtype=torch.float64)
    keep = ours.visible[0][..., None]

    def vjp(m2d, con, dep) -> tuple[torch.Tensor, ...]:
        loss = (m2d * v_means2d * keep).sum() + (con * v_conics * keep).sum() + (dep * v_depths).sum()
        return torch.autograd.grad(loss, (means, quats, scales))

    for a, b in zip(vjp(ours.means2d[0], ours.conics[0], ours.depths[0]), vjp(means2d, conics, depths), strict=True):
        torch.testing.assert_close(a, b)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, degree=st.integers(0, 3), count=st.integers(1, 50))
def test_sh_evaluation_matches_gsplat_torch_reference(seed: int, degree: int, count: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    dirs = torch.randn(count, 3, generator=generator, dtype=torch.float64)
    coeffs = torch.randn(count, 16, 3, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(eval_sh(degree, coeffs, dirs), _spherical_harmonics(degree, dirs, coeffs))


def test_covariance_matches_gsplat_torch_reference() -> None:
    generator = torch.Generator().manual_seed(3)
    quats = torch.randn(100, 4, generator=generator, dtype=torch.float64)
    scales = torch.rand(100, 3, generator=generator, dtype=torch.float64)
    expected, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(covariance_3d(quats, scales), expected)
