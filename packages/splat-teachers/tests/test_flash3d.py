"""The Flash3D-style teacher: layered depth, padded Gaussian grid, depth sources, offline behaviour, bad inputs."""

import urllib.error

import pytest
import torch
from teachers_helpers import identity_cameras

from splat_render import Cameras, intrinsics, render
from splat_render.projection import project_gaussians
from splat_teachers import (
    Flash3D,
    Flash3DConfig,
    MonocularDepthHead,
    UniDepthV1,
    flash3d_gaussians_from_map,
    flash3d_preset,
)
from splat_teachers.flash3d import RESNET18, imagenet_state_dict

TINY = flash3d_preset("tiny")


@pytest.fixture(scope="module")
def teacher():
    return Flash3D(TINY).eval()


@pytest.fixture(scope="module")
def prediction(teacher):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cameras = identity_cameras(2, 32, 28.0)
    with torch.no_grad():
        return teacher(images, cameras), cameras


def layer_depths(gaussians, spec):
    """Camera-space z of each layer's Gaussians, [layers batch pixels] (offsets removed from the map first)."""
    return gaussians.means[..., 2].reshape(gaussians.batch_size, spec.gaussians_per_pixel, -1).transpose(0, 1)


def test_gaussian_count_covers_the_padded_grid(prediction, teacher):
    output, _ = prediction
    spec = teacher.map_spec
    assert (spec.height, spec.width, spec.padding, spec.gaussians_per_pixel) == (96, 96, 32, 2)
    assert output.gaussian_map.shape == (2, 48, 96, 96)
    assert output.gaussians.num_gaussians == 2 * (32 + 64) * (32 + 64)
    assert output.gaussians.sh_degree == 1


def test_second_layer_is_behind_the_first_everywhere(prediction, teacher):
    output, cameras = prediction
    spec = teacher.map_spec
    zero_offsets = output.gaussian_map.clone()
    for layer in range(2):
        zero_offsets[:, spec.group_slice("offset", layer)] = 0
    gaussians = teacher.gaussians_from_map(zero_offsets, cameras)
    first, second = layer_depths(gaussians, spec)
    assert torch.all(second > first)
    # Also for extreme raw increments: exp(clamp(x, -10, 6)) > 0.
    zero_offsets[:, spec.group_slice("depth", 1)] = -1e4
    first, second = layer_depths(teacher.gaussians_from_map(zero_offsets, cameras), spec)
    assert torch.all(second > first)


def test_first_layer_sits_at_the_backbone_depth_on_padded_pixel_rays(teacher):
    images = torch.rand(1, 3, 32, 32)
    cameras = identity_cameras(1, 32, 40.0)
    depth = torch.full((1, 1, 96, 96), 3.0)
    with torch.no_grad():
        output = teacher(images, cameras, depth=depth)
    spec = teacher.map_spec
    gaussian_map = output.gaussian_map.clone()
    gaussian_map[:, spec.group_slice("offset", 0)] = 0
    gaussians = teacher.gaussians_from_map(gaussian_map, cameras)
    first = gaussians[0].means[:, : 96 * 96]
    torch.testing.assert_close(first[..., 2], torch.full((1, 96 * 96), 3.0))
    # Padded pixel (row i, col j) lies over image pixel (i - 32, j - 32): it projects to that pixel's centre.
    projected = project_gaussians(gaussians, cameras).means2d[0, 0, : 96 * 96].reshape(96, 96, 2)
    torch.testing.assert_close(projected[40, 35], torch.tensor([35 - 32 + 0.5, 40 - 32 + 0.5]), atol=1e-4, rtol=0)


def test_activations_follow_flash3d(prediction, teacher):
    output, _ = prediction
    gaussians = output.gaussians
    assert torch.all((gaussians.opacities > 0) & (gaussians.opacities < 1))
    torch.testing.assert_close(gaussians.quats.norm(dim=-1), torch.ones_like(gaussians.opacities))
    scale_raw = output.gaussian_map[:, teacher.map_spec.group_slice("scale", 1)]
    torch.testing.assert_close(
        gaussians.scales[:, 96 * 96 :], 0.01 * torch.exp(scale_raw).flatten(2).transpose(1, 2), rtol=1e-5, atol=0
    )


def test_map_to_gaussians_is_the_teachers_head_and_renders(prediction, teacher):
    output, cameras = prediction
    again = flash3d_gaussians_from_map(output.gaussian_map, cameras, TINY)
    assert torch.equal(again.means, output.gaussians.means)
    image = render(output.gaussians, cameras, background=0.5).rgb
    assert image.shape == (2, 1, 3, 32, 32) and torch.isfinite(image).all()


