"""The app's Co3D choices: the presets (black background, the paper's hydrant setting), the teacher (the `hydrants`
head, the official checkpoint), the world-frame origin distance of every view in the batches, the protocol's views and
slots, its table beside the paper's numbers, and sample.py's input and turntable."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from co3d_fixtures import SIDE, tiny_experiment
from PIL import Image
from safetensors.torch import save_file

from app_co3d import APP
from app_co3d.app import SampleOptions, build_teacher, teacher_config, world_origin_and_up
from app_co3d.data import Co3DDataset, is_black
from app_co3d.experiment import BLACK, PRESETS, Co3DExperiment
from app_co3d.protocol import protocol
from splat_apps import StaticProtocol, collate
from splat_apps.evaluation import METHODS, table_markdown
from splat_teachers import SplatterImage, unet_preset


def test_every_preset_renders_on_black_and_the_hydrant_preset_is_the_papers_setting() -> None:
    for make in (Co3DExperiment, *PRESETS.values()):
        assert make().background == BLACK and make().stages.background == BLACK
    demo, hydrant = PRESETS["cpu-demo"](), PRESETS["hydrant"]()
    assert demo.data.root is None and demo.data.synthetic.resolution == 32 and demo.threads == 1
    assert hydrant.data.resolution is None  # preprocessed Co3D is stored at 128 px
    assert hydrant.model.teacher_unet == unet_preset("splatter-image")
    assert hydrant.model.student_unet == unet_preset("medium")
    config = teacher_config(hydrant, 128)
    assert config.head.name == "hydrants" and config.head.origin_distance
    assert (config.head.znear, config.head.zfar) == (-2.0, 2.0)
    assert hydrant.teacher.lpips_start_step == 800_000 and hydrant.teacher.loop.max_steps == 900_000


def test_an_official_checkpoint_is_loaded_with_the_hydrants_head(tmp_path: Path) -> None:
    experiment = tiny_experiment(None)
    original = SplatterImage(teacher_config(experiment, SIDE), generator=torch.Generator().manual_seed(5))
    path = tmp_path / "model_hydrants.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, path)
    loaded = build_teacher(replace(experiment, teacher_checkpoint=path), SIDE)
    assert loaded.head.name == "hydrants" and loaded.head.origin_distance
    for name, value in original.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    with pytest.raises(ValueError, match="set --data.resolution 16"):
        build_teacher(replace(experiment, teacher_checkpoint=path), 32)


def test_batches_carry_the_world_frame_origin_distance_of_the_source_and_of_every_target(hydrants: Path) -> None:
    dataset = Co3DDataset(hydrants, "train")
    generator = torch.Generator().manual_seed(3)
    examples = [dataset.training_example(index, 3, generator) for index in (0, 1, 1, 0)]
    batch = collate(examples)
    # oracle, independent of the reader: the world origin sits at X_cam = 0 R + T, so its depth is T_z (PyTorch3D
    # and OpenCV share the z axis); the relative input camera would give 0
    with np.load(hydrants / "train" / "camera_Ts.npz") as archive:
        T = {name: archive[name] for name in archive.files}
    expected_targets = [[T[e.item][int(v), 2] for v in e.target_views] for e in examples]
    torch.testing.assert_close(
        batch.teacher_inputs["origin_distance"], torch.tensor([row[0] for row in expected_targets])
    )
    torch.testing.assert_close(batch.target_teacher_inputs["origin_distance"], torch.tensor(expected_targets))
    assert all(e.input_view == int(e.target_views[0]) for e in examples)  # Splatter Image: the input is rendered too
    assert batch.source_cameras.world_to_cam.eq(torch.eye(4)).all()  # cameras relative to the input view


def test_the_protocol_takes_view_0_in_its_own_slot_then_every_non_black_view(hydrants: Path) -> None:
    dataset = Co3DDataset(hydrants, "test")
    example = dataset.evaluation_example(1)
    assert example.input_view == 0 and example.target_views.tolist() == [0, 1, 3, 4]  # views 2 and 5 are black
    assert not is_black(example.target_images).any()
    assert dataset.evaluation_example(1, include_input_in_targets=False).target_views.tolist() == [1, 3, 4]
    everything = dataset.evaluation_example(1, skip_black_targets=False, include_input_in_targets=False)
    assert is_black(everything.target_images).tolist() == [False, True, False, False, True]
    almost = torch.zeros(2, 3, 4, 4)
    almost[1, 2, 3, 3] = 1e-6
    assert is_black(almost).tolist() == [True, False]

    co3d = protocol(tiny_experiment(hydrants), dataset)
    assert isinstance(co3d, StaticProtocol) and co3d.count == 2 and co3d.input_slot == "input"
    parts = list(co3d.batches())
    assert [(p.items, p.slots, p.seed, p.grid_names) for p in parts] == [
        (("900_1_1",), ("input", "novel", "novel", "novel"), 0, ("900_1_1",)),
        (("901_1_1",), ("input", "novel", "novel", "novel"), 1, ("901_1_1",)),
    ]
    for index, (part, views) in enumerate(zip(parts, ([0, 1, 2, 3], [0, 1, 3, 4]), strict=True)):
        sequence = dataset.load(index)
        assert torch.equal(part.batch.source_images[0], sequence.images[0])
        assert torch.equal(part.batch.target_images[0], sequence.images[views])
        assert torch.equal(part.batch.teacher_inputs["origin_distance"], sequence.origin_distances[:1])
        assert torch.equal(part.batch.target_teacher_inputs["origin_distance"][0], sequence.origin_distances[views])
    subset = protocol(tiny_experiment(hydrants, max_sequences=1), dataset)
    assert subset.count == 1 and [p.items for p in subset.batches()] == [("900_1_1",)]
    with pytest.raises(ValueError, match="--max-sequences 0"):
        protocol(tiny_experiment(hydrants, max_sequences=0), dataset)


def test_the_table_labels_the_papers_numbers_and_says_when_they_are_not_comparable(hydrants: Path) -> None:
    summary = {m: {"novel": {"psnr": 20.0, "ssim": 0.5, "items": 2.0}, "input": {"psnr": 25.0}} for m in METHODS}

    def table(root: Path | None, split: str = "test", lpips_note: str | None = None) -> str:
        return table_markdown(
            protocol(tiny_experiment(root), Co3DDataset(hydrants, split)).table, summary, 4, lpips_note
        )

    real = table(hydrants)
    assert real.startswith("### Co3D hydrant (test split, 2 sequences, 16px, preset cpu-demo)")
    assert "| teacher | 20.00 | 0.500 | n/a | 25.00 |" in real
    assert "| A Lesson in Splats (paper) | 22.34 | — | 0.149 | — |" in real
    assert "| Splatter Image (paper) | 21.77 | — | 0.154 | — |" in real
    assert "| ViewSet Diffusion (paper) | 21.24 | — | 0.201 | — |" in real
    assert "copied from the paper, not produced by this run" in real and "Not comparable" not in real
    synthetic = table(None, lpips_note="LPIPS off")
    assert synthetic.startswith("### synthetic hydrant-like sequences")
    assert "Not comparable: this run is on synthetic" in synthetic and "LPIPS off" in synthetic
    assert "Not comparable: this run is Co3D hydrant, val split, 16px" in table(hydrants, "val")


def test_the_turntable_circles_the_world_origin_about_the_world_up(hydrants: Path) -> None:
    experiment = tiny_experiment(hydrants)
    item = APP.sample_input(SampleOptions(), experiment, hydrants, build_teacher(experiment, SIDE))
    example = Co3DDataset(hydrants, "test").evaluation_example(0)
    assert item.name == "900_1_1" and torch.equal(item.batch.source_images[0], example.input_image)
    center, up = world_origin_and_up(example.input_cam_to_world)
    # the origin's depth along the optical axis is, by definition, the origin distance
    assert float(center[2]) == pytest.approx(float(example.teacher_inputs["origin_distance"]), rel=1e-5)
    assert float(up.norm()) == pytest.approx(1.0, rel=1e-5)
    assert float(up[1]) < -0.8  # fixture cameras look at the origin with y up: image up is -y
    cam_to_world = item.path(None, 8).cam_to_world[0].double()
    offsets = cam_to_world[:, :3, 3] - center.double()
    torch.testing.assert_close(offsets.norm(dim=-1), center.double().norm().expand(8), rtol=1e-5, atol=1e-5)
    heights = offsets @ up.double()
    torch.testing.assert_close(heights, heights[:1].expand(8), rtol=0, atol=1e-5)  # one circle about `up`
    aim = -offsets / offsets.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(cam_to_world[:, :3, 2], aim, rtol=0, atol=1e-5)  # every frame looks at the centre


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"focal": 2.0}, "--focal and --origin-distance describe an --image"),
        ({"sequence_index": 2}, "--sequence-index 2: the test split has 2 sequences"),
        ({"image": "square.png"}, "--focal: an --image needs its positive focal length in NDC units, got None"),
        ({"image": "wide.png", "focal": 2.5}, "wide.png: must be square .* got 24x20"),
        ({"image": "missing.png", "focal": 2.5}, "missing.png: cannot read it as an image"),
    ],
)
def test_sample_options_name_the_flag_at_fault(hydrants: Path, tmp_path: Path, options: dict, message: str) -> None:
    Image.new("RGB", (24, 24)).save(tmp_path / "square.png")
    Image.new("RGB", (24, 20)).save(tmp_path / "wide.png")
    if "image" in options:
        options = {**options, "image": tmp_path / options["image"]}
    experiment = tiny_experiment(hydrants)
    with pytest.raises(ValueError, match=message):
        APP.sample_input(SampleOptions(**options), experiment, hydrants, build_teacher(experiment, SIDE))
