"""The student network, its map normalizer, and sampling."""

import pytest
import torch
import train_fixtures as F

from splat_diffusion import Schedule
from splat_teachers import UNetConfig
from splat_train.student import GaussianDenoiser, MapNormalizer, StudentConfig, map_statistics, sample


def test_map_statistics_are_per_channel_mean_and_std_over_all_maps() -> None:
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 5, 4, 3, generator=g) * torch.arange(1, 6).view(1, 5, 1, 1) + 3 for _ in range(3)]
    mean, std = map_statistics(maps, std_floor=0.0)
    everything = torch.cat(maps).transpose(0, 1).flatten(1)
    torch.testing.assert_close(mean, everything.mean(1))
    torch.testing.assert_close(std, everything.std(1))
    constant = [torch.ones(1, 2, 3, 3)]
    assert torch.equal(map_statistics(constant, std_floor=1e-3)[1], torch.full((2,), 1e-3))


def test_normalizer_round_trips() -> None:
    normalizer = MapNormalizer(4)
    normalizer.mean.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    normalizer.std.copy_(torch.tensor([0.1, 2.0, 1.0, 5.0]))
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(x)), x)
    normalized = normalizer.normalize(x * normalizer.std[:, None, None] + normalizer.mean[:, None, None])
    torch.testing.assert_close(normalized, x)


def test_student_is_checked_against_the_teacher_map() -> None:
    teacher = F.tiny_teacher()
    with pytest.raises(ValueError, match="3 \\+ 24 channels"):
        GaussianDenoiser(
            StudentConfig(unet=UNetConfig(resolution=32, in_channels=24, noise_embedding=True)), teacher.map_spec
        )
    with pytest.raises(ValueError, match="noise_embedding=True"):
        GaussianDenoiser(StudentConfig(unet=UNetConfig(resolution=32, in_channels=27)), teacher.map_spec)
    student = F.tiny_student(teacher)
    with pytest.raises(ValueError, match="images must be"):
        student(torch.zeros(1, 24, 32, 32), torch.zeros(1, dtype=torch.long), torch.zeros(1, 3, 16, 16))


def test_student_prediction_depends_on_t_and_on_the_image() -> None:
    teacher = F.tiny_teacher()
    student = F.tiny_student(teacher).eval()
    # EDM initialises the noise-embedding affines and residual convs near zero: perturb every weight to O(1) first
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in student.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
    x = torch.randn(1, 24, 32, 32, generator=torch.Generator().manual_seed(0))
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = student(x, torch.tensor([5]), image)
        b = student(x, torch.tensor([80]), image)
        c = student(x, torch.tensor([5]), 1 - image)
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4


def test_samples_differ_between_seeds_and_repeat_for_the_same_seed() -> None:
    teacher = F.tiny_teacher().eval()
    student = F.tiny_student(teacher).eval()
    batch = F.batch([0])
    schedule = Schedule.linear(100)

    def draw(seed: int, n: int):
        return sample(
            student,
            teacher,
            schedule,
            batch.source_images,
            batch.source_cameras,
            num_samples=n,
            t_start=30,
            steps=5,
            generator=torch.Generator().manual_seed(seed),
        )

    first, second = draw(0, 2)
    assert (first.means - second.means).abs().max() > 1e-6
    again, _ = draw(0, 2)
    assert torch.equal(first.means, again.means)
    assert first.num_gaussians == 32 * 32 and first.batch_size == 1


def test_v_prediction_is_the_noised_map_plus_a_scaled_network_output() -> None:
    """n̂₀ = √ᾱ_t n_t − √(1−ᾱ_t) v̂: with the same weights, the x0 student's output is v̂."""
    teacher = F.tiny_teacher()
    x0_student = F.tiny_student(teacher).eval()
    v_student = GaussianDenoiser(
        StudentConfig(unet=x0_student.config.unet, prediction="v", schedule="cosine"), teacher.map_spec
    ).eval()
    v_student.load_state_dict(x0_student.state_dict())  # the schedule's ᾱ is not part of the weights
    x = torch.randn(2, 24, 32, 32, generator=torch.Generator().manual_seed(0))
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([3, 70])
    alpha_bar = Schedule.cosine(100).alphas_cumprod.float()[t][:, None, None, None]
    with torch.no_grad():
        v_hat = x0_student(x, t, image)
        expected = alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * v_hat
        torch.testing.assert_close(v_student(x, t, image), expected)


def test_skip_prediction_keeps_the_noised_map_where_its_noise_is_below_skip_sigma() -> None:
    """n̂₀ = c n_t/√ᾱ + (1 − c) F with c = σ_d²/(σ_t² + σ_d²): F is the x0 student's output, c → 1 as t → 0."""
    teacher = F.tiny_teacher()
    x0_student = F.tiny_student(teacher).eval()
    config = StudentConfig(unet=x0_student.config.unet, prediction="skip", skip_sigma=0.2)
    skip_student = GaussianDenoiser(config, teacher.map_spec).eval()
    skip_student.load_state_dict(x0_student.state_dict())
    x = torch.randn(3, 24, 32, 32, generator=torch.Generator().manual_seed(0))
    image = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 90])
    alpha_bar = Schedule.linear(100).alphas_cumprod.float()[t][:, None, None, None]
    skip = 0.04 / ((1 - alpha_bar) / alpha_bar + 0.04)
    with torch.no_grad():
        output = x0_student(x, t, image)
        predicted = skip_student(x, t, image)
    torch.testing.assert_close(predicted, skip * x / alpha_bar.sqrt() + (1 - skip) * output)
    assert skip[0].item() > 0.95 and skip[2].item() < 1e-3  # the noised map at t = 0, the network's own output at 90
