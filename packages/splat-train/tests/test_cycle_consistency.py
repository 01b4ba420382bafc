"""Cycle consistency: zero for a perfect multi-view-consistent oracle, and gradients through both passes."""

import torch
import train_fixtures as F
from torch import nn

from splat_diffusion import Schedule, q_sample
from splat_render import Gaussians, render
from splat_teachers.pixel_gaussians import quaternion_multiply, rotation_matrix_to_quaternion
from splat_teachers.protocol import TeacherOutput
from splat_train.cycle import cycle_consistency_loss
from splat_train.student import MapNormalizer, student_gaussians

FIELDS = (("means", 3), ("quats", 4), ("scales", 3), ("opacities", 1), ("sh", 3))


def _to_map(g: Gaussians) -> torch.Tensor:
    """Gaussian parameters as a [batch 14 1 N] 'map' (the oracle's layout)."""
    parts = [g.means, g.quats, g.scales, g.opacities[..., None], g.sh[:, :, 0]]
    return torch.cat(parts, -1).transpose(1, 2)[:, :, None]


class OracleTeacher(nn.Module):
    """A 'teacher' whose map stores Gaussian parameters directly; its head reads them back. Its own prediction
    (a map of zeros) only sets the shape: the oracle student ignores its noisy input."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, images, cameras, **inputs) -> TeacherOutput:
        gaussian_map = torch.zeros(images.shape[0], 14, 1, self.count, dtype=images.dtype)
        return TeacherOutput(gaussian_map=gaussian_map, gaussians=self.gaussians_from_map(gaussian_map, cameras))

    def gaussians_from_map(self, gaussian_map, cameras, **inputs) -> Gaussians:
        flat = gaussian_map[:, :, 0].transpose(1, 2)
        means, quats, scales, opacities, sh = flat.split([3, 4, 3, 1, 3], dim=-1)
        return Gaussians(means, quats, scales, opacities[..., 0], sh[:, :, None])


class OracleStudent(nn.Module):
    """Knows the true scene; given a conditioning image it recognises which known view rendered it and returns the
    scene expressed in that view's camera frame — a perfect, multi-view consistent predictor."""

    def __init__(self, scene: Gaussians, views: list[tuple[torch.Tensor, torch.Tensor]], consistent: bool = True):
        super().__init__()
        self.scene, self.views, self.consistent = scene, views, consistent
        self.normalizer = MapNormalizer(14).double()

    def forward(self, x_t, t, images):
        maps = []
        for image in images:
            errors = [float((image - known).abs().max()) for known, _ in self.views]
            _, world_to_cam = self.views[min(range(len(errors)), key=errors.__getitem__)]
            if not self.consistent:
                world_to_cam = torch.eye(4, dtype=world_to_cam.dtype)
            rotation, translation = world_to_cam[:3, :3], world_to_cam[:3, 3]
            q = rotation_matrix_to_quaternion(rotation).expand_as(self.scene.quats)
            moved = Gaussians(
                self.scene.means @ rotation.T + translation,
                quaternion_multiply(q, self.scene.quats),
                self.scene.scales,
                self.scene.opacities,
                self.scene.sh,
            )
            maps.append(_to_map(moved))
        return torch.cat(maps)


def _setup(consistent: bool = True):
    batch = F.batch([3], angles=(45.0,))
    batch = type(batch)(
        batch.source_images.double(),
        batch.source_cameras.to(torch.float64),
        batch.target_images.double(),
        batch.target_cameras.to(torch.float64),
    )
    scene = F.scene(3).to(torch.float64)
    views = [
        (batch.source_images[0], torch.eye(4, dtype=torch.float64)),
        (batch.target_images[0, 0], batch.target_cameras.world_to_cam[0, 0]),
    ]
    return batch, scene, OracleTeacher(scene.num_gaussians), OracleStudent(scene, views, consistent)


def test_cycle_loss_is_zero_for_a_perfect_multi_view_consistent_oracle() -> None:
    batch, scene, teacher, student = _setup()
    t = torch.tensor([50])
    noise = torch.zeros(1, 14, 1, scene.num_gaussians, dtype=torch.float64)
    # the oracle predicts the true scene from the source image, too
    assert (render(scene, batch.target_cameras, background=1.0).rgb - batch.target_images).abs().max() < 1e-6
    loss = cycle_consistency_loss(student, teacher, Schedule.linear(100), batch, scene, t, noise)
    assert float(loss) < 1e-12


def test_cycle_loss_is_positive_for_an_inconsistent_predictor() -> None:
    batch, scene, teacher, student = _setup(consistent=False)
    noise = torch.zeros(1, 14, 1, scene.num_gaussians, dtype=torch.float64)
    loss = cycle_consistency_loss(student, teacher, Schedule.linear(100), batch, scene, torch.tensor([50]), noise)
    assert float(loss) > 1e-3


def test_cycle_gradients_reach_the_student_through_both_passes() -> None:
    teacher = F.tiny_teacher().eval().requires_grad_(False)
    student = F.tiny_student(teacher)
    batch = F.batch([0], angles=(40.0,))
    schedule = Schedule.linear(100)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([60])
    noise_first, noise_second = (torch.randn(1, 24, 32, 32, generator=g) for _ in range(2))
    clean = student.normalizer.normalize(teacher(batch.source_images, batch.source_cameras).gaussian_map)
    first = student(q_sample(schedule, clean, t, noise_first), t, batch.source_images)

    def parameter_grads(prediction: torch.Tensor) -> list[torch.Tensor]:
        gaussians = student_gaussians(teacher, student, prediction, batch.source_cameras)
        loss = cycle_consistency_loss(student, teacher, schedule, batch, gaussians, t, noise_second).sum()
        return torch.autograd.grad(loss, list(student.parameters()), retain_graph=True, allow_unused=True)

    both = parameter_grads(first)
    second_only = parameter_grads(first.detach())
    assert all(grad is not None for grad in both)
    total = sum(float(g.abs().sum()) for g in both)
    assert total > 0
    difference = sum(float((a - b).abs().sum()) for a, b in zip(both, second_only, strict=True))
    assert difference > 1e-6 * total, "the first pass contributes no gradient through the rendered view"
    # and the prediction of the first pass receives gradient through the conditioning image of the second
    leaf = first.detach().requires_grad_()
    gaussians = student_gaussians(teacher, student, leaf, batch.source_cameras)
    cycle_consistency_loss(student, teacher, schedule, batch, gaussians, t, noise_second).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
