"""Checkpoints: official `.pth` files load strictly and safely; our safetensors + JSON round trip; clear errors."""

import json
import os

import pytest
import torch
from teachers_helpers import FIXTURES, fixture

from splat_render.ply import load_ply
from splat_teachers import (
    Flash3D,
    SplatterImage,
    UNetConfig,
    export_ply,
    flash3d_preset,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    splatter_image_preset,
)
from splat_teachers.checkpoints import checkpoint_paths
from splat_teachers.config_io import config_from_dict, config_to_dict
from splat_teachers.flash3d import Flash3DConfig
from splat_teachers.splatter_image import SplatterImageConfig


class _Exploit:
    """Unpickling this object would create a directory: the marker of code run by `torch.load`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_cars.pth"
    torch.save({"model_state_dict": {"ray_dirs": torch.zeros(1)}, "payload": _Exploit(str(marker))}, path)
    with pytest.raises(ValueError, match="refusing to unpickle") as error:
        SplatterImage.from_official_checkpoint(path, "cars")
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_official_pth_checkpoint_dict_loads_strictly(tmp_path):
    state = fixture("small_cars_perturbed_model.safetensors")
    path = tmp_path / "model_cars.pth"
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 5e-5}]}
    checkpoint = {"iteration": 800001, "optimizer_state_dict": optimizer, "loss": torch.tensor(0.01)}
    torch.save(checkpoint | {"best_PSNR": 24.0, "model_state_dict": state}, path)
    model = SplatterImage.from_official_checkpoint(path, "cars")
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_missing_official_checkpoint_names_the_expected_file(tmp_path):
    with pytest.raises(ValueError, match=r"model_chairs\.pth from huggingface\.co/szymanowiczs/splatter-image-v1"):
        SplatterImage.from_official_checkpoint(tmp_path / "absent.pth", "chairs")


def test_official_checkpoint_with_missing_or_foreign_keys_is_refused(tmp_path):
    state = fixture("small_cars_model.safetensors")
    del state["network_with_offset.out.bias"]
    state["cam_embedding_map.weight"] = torch.zeros(2)
    path = tmp_path / "broken.pth"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(ValueError, match=r"missing keys: network_with_offset\.out\.bias.*unexpected keys: cam_emb"):
        SplatterImage.from_official_checkpoint(path, "cars")


def test_official_checkpoint_of_another_dataset_camera_is_refused():
    with pytest.raises(ValueError, match="ray_dirs buffer does not match the 'hydrants' head"):
        SplatterImage.from_official_checkpoint(FIXTURES / "small_cars_model.safetensors", "hydrants")


@pytest.mark.parametrize("kind", ["splatter-image", "flash3d"])
def test_checkpoint_round_trip_reproduces_predictions(tmp_path, kind):
    generator = torch.Generator().manual_seed(4)
    if kind == "splatter-image":
        teacher = SplatterImage(splatter_image_preset("tiny"), generator=generator).eval()
        images, cameras = torch.rand(1, 3, 32, 32), teacher.input_cameras(1)
    else:
        teacher = Flash3D(flash3d_preset("tiny"), generator=generator).eval()
        images, cameras = torch.rand(1, 3, 32, 32), splatter_image_preset("tiny").head.default_cameras(1)
    path = save_checkpoint(teacher, tmp_path / "teacher")
    assert path == tmp_path / "teacher.safetensors" and (tmp_path / "teacher.json").is_file()
    loaded = load_checkpoint(tmp_path / "teacher.json")
    assert type(loaded) is type(teacher) and loaded.config == teacher.config and not loaded.training
    with torch.no_grad():
        expected, got = teacher(images, cameras), loaded(images, cameras)
    assert torch.equal(expected.gaussian_map, got.gaussian_map)
    assert torch.equal(expected.gaussians.means, got.gaussians.means)


def _splatter_image(channels: int, blocks: int) -> SplatterImage:
    """A 32 px Splatter Image with the tiny preset's head and another U-Net."""
    unet = UNetConfig(32, model_channels=channels, channel_mult=(1, 2, 2), num_blocks=blocks, attn_resolutions=(8,))
    return SplatterImage(SplatterImageConfig(unet=unet, head=splatter_image_preset("tiny").head))


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    save_checkpoint(SplatterImage(splatter_image_preset("tiny")), tmp_path / "tiny")
    with pytest.raises(ValueError, match=r"does not fit this SplatterImage architecture.*missing keys: .*block1"):
        load_weights(_splatter_image(16, blocks=2), tmp_path / "tiny.safetensors")
    with pytest.raises(ValueError, match="does not fit this Flash3D architecture.*unexpected keys"):
        load_weights(Flash3D(flash3d_preset("tiny")), tmp_path / "tiny")
    with pytest.raises(ValueError, match="shape mismatches"):
        load_weights(_splatter_image(32, blocks=1), tmp_path / "tiny")


def test_checkpoint_config_errors_are_clear(tmp_path):
    save_checkpoint(SplatterImage(splatter_image_preset("tiny")), tmp_path / "tiny")
    _, config_path = checkpoint_paths(tmp_path / "tiny")
    document = json.loads(config_path.read_text())
    document["config"]["unet"]["model_chanels"] = 8
    config_path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"unknown fields \['model_chanels'\]"):
        load_checkpoint(tmp_path / "tiny")
    with pytest.raises(ValueError, match="no such checkpoint config"):
        load_checkpoint(tmp_path / "absent")


@pytest.mark.parametrize(
    "config",
    [splatter_image_preset("hydrants"), splatter_image_preset("tiny"), Flash3DConfig(), flash3d_preset("tiny")],
)
def test_configs_survive_json(config):
    data = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(type(config), data) == config


def test_prediction_exports_to_a_standard_ply(tmp_path):
    teacher = SplatterImage(splatter_image_preset("tiny")).eval()
    with torch.no_grad():
        output = teacher(torch.rand(2, 3, 32, 32), teacher.input_cameras(2))
    path = export_ply(output, tmp_path / "scene.ply", index=1)
    loaded = load_ply(path)
    expected = output.gaussians[1]
    assert loaded.num_gaussians == 32 * 32 and loaded.sh_degree == 1
    torch.testing.assert_close(loaded.means, expected.means)
    torch.testing.assert_close(loaded.sh, expected.sh)
    torch.testing.assert_close(loaded.scales, expected.scales, rtol=1e-5, atol=1e-7)
