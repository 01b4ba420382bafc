"""A fourth app written against the contract alone: spheroids of random colour seen from an orbit, in memory."""

import math
from dataclasses import dataclass

import torch

from splat_apps import Column, EvalBatch, EvalOptions, Experiment, SampleInput, StaticProtocol, TableSpec
from splat_apps.synthetic import raycast
from splat_apps.views import collate, make_example, sample_view_indices
from splat_render import intrinsics, look_at, rigid_inverse
from splat_teachers import SplatterImage, UNetConfig, splatter_image_preset
from splat_train import BootstrapConfig, LoopConfig, MultistepConfig, SeededExamples, TeacherStageConfig

SIZE, VIEWS, SPLITS = 32, 6, ("train", "test")
UNET = UNetConfig(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), noise_embedding=True)


@dataclass(frozen=True)
class ToyData:
    objects: int = 3  # per split, generated in memory


@dataclass(frozen=True)
class ToyModel:
    student_unet: UNetConfig = UNET


@dataclass(frozen=True)
class ToyExperiment(Experiment):
    data: ToyData = ToyData()
    model: ToyModel = ToyModel()
    eval: EvalOptions = EvalOptions(num_samples=2, lpips=False, grid_views=2)


def _toy() -> ToyExperiment:
    loop = LoopConfig(max_steps=2, log_every=1, ema_start=0)
    stages = {"bootstrap": BootstrapConfig(loop=loop), "multistep": MultistepConfig(loop=loop, cycle_weight=0.0)}
    return ToyExperiment(preset="toy", normalizer_batches=1, teacher=TeacherStageConfig(loop=loop), **stages)


def toy_object(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, camera-to-world poses and K of one spheroid on an orbit at distance 1.3 (the scene content)."""
    g = torch.Generator().manual_seed(seed)
    colour, sizes = torch.rand(3, generator=g), 0.2 + 0.2 * torch.rand(1, 3, generator=g)
    shape = raycast.Primitives(torch.tensor([raycast.ELLIPSOID]), torch.zeros(1, 3), torch.eye(3)[None], sizes)
    scene = raycast.Scene(shape, lambda hits, points: colour.expand_as(points))
    angles = torch.linspace(0, 2 * math.pi, VIEWS + 1, dtype=torch.float64)[:-1]
    eye = 1.3 * torch.stack([angles.cos(), angles.sin(), torch.full_like(angles, 0.3)], dim=-1)
    c2w = look_at(eye, torch.zeros_like(eye), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand_as(eye))
    K = intrinsics(SIZE * 1.1, SIZE * 1.1, SIZE / 2, SIZE / 2).expand(VIEWS, 3, 3).clone()
    return raycast.render_scene(scene, c2w, K, SIZE, SIZE, supersampling=2).rgb, c2w.float(), K


@dataclass(frozen=True)
class SampleOptions:
    index: int = 0  # which test object


class ToyApp:
    name, title, default_preset, aliases, animation = "toy", "Toy", "toy", {}, "turntables"
    experiment_type, presets, sample_options = ToyExperiment, {"toy": _toy}, SampleOptions

    def data(self, experiment: ToyExperiment) -> dict:
        return {s: [toy_object(i + 100 * k) for i in range(experiment.data.objects)] for k, s in enumerate(SPLITS)}

    def example(self, item, name: str, input_view: int, targets: list[int]):
        images, c2w, K = item
        w2c = rigid_inverse(c2w.double())
        return make_example(name, images, w2c, K, input_view, targets, near=0.2, far=10.0, cam_to_world=c2w)

    def training_data(self, experiment: ToyExperiment, data: dict):
        def example(index: int, generator: torch.Generator):
            return self.example(data["train"][index], f"{index}", *sample_view_indices(VIEWS, 3, generator))

        return SeededExamples(len(data["train"]), 2, example, collate), "toy spheroids"

    def teacher(self, experiment: ToyExperiment, data: dict) -> SplatterImage:
        return SplatterImage(splatter_image_preset("tiny"))

    def protocol(self, experiment: ToyExperiment, data: dict) -> StaticProtocol:
        def batches():
            for index, item in enumerate(data["test"]):
                example = self.example(item, f"object {index}", 0, list(range(1, VIEWS)))
                yield EvalBatch(collate([example]), (example.item,), ("novel",) * (VIEWS - 1), seed=index)

        table = TableSpec("toy spheroids", (Column("novel", "psnr", "PSNR ↑"), Column("novel", "ssim", "SSIM ↑", 3)))
        return StaticProtocol(f"{len(data['test'])} toy objects", len(data["test"]), batches, table, input_slot=None)

    def sample_input(self, options: SampleOptions, experiment, data: dict, teacher) -> SampleInput:
        batch = collate([self.example(data["test"][options.index], "x", 0, list(range(VIEWS)))])
        return SampleInput(f"object_{options.index}", batch, lambda gaussians, frames: batch.target_cameras)


APP = ToyApp()
