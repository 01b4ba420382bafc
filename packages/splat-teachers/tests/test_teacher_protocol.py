"""Both teachers implement one protocol; a student's map goes through the teacher's own head; bad input is refused."""

import pytest
import torch
from teachers_helpers import identity_cameras

from splat_render import Cameras
from splat_teachers import (
    HYDRANTS,
    Flash3D,
    OfficialSplatterImage,
    SplatterImage,
    SplatterImageConfig,
    Teacher,
    TeacherOutput,
    flash3d_preset,
    gaussians_from_map,
    splatter_image_preset,
)

TINY = splatter_image_preset("tiny")


@pytest.fixture(scope="module")
def tiny():
    return SplatterImage(TINY).eval()


def test_both_teachers_implement_the_protocol(tiny):
    for teacher in (tiny, Flash3D(flash3d_preset("tiny"))):
        assert isinstance(teacher, Teacher)
        images = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            output = teacher(images, identity_cameras(1, 32, 30.0))
        assert isinstance(output, TeacherOutput)
        teacher.map_spec.check(output.gaussian_map)
        assert output.gaussians.num_gaussians == teacher.map_spec.num_gaussians


def test_a_students_map_becomes_gaussians_through_the_teachers_head(tiny):
    """Any map of the teacher's layout (here: noise, as an untrained student would predict) is a valid input."""
    student_map = torch.randn(3, *[tiny.map_spec.channels, tiny.map_spec.height, tiny.map_spec.width])
    cameras = tiny.input_cameras(3)
    gaussians = tiny.gaussians_from_map(student_map, cameras)
    expected = gaussians_from_map(student_map, cameras, TINY.head)
    assert torch.equal(gaussians.means, expected.means) and torch.equal(gaussians.sh, expected.sh)
    assert gaussians.num_gaussians == 32 * 32 and gaussians.batch_size == 3


def test_teacher_gaussians_are_the_head_applied_to_its_own_map(tiny):
    cameras = tiny.input_cameras(2)
    with torch.no_grad():
        output = tiny(torch.rand(2, 3, 32, 32), cameras)
    again = tiny.gaussians_from_map(output.gaussian_map, cameras)
    for name, value in output.gaussians.tensors().items():
        assert torch.equal(value, getattr(again, name)), name


def test_co3d_teacher_adds_the_origin_distance_to_every_depth():
    from dataclasses import replace

    config = SplatterImageConfig(unet=TINY.unet, head=replace(HYDRANTS, resolution=32))
    teacher = SplatterImage(config).eval()
    images, cameras = torch.rand(2, 3, 32, 32), identity_cameras(2, 32, 40.0)
    with torch.no_grad():
        near = teacher(images, cameras, origin_distance=torch.tensor([1.0, 1.0])).gaussians
        far = teacher(images, cameras, origin_distance=torch.tensor([1.0, 4.0])).gaussians
    spec = teacher.map_spec
    assert torch.equal(near.means[0], far.means[0])
    offset_free = far.means[1] - near.means[1]  # (ray * 3) for every pixel: z grows by exactly 3
    torch.testing.assert_close(offset_free[:, 2], torch.full((spec.num_gaussians,), 3.0))
    with pytest.raises(ValueError, match="origin_distance"):
        teacher(images, cameras)


def test_official_adapter_for_co3d_takes_focals_and_a_distance_channel():
    from dataclasses import replace

    teacher = SplatterImage(SplatterImageConfig(unet=TINY.unet, head=replace(HYDRANTS, resolution=32))).eval()
    adapter = OfficialSplatterImage(teacher)
    images = torch.rand(1, 3, 32, 32)
    x = torch.cat([images, torch.full((1, 1, 32, 32), 2.0)], dim=1)[:, None]
    focals = torch.tensor([[[40.0, 40.0]]])
    with torch.no_grad():
        out = adapter(x, torch.eye(4)[None, None], None, focals)
        ours = teacher(images, identity_cameras(1, 32, 40.0), origin_distance=torch.tensor([2.0])).gaussians
    torch.testing.assert_close(out["xyz"], ours.means)
    with pytest.raises(ValueError, match="focals_pixels"):
        adapter(x, torch.eye(4)[None, None])
    x[0, 0, 3, 0, 0] = 5.0
    with pytest.raises(ValueError, match="constant per image"):
        adapter(x, torch.eye(4)[None, None], None, focals)


def test_bad_inputs_are_clear_value_errors(tiny):
    cameras = tiny.input_cameras(1)
    with pytest.raises(ValueError, match="images must be 32x32 for this Splatter Image preset, got 64x64"):
        tiny(torch.rand(1, 3, 64, 64), Cameras(cameras.world_to_cam, cameras.K, 64, 64))
    with pytest.raises(ValueError, match=r"images must be \[batch 3 height width\] RGB, got \[1, 4, 32, 32\]"):
        tiny(torch.rand(1, 4, 32, 32), cameras)
    with pytest.raises(ValueError, match="one input view per image"):
        tiny(torch.rand(2, 3, 32, 32), cameras)
    with pytest.raises(ValueError, match="single-view"):
        OfficialSplatterImage(tiny)(torch.rand(1, 2, 3, 32, 32), torch.eye(4).expand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="fixed focal length"):
        OfficialSplatterImage(tiny)(torch.rand(1, 1, 3, 32, 32), torch.eye(4)[None, None], None, torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match="U-Net resolution 32 != head resolution 128"):
        SplatterImageConfig(unet=TINY.unet)
    with pytest.raises(ValueError, match="unknown Splatter Image preset"):
        splatter_image_preset("lamps")
