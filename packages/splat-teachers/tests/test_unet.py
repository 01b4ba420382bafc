"""The EDM SongUNet: presets, the optional noise embedding, input validation, gradients."""

import math
from dataclasses import replace

import pytest
import torch

from splat_teachers import UNET_PRESETS, GaussianMapNetwork, SongUNet, UNetConfig, unet_preset
from splat_teachers.unet import positional_embedding


def count(config: UNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in GaussianMapNetwork(config).parameters())


def perturb_(module: torch.nn.Module, seed: int) -> None:
    """Replace every parameter by O(1) values (as the perturbed fixture does), so every path matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            fan_in = parameter[0].numel() if parameter.ndim >= 2 else 1
            parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(fan_in))


def test_preset_parameter_counts():
    teacher = count(unet_preset("splatter-image"))
    medium = count(unet_preset("medium"))
    tiny = count(unet_preset("tiny"))
    assert teacher == 56_378_736  # the released Splatter Image (with its 1x1 output conv)
    assert medium == 27_425_008 and medium < 0.55 * teacher  # the student: about half, as in the paper
    assert 100_000 < tiny < 500_000
    assert unet_preset("medium").in_channels == 3 + 24 and unet_preset("medium").noise_embedding
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        unet_preset("huge")


def test_positional_embedding_is_edm_ddpmpp():
    labels = torch.tensor([0.0, 0.3, 17.0])
    channels = 8
    frequencies = (1 / 10000) ** (torch.arange(4) / 3)  # EDM: endpoint=True
    angles = labels[:, None] * frequencies
    cos_sin = torch.cat([angles.cos(), angles.sin()], dim=1)
    swapped = cos_sin.reshape(3, 2, -1).flip(1).reshape(3, -1)  # EDM swaps the halves
    torch.testing.assert_close(positional_embedding(labels, channels), swapped)


def test_tiny_unet_maps_shapes_and_backpropagates():
    config = unet_preset("tiny")
    network = GaussianMapNetwork(config)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = network(x)
    assert out.shape == (2, 24, 32, 32)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in network.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_noise_embedding_conditions_the_output():
    config = UNetConfig(
        resolution=16,
        in_channels=5,
        out_channels=4,
        model_channels=8,
        channel_mult=(1, 2),
        num_blocks=1,
        attn_resolutions=(8,),
        noise_embedding=True,
        dropout=0.0,
    )
    network = SongUNet(config).eval()
    perturb_(network, 0)
    x = torch.rand(2, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    low, high = network(x, torch.tensor([0.1, 0.1])), network(x, torch.tensor([5.0, 5.0]))
    assert (low - high).abs().max() > 1e-2
    torch.testing.assert_close(network(x, torch.tensor([3, 3])), network(x, torch.tensor([3.0, 3.0])))  # timesteps
    same = network(x, torch.tensor([0.1, 5.0]))  # per-sample labels
    torch.testing.assert_close(same[0], low[0])
    torch.testing.assert_close(same[1], high[1])
    assert {"map_layer0.weight", "map_layer1.weight", "enc.16x16_block0.affine.weight"} <= set(network.state_dict())
    with pytest.raises(ValueError, match="noise_labels"):
        network(x)
    with pytest.raises(ValueError, match="noise_labels"):
        SongUNet(unet_preset("tiny"))(torch.rand(1, 3, 32, 32), torch.tensor([1.0]))


def test_initialisation_is_deterministic_and_follows_the_generator():
    config = unet_preset("tiny")
    a, b = SongUNet(config).state_dict(), SongUNet(config).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = SongUNet(config, generator=torch.Generator().manual_seed(7)).state_dict()
    assert not torch.equal(a["enc.32x32_conv.weight"], c["enc.32x32_conv.weight"])
    # EDM's init: zero biases, second convs of blocks at 1e-5 scale.
    assert torch.all(a["enc.32x32_conv.bias"] == 0)
    assert a["enc.32x32_block0.conv1.weight"].abs().max() < 1e-4


def test_bad_inputs_and_configs_are_value_errors():
    network = SongUNet(unet_preset("tiny"))
    with pytest.raises(ValueError, match=r"x must be \[batch 3 height width\]"):
        network(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="x must be 32x32"):
        network(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="not divisible"):
        UNetConfig(resolution=100, channel_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="model_channels"):
        UNetConfig(model_channels=0)
    with pytest.raises(ValueError, match="GroupNorm"):
        SongUNet(UNetConfig(resolution=32, model_channels=112, channel_mult=(1, 2), num_blocks=1, attn_resolutions=()))


def test_presets_are_frozen_and_read_only():
    with pytest.raises(TypeError):
        UNET_PRESETS["mine"] = UNetConfig()  # type: ignore[index]
    with pytest.raises(AttributeError):
        unet_preset("tiny").model_channels = 3  # type: ignore[misc]


def test_non_square_inputs_keep_edm_names_and_match_the_square_network():
    square = UNetConfig(
        resolution=16,
        in_channels=5,
        out_channels=4,
        model_channels=8,
        channel_mult=(1, 2, 2),
        num_blocks=1,
        attn_resolutions=(4,),
        noise_embedding=True,
        dropout=0.0,
    )
    wide = replace(square, width=24)
    assert wide.input_size == (16, 24) and square.input_size == (16, 16)
    reference = SongUNet(square).eval()
    perturb_(reference, 0)
    network = SongUNet(wide).eval()
    network.load_state_dict(reference.state_dict(), strict=True)  # same official key names (`enc.16x16_conv`, ...)
    assert list(network.state_dict()) == list(reference.state_dict())
    labels = torch.tensor([0.5, 3.0])
    x = torch.rand(2, 5, 16, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = network(x, labels)
    assert out.shape == (2, 4, 16, 24)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad[..., -1].abs().sum() > 0
    # width == resolution is the square network, value for value
    same = SongUNet(replace(square, width=16)).eval()
    same.load_state_dict(reference.state_dict())
    x_square = torch.rand(2, 5, 16, 16, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(same(x_square, labels), reference(x_square, labels), rtol=0, atol=0)
    # the whole width is used: changing the rightmost column changes the leftmost outputs
    changed = x.detach().clone()
    changed[..., -1] += 1.0
    assert (network(changed, labels)[..., 0] - network(x.detach(), labels)[..., 0]).abs().max() > 0


def test_non_square_configs_are_validated():
    with pytest.raises(ValueError, match="width 20 is not divisible"):
        UNetConfig(resolution=32, width=20, channel_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="width must be a positive int"):
        UNetConfig(width=0)
    network = SongUNet(replace(unet_preset("tiny"), width=48))
    with pytest.raises(ValueError, match="x must be 32x48"):
        network(torch.rand(1, 3, 32, 32))
