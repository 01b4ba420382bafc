"""Our Splatter Image reproduces the official network (upstream 78a6ad0) on the shared fixtures, at the fixture
README's tolerances: base fixture 1e-5 (rotation 1e-4), perturbed fixture 1e-4, identity camera and camera "camB"."""

import json

import pytest
import torch
from teachers_helpers import FIXTURES, fixture

from splat_render import Cameras
from splat_teachers import CARS, OfficialSplatterImage, SplatterImage, SplatterImageConfig, splatter_image_preset
from splat_teachers.splatter_image import infer_unet_config

KEYS = ["xyz", "rotation", "features_dc", "opacity", "scaling", "features_rest"]


@pytest.fixture(scope="module")
def base():
    return SplatterImage.from_official_checkpoint(FIXTURES / "small_cars_model.safetensors", "cars")


@pytest.fixture(scope="module")
def perturbed():
    return SplatterImage.from_official_checkpoint(FIXTURES / "small_cars_perturbed_model.safetensors", "cars")


@pytest.fixture(scope="module")
def io():
    return fixture("small_cars_io.safetensors")


@pytest.fixture(scope="module")
def pio():
    return fixture("small_cars_perturbed_io.safetensors")


def base_tolerance(key: str) -> dict:
    return dict(atol=1e-4 if key == "rotation" else 1e-5, rtol=1e-5)


def as_upstream(gaussians) -> dict[str, torch.Tensor]:
    """Our `Gaussians` in upstream's output-dict layout."""
    return {
        "xyz": gaussians.means,
        "rotation": gaussians.quats,
        "features_dc": gaussians.sh[:, :, :1],
        "opacity": gaussians.opacities[..., None],
        "scaling": gaussians.scales,
        "features_rest": gaussians.sh[:, :, 1:],
    }


def test_raw_map_matches_official(base, io):
    with torch.no_grad():
        raw = base.predict_map(io["input_images"][:, 0])
    torch.testing.assert_close(raw, io["raw_network_output"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activate", [True, False])
def test_official_signature_outputs_match(base, io, activate):
    adapter = OfficialSplatterImage(base)
    with torch.no_grad():
        out = adapter(io["input_images"], io["view_to_world_transforms"], io["source_cv2wT_quat"], None, activate)
    prefix = "out_act/" if activate else "out_noact/"
    assert list(out) == KEYS
    for key in KEYS:
        torch.testing.assert_close(out[key], io[prefix + key], **base_tolerance(key))


def test_teacher_protocol_outputs_match(base, io):
    cameras = base.input_cameras(1)
    with torch.no_grad():
        output = base(io["input_images"][:, 0], cameras)
    torch.testing.assert_close(output.gaussian_map, io["raw_network_output"], atol=1e-5, rtol=1e-5)
    ours = as_upstream(output.gaussians)
    for key in KEYS:
        torch.testing.assert_close(ours[key], io["out_act/" + key], **base_tolerance(key))


def test_perturbed_identity_camera_matches(perturbed, io, pio):
    index = pio["point_index"]
    adapter = OfficialSplatterImage(perturbed)
    with torch.no_grad():
        raw = perturbed.predict_map(io["input_images"][:, 0])
        out = adapter(io["input_images"], io["view_to_world_transforms"], io["source_cv2wT_quat"])
        raw_out = adapter(io["input_images"], io["view_to_world_transforms"], io["source_cv2wT_quat"], None, False)
    torch.testing.assert_close(raw.flatten(2)[:, :, index], pio["raw_network_output_sub"], atol=1e-4, rtol=1e-4)
    for key in KEYS:
        torch.testing.assert_close(out[key][:, index], pio["id/out_act/" + key], atol=1e-4, rtol=1e-4)
    for key in ["opacity", "scaling"]:
        torch.testing.assert_close(raw_out[key][:, index], pio["id/out_noact/" + key], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pass_quaternion", [True, False])
def test_perturbed_non_identity_camera_matches(perturbed, io, pio, pass_quaternion):
    index = pio["point_index"]
    quaternion = pio["camB/source_cv2wT_quat"] if pass_quaternion else None
    with torch.no_grad():
        out = OfficialSplatterImage(perturbed)(io["input_images"], pio["camB/view_to_world_transforms"], quaternion)
    for key in KEYS:
        torch.testing.assert_close(out[key][:, index], pio["camB/out_act/" + key], atol=1e-4, rtol=1e-4)


def test_teacher_with_non_identity_input_pose_matches_camB(perturbed, io, pio):
    index = pio["point_index"]
    cam_to_world = pio["camB/view_to_world_transforms"][:, :1].transpose(-1, -2)
    K = perturbed.head.default_intrinsics(1)[:, None]
    cameras = Cameras.from_cam_to_world(cam_to_world, K, 128, 128)
    with torch.no_grad():
        gaussians = perturbed(io["input_images"][:, 0], cameras).gaussians
    ours = as_upstream(gaussians)
    for key in KEYS:
        torch.testing.assert_close(ours[key][:, index], pio["camB/out_act/" + key], atol=1e-4, rtol=1e-4)


def test_fixture_state_dicts_load_strictly_with_official_keys(base):
    state = fixture("small_cars_model.safetensors")
    assert set(base.state_dict()) == set(state)  # (safetensors stores keys sorted)
    for key, value in state.items():
        assert torch.equal(base.state_dict()[key], value), key
    assert sum(p.numel() for p in base.parameters()) == 407_008


def test_seed_zero_init_has_the_fixture_architecture_and_buffers():
    state = fixture("small_cars_model.safetensors")
    ours = SplatterImage(SplatterImageConfig(unet=infer_unet_config(state), head=CARS))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
    for buffer in ["ray_dirs", "sh_to_v_transform", "v_to_sh_transform"]:
        torch.testing.assert_close(ours.state_dict()[buffer], state[buffer], atol=1e-6, rtol=0)
    filters = [k for k in state if k.endswith("resample_filter")]
    assert filters and all(torch.equal(ours.state_dict()[k], state[k]) for k in filters)


def test_released_cars_state_dict_keys_and_shapes_match_listing():
    listing = json.loads((FIXTURES / "state_dict_shapes_cars.json").read_text())["cars"]
    with torch.device("meta"):
        model = SplatterImage(splatter_image_preset("cars"))
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    theirs = [(entry["key"], entry["shape"]) for entry in listing["state_dict"]]
    assert ours == theirs
    parameters = {name for name, _ in model.named_parameters()}
    assert parameters == {e["key"] for e in listing["state_dict"] if e["kind"] == "parameter"}
    assert sum(p.numel() for p in model.parameters()) == listing["total_parameters"] == 56_378_736


def test_state_dict_shapes_determine_the_unet_config():
    config = infer_unet_config(fixture("small_cars_model.safetensors"))
    assert (config.model_channels, config.num_blocks, config.channel_mult) == (16, 1, (1, 2, 2, 2))
    assert config.attn_resolutions == (16,) and config.resolution == 128 and not config.noise_embedding
    with torch.device("meta"):
        released = SplatterImage(splatter_image_preset("cars")).state_dict()
    assert infer_unet_config(released) == splatter_image_preset("cars").unet
