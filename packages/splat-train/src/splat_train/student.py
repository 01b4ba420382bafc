"""The diffusion student D_θ(s_t, t, x_src) of "A Lesson in Splats" and how to sample from it.

* The data of the diffusion model is the teacher's raw Gaussian map s (its layout is the teacher's `map_spec`), in a
  normalized space: n = (s − μ) / σ per channel, with μ, σ measured from teacher predictions over training data
  (`fit_map_normalizer`) and stored in the student's checkpoint (buffers of `MapNormalizer`).
* The student is a SongUNet with the noise-level embedding on; its input is the source image (in [−1, 1], zero-padded
  to the map's grid when the map is padded, as Flash3D's is) concatenated with the noisy normalized map n_t, and it
  predicts the clean normalized map n̂₀ (x0 parameterization, the paper's ℓ_3DGS = ||s₀ − D_θ(s_t, t, x_src)||²),
  or v = √ᾱ ε − √(1−ᾱ) n₀ (Salimans & Ho 2022, diffusers' `v_prediction`), from which n̂₀ = √ᾱ n_t − √(1−ᾱ) v̂:
  at low noise the prediction is the noised teacher map plus a learned correction (a skip connection, as EDM's
  preconditioning has), at high noise the network's own output. "v" is EDM's preconditioning for data of spread
  σ_data = 1, the spread of the *marginal* normalized map; but the map is a function of the image, so what the image
  leaves open is far smaller. "skip" uses EDM's skip weight for a given conditional spread σ_d (`skip_sigma`):
  n̂₀ = c n_t/√ᾱ + (1 − c) F, c = σ_d² / (σ_t² + σ_d²), σ_t² = (1 − ᾱ)/ᾱ (Karras et al. 2022, eq. 7), the posterior
  mean of n₀ when F is the network's estimate of n₀ from the image with error σ_d and n_t/√ᾱ = n₀ + σ_t ε: the noised
  map is kept only where its noise is below what the image alone cannot tell.
* Its prediction becomes Gaussians through the teacher's own head (`teacher.gaussians_from_map`), so student and
  teacher share one map → Gaussians function.
* Inference (`sample`): teacher prediction → normalized → noised to t_start (SDEdit) → DDIM to t = 0 → Gaussians.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from splat_diffusion import Schedule, ddim_timesteps, sdedit_start, unrolled_ddim
from splat_render import Cameras, Gaussians
from splat_teachers import GaussianMapNetwork, GaussianMapSpec, UNetConfig


@dataclass(frozen=True)
class StudentConfig:
    """The student network. `unet.in_channels` must be 3 + map channels and `unet.out_channels` the map channels."""

    unet: UNetConfig
    num_train_steps: int = 100  # T of the diffusion schedule (the noise label is t * 1000 / T, EDM's VP scale)
    std_floor: float = 1e-3  # per-channel σ of the normalizer is at least this (channels the teacher never varies)
    prediction: Literal["x0", "v", "skip"] = "x0"  # the network's output (module docstring); "v", "skip" use ᾱ_t
    schedule: Literal["linear", "cosine"] = "linear"  # the diffusion schedule whose ᾱ_t the "v" and "skip" outputs use
    skip_sigma: float = 0.1  # σ_d of the "skip" output: the normalized map's spread around its estimate from the image


class MapNormalizer(nn.Module):
    """Per-channel affine normalization of Gaussian maps: n = (s − mean) / std (buffers, saved with the student)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def normalize(
        self, gaussian_map: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels height width"]:
        return (gaussian_map - self.mean[:, None, None]) / self.std[:, None, None]

    def denormalize(
        self, normalized: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels height width"]:
        return normalized * self.std[:, None, None] + self.mean[:, None, None]


def map_statistics(
    maps: Iterable[Float[Tensor, "batch channels height width"]], std_floor: float = 1e-3
) -> tuple[Float[Tensor, " channels"], Float[Tensor, " channels"]]:
    """Per-channel mean and standard deviation (floored at `std_floor`) over every pixel of every map, in float64."""
    count, total, total_sq = 0, None, None
    for gaussian_map in maps:
        values = gaussian_map.detach().to(torch.float64).transpose(0, 1).flatten(1)  # [channels pixels]
        total = values.sum(1) if total is None else total + values.sum(1)
        total_sq = (values * values).sum(1) if total_sq is None else total_sq + (values * values).sum(1)
        count += values.shape[1]
    if total is None or count < 2:
        raise ValueError("map_statistics needs at least one map with two or more pixels")
    mean = total / count
    variance = (total_sq / count - mean * mean).clamp_min(0) * count / (count - 1)
    return mean.float(), variance.sqrt().clamp_min(std_floor).float()


class GaussianDenoiser(nn.Module):
    """D_θ(n_t, t, x_src) → n̂₀ in the normalized map space (see the module docstring for the two outputs)."""

    def __init__(
        self, config: StudentConfig, map_spec: GaussianMapSpec, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        unet = config.unet
        if unet.in_channels != 3 + map_spec.channels or unet.out_channels != map_spec.channels:
            raise ValueError(
                f"student U-Net must take 3 + {map_spec.channels} channels and give {map_spec.channels} "
                f"(the teacher's map), got in={unet.in_channels}, out={unet.out_channels}"
            )
        if not unet.noise_embedding:
            raise ValueError("the student U-Net needs noise_embedding=True (it is conditioned on t)")
        self.config = config
        self.map_spec = map_spec
        self.network = GaussianMapNetwork(unet, generator=generator)
        self.normalizer = MapNormalizer(map_spec.channels)
        if config.prediction not in ("x0", "v", "skip"):
            raise ValueError(f"prediction must be 'x0', 'v' or 'skip', got {config.prediction!r}")
        if config.prediction == "skip" and not config.skip_sigma > 0:
            raise ValueError(f"skip_sigma must be > 0, got {config.skip_sigma}")
        alpha_bar = getattr(Schedule, config.schedule)(config.num_train_steps).alphas_cumprod.float()
        self.register_buffer("alpha_bar", alpha_bar, persistent=False)  # derived from the config, not saved

    def set_normalizer(self, mean: Float[Tensor, " channels"], std: Float[Tensor, " channels"]) -> None:
        with torch.no_grad():
            self.normalizer.mean.copy_(mean)
            self.normalizer.std.copy_(std)

    def condition(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch 3 map_height map_width"]:
        """Source images in [−1, 1] on the map's (padded) pixel grid."""
        spec = self.map_spec
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (spec.image_height, spec.image_width):
            raise ValueError(
                f"images must be [batch 3 {spec.image_height} {spec.image_width}] for this map, "
                f"got {list(images.shape)}"
            )
        scaled = images * 2 - 1
        if spec.padding:
            scaled = nn.functional.pad(scaled, (spec.padding,) * 4)
        return scaled

    def forward(
        self,
        x_t: Float[Tensor, "batch channels height width"],
        t: Int[Tensor, " batch"],
        images: Float[Tensor, "batch 3 image_height image_width"],
    ) -> Float[Tensor, "batch channels height width"]:
        self.map_spec.check(x_t)
        noise_labels = t.to(x_t.dtype) * (1000.0 / self.config.num_train_steps)
        output = self.network(torch.cat([self.condition(images).to(x_t.dtype), x_t], dim=1), noise_labels)
        if self.config.prediction == "x0":
            return output
        alpha_bar = self.alpha_bar[t].to(x_t.dtype)[:, None, None, None]
        if self.config.prediction == "v":
            return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * output
        skip = self.config.skip_sigma**2 / ((1 - alpha_bar) / alpha_bar + self.config.skip_sigma**2)
        return skip * x_t / alpha_bar.sqrt() + (1 - skip) * output

    def denoiser(self, images: Float[Tensor, "batch 3 image_height image_width"]):
        """The `denoise(x_t, t) -> x0_hat` callable of splat-diffusion for these conditioning images."""

        def denoise(x_t: Tensor, t: Tensor) -> Tensor:
            return self(x_t, t, images)

        return denoise


def teacher_targets(teacher: nn.Module, student: nn.Module, images: Tensor, cameras: Cameras, **inputs) -> Tensor:
    """The teacher's map for `images`, normalized: the clean sample n₀ of the diffusion model (no gradients)."""
    with torch.no_grad():
        return student.normalizer.normalize(teacher(images, cameras, **inputs).gaussian_map)


def student_gaussians(
    teacher: nn.Module, student: nn.Module, normalized: Tensor, cameras: Cameras, **inputs
) -> Gaussians:
    """Gaussians of a normalized map through the teacher's head (differentiable w.r.t. the map)."""
    return teacher.gaussians_from_map(student.normalizer.denormalize(normalized), cameras, **inputs)


def sample(
    student: GaussianDenoiser,
    teacher: nn.Module,
    schedule: Schedule,
    images: Float[Tensor, "batch 3 height width"],
    cameras: Cameras,
    *,
    num_samples: int = 1,
    t_start: int = 30,
    steps: int = 10,
    generator: torch.Generator | None = None,
    **teacher_inputs: Tensor,
) -> list[Gaussians]:
    """`num_samples` student samples per image: teacher → noised to `t_start` → `steps` DDIM steps → Gaussians.

    Samples differ only through the starting noise, drawn from `generator` (CPU) — different seeds, different samples.
    Runs without gradients. Returns one `Gaussians` batch per sample.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    timesteps = ddim_timesteps(schedule, steps, t_start)
    results = []
    with torch.no_grad():
        clean = teacher_targets(teacher, student, images, cameras, **teacher_inputs)
        for _ in range(num_samples):
            noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype).to(clean.device)
            start = sdedit_start(schedule, clean, t_start, noise)
            trajectory = unrolled_ddim(student.denoiser(images), start, timesteps, schedule, checkpoint=False)
            results.append(student_gaussians(teacher, student, trajectory.sample, cameras, **teacher_inputs))
    return results
