"""Bad input is a one-line ValueError that names the argument; the containers behave like batched values."""

import math

import pytest
import torch
from render_strategies import identity_cameras, random_gaussians

from splat_render import Cameras, Gaussians, RenderConfig, focal_to_fov, fov_to_focal, intrinsics, look_at, render
from splat_render.projection import project_gaussians


def _scene(batch: int = 2, count: int = 5) -> Gaussians:
    return random_gaussians(torch.Generator().manual_seed(0), batch, count)


def test_mismatched_batch_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="batch size 2 but cameras has 3"):
        render(_scene(2), identity_cameras(3, 1, 8), background=0.0)
    g = _scene(2)
    with pytest.raises(ValueError, match="opacities"):
        Gaussians(g.means, g.quats, g.scales, g.opacities[:1], g.sh)
    with pytest.raises(ValueError, match="quats"):
        Gaussians(g.means, g.quats[:, :3], g.scales, g.opacities, g.sh)


@pytest.mark.parametrize("name", ["means", "quats", "scales", "opacities", "sh", "world_to_cam", "K", "background"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_values_are_rejected_naming_the_argument(name: str, bad: float) -> None:
    g, cams = _scene(1), identity_cameras(1, 1, 8)
    background = torch.zeros(3, dtype=torch.float64)
    tensors = {**g.tensors(), "world_to_cam": cams.world_to_cam.clone(), "K": cams.K.clone(), "background": background}
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = bad
    g = Gaussians(**{k: tensors[k] for k in g.tensors()})
    cams = Cameras(tensors["world_to_cam"], tensors["K"], 8, 8)
    with pytest.raises(ValueError, match=f"^{name} contains non-finite"):
        render(g, cams, background=tensors["background"])


@pytest.mark.parametrize("coeffs", [2, 3, 5, 8, 10])
def test_sh_count_must_be_a_square(coeffs: int) -> None:
    g = _scene(1)
    with pytest.raises(ValueError, match="sh must hold"):
        Gaussians(g.means, g.quats, g.scales, g.opacities, torch.zeros(1, 5, coeffs, 3, dtype=torch.float64))


def test_sh_degree_above_the_coefficients_is_rejected() -> None:
    with pytest.raises(ValueError, match="sh_degree"):
        render(_scene(1), identity_cameras(1, 1, 8), background=0.0, sh_degree=2)


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        render(_scene(1), identity_cameras(1, 1, 8), background=0.0, backend="optix")  # type: ignore[arg-type]


def test_gsplat_backend_on_cpu_tensors_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend='gsplat' needs CUDA"):
        render(_scene(1), identity_cameras(1, 1, 8), background=0.0, backend="gsplat")


def test_mixed_dtypes_and_wrong_background_are_rejected() -> None:
    with pytest.raises(ValueError, match="cameras are torch.float32"):
        render(_scene(1), identity_cameras(1, 1, 8, dtype=torch.float32), background=0.0)
    with pytest.raises(ValueError, match="background"):
        render(_scene(1), identity_cameras(1, 1, 8), background=torch.zeros(4))
    with pytest.raises(ValueError, match="scales is torch.float32"):
        g = _scene(1)
        Gaussians(g.means, g.quats, g.scales.float(), g.opacities, g.sh)


def test_cameras_validate_their_fields() -> None:
    eye = torch.eye(4)[None, None]
    K = intrinsics(10.0, 10.0, 4.0, 4.0)[None, None]
    with pytest.raises(ValueError, match="width must be a positive int"):
        Cameras(eye, K, 0, 8)
    with pytest.raises(ValueError, match="near/far"):
        Cameras(eye, K, 8, 8, near=2.0, far=1.0)
    with pytest.raises(ValueError, match="K has batch/views"):
        Cameras(eye, K.expand(1, 2, 3, 3), 8, 8)
    with pytest.raises(ValueError, match="world_to_cam must have shape"):
        Cameras(eye[..., :3, :], K, 8, 8)


def test_containers_index_concatenate_and_move_over_the_batch() -> None:
    g = _scene(3, 4)
    assert g[1].batch_size == 1 and torch.equal(g[1].means, g.means[1:2])
    assert g[-1].batch_size == 1 and torch.equal(g[-1].means, g.means[2:])
    assert Gaussians.cat([g, g], along="batch").batch_size == 6
    assert Gaussians.cat([g, g], along="gaussians").num_gaussians == 8
    assert g.to(torch.float32).dtype == torch.float32
    assert not g.map(lambda t: t.requires_grad_()).detach().means.requires_grad
    cams = identity_cameras(3, 2, 8)
    assert cams[0].batch_size == 1 and cams.select_views(1).num_views == 1
    assert Cameras.cat([cams, cams]).num_views == 4


def test_fov_and_focal_are_inverse_and_match_srn() -> None:
    assert math.isclose(fov_to_focal(51.98948897809546, 128), 131.25, rel_tol=1e-12)
    assert math.isclose(focal_to_fov(fov_to_focal(40.0, 64), 64), 40.0, rel_tol=1e-12)


def test_look_at_cameras_see_their_target_at_the_principal_point() -> None:
    generator = torch.Generator().manual_seed(0)
    eye = torch.randn(10, 3, generator=generator, dtype=torch.float64) * 3
    target = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    c2w = look_at(eye, target, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(10, 3))
    cams = Cameras.from_fov(c2w[None], 50.0, 32, 24)
    point = Gaussians(
        means=target[None],
        quats=torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(1, 10, 4),
        scales=torch.full((1, 10, 3), 0.01, dtype=torch.float64),
        opacities=torch.ones(1, 10, dtype=torch.float64),
        sh=torch.zeros(1, 10, 1, 3, dtype=torch.float64),
    )
    projected = project_gaussians(point, cams).means2d[0, torch.arange(10), torch.arange(10)]
    torch.testing.assert_close(projected, torch.tensor([[16.0, 12.0]], dtype=torch.float64).expand(10, 2))
    torch.testing.assert_close(cams.cam_to_world[0], c2w)
    assert torch.allclose(torch.linalg.det(c2w[:, :3, :3]), torch.ones(10, dtype=torch.float64))


def test_render_config_does_not_change_the_image() -> None:
    g, cams = (
        random_gaussians(torch.Generator().manual_seed(1), 1, 200, scale_range=(0.05, 0.3)),
        identity_cameras(1, 1, 30),
    )
    a = render(g, cams, background=0.5, config=RenderConfig(tile_size=16, chunk_elements=10_000))
    b = render(g, cams, background=0.5, config=RenderConfig(tile_size=4))
    torch.testing.assert_close(a.rgb, b.rgb, rtol=1e-12, atol=1e-12)