def test_trains_from_images_alone_through_the_learned_depth_head():
    teacher = Flash3D(TINY)
    images = torch.rand(1, 3, 32, 32)
    output = teacher(images, identity_cameras(1, 32, 28.0))
    loss = render(output.gaussians, identity_cameras(1, 32, 28.0), background=0.5).rgb.sub(images).square().mean()
    loss.backward()
    head_grads = [p.grad for p in teacher.depth_head.parameters()]
    assert all(g is not None for g in head_grads) and sum(g.abs().sum() for g in head_grads) > 0
    depth = MonocularDepthHead(TINY.depth_head)(torch.rand(1, 3, 64, 64))
    assert torch.all((depth >= 0.1 - 1e-6) & (depth <= 20.0 + 1e-4))


def test_external_depth_backbone_is_frozen_and_not_saved():
    calls = []

    def backbone(images, K):
        calls.append((images.shape, K[0, 0, 2].item()))
        return torch.full((images.shape[0], 1, *images.shape[2:]), 2.5)

    teacher = Flash3D(Flash3DConfig(**{**TINY.__dict__, "depth_source": "external"}), depth_backbone=backbone)
    assert not any(k.startswith("depth_head") for k in teacher.state_dict())
    output = teacher(torch.rand(1, 3, 32, 32), identity_cameras(1, 32, 28.0))
    assert calls == [((1, 3, 96, 96), 16.0 + 32)]  # padded image and intrinsics
    first = output.gaussian_map[:, teacher.map_spec.group_slice("depth", 0)]
    torch.testing.assert_close(first, torch.full_like(first, 2.5).log())
    with pytest.raises(ValueError, match="depth_backbone or a depth= map"):
        Flash3D(Flash3DConfig(**{**TINY.__dict__, "depth_source": "external"}))(
            torch.rand(1, 3, 32, 32), identity_cameras(1, 32, 28.0)
        )


def test_unidepth_adapter_fails_offline_with_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(RuntimeError, match="UniDepth v1 .* torch.hub 'lpiccinelli-eth/UniDepth'") as error:
        UniDepthV1()
    assert "\n" not in str(error.value)


def test_unidepth_adapter_calls_infer_with_intrinsics():
    class FakeUniDepth:
        def infer(self, rgb, intrinsics):
            assert not torch.is_grad_enabled()
            return {"depth": rgb[:, :1] * 0 + intrinsics[:, 0, 0, None, None, None]}

    depth = UniDepthV1(model=FakeUniDepth())(torch.rand(2, 3, 8, 8), intrinsics(7.0, 7.0, 4.0, 4.0).expand(2, 3, 3))
    torch.testing.assert_close(depth, torch.full((2, 1, 8, 8), 7.0))


def test_pretrained_encoder_reads_only_the_local_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    config = Flash3DConfig(**{**TINY.__dict__, "encoder": RESNET18})
    with pytest.raises(ValueError, match=r"ImageNet weights not found at .*resnet18-f37072fd\.pth; put https://") as e:
        Flash3D(config, pretrained=True)
    assert "\n" not in str(e.value)
    # With the file in the cache (here: torchvision's architecture, random weights) it is used, conv1 excepted.
    import torchvision

    weights = torchvision.models.resnet18(weights=None).state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(weights, tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    assert set(imagenet_state_dict(RESNET18)) == set(weights)
    teacher = Flash3D(config, pretrained=True)
    assert torch.equal(teacher.encoder.resnet.layer3[1].conv2.weight, weights["layer3.1.conv2.weight"])
    assert teacher.encoder.resnet.conv1.weight.shape[1] == 4  # [RGB, depth / 20]
    with pytest.raises(ValueError, match="no ImageNet weights"):
        Flash3D(TINY, pretrained=True)


def test_bad_inputs_are_clear_value_errors(teacher):
    cameras = identity_cameras(1, 32, 28.0)
    with pytest.raises(ValueError, match="images must be 32x32 for this Flash3D config"):
        teacher(torch.rand(1, 3, 64, 64), identity_cameras(1, 64, 28.0))
    with pytest.raises(ValueError, match=r"images must be \[batch 3 height width\] RGB"):
        teacher(torch.rand(1, 4, 32, 32), cameras)
    with pytest.raises(ValueError, match="padded grid"):
        teacher(torch.rand(1, 3, 32, 32), cameras, depth=torch.ones(1, 1, 32, 32))
    with pytest.raises(ValueError, match="cameras are"):
        teacher(torch.rand(1, 3, 32, 32), identity_cameras(1, 16, 28.0))
    with pytest.raises(ValueError, match="multiple of 32"):
        Flash3DConfig(height=100)
    bad_map = torch.zeros(1, 24, 96, 96)
    with pytest.raises(ValueError, match="gaussian_map must be"):
        teacher.gaussians_from_map(bad_map, Cameras(cameras.world_to_cam, cameras.K, 32, 32))
