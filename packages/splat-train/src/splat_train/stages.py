"""The three stage runners, all on the one loop skeleton of `splat_train.loop`:

* `train_teacher` — the Splatter Image recipe: Adam (eps 1e-15), L2 on rendered views, optionally LPIPS from a given
  step (weight 0.01 in the official fine-tuning run), EMA of the weights.
* `bootstrap` (stage 1) — t ~ U{0..T−1}; L = L_3DGS + [t ≥ t*] (L_image + L_cyc), single-step denoising of the noised
  teacher map; batch of objects × target views.
* `multistep` (stage 2) — t_start ~ U{t*+1..T−1}, the noised teacher map is denoised by DDIM (10 steps) *with gradients
  through every step* (per-step activation checkpointing), the rendering losses of the trajectory's x0 predictions
  are weighted by λ_t, plus L_cyc; no 3D loss.

Both student stages share one diffusion process (`DiffusionConfig`) and every stage renders on one background
colour: the runners take them as arguments (`diffusion=`, `background=`), so the stages cannot disagree about them.

A stage gets its data from a `BatchSource` (the app builds the batch of the items the loop picks; any number of
ranks). The losses draw t, t_start and every noise tensor per sample, from generators seeded with the batch's
per-sample seeds (one stream per draw, `splat_train.sharding`), so a sample's loss is the same on whichever rank and
in whichever batch it lands, and they mask terms (t < t*) instead of skipping them, so every parameter takes part in
every step (as DDP needs). Runs are deterministic on CPU and resume bit-for-bit.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor, nn

from splat_diffusion import (
    DEFAULT_WEIGHTING,
    Schedule,
    WeightingKind,
    ddim_timesteps,
    q_sample,
    sdedit_start,
    timestep_weights,
    unrolled_ddim,
)
from splat_render import Cameras, Gaussians, render

from .batch import BatchSource, ViewBatch
from .cycle import cycle_consistency_loss
from .loop import LoopConfig, LoopResult, LossOutput, ProgressCallback, run_loop
from .losses import gaussian_map_loss, l2, lpips_loss
from .sharding import STREAM_CYCLE_NOISE, STREAM_NOISE, STREAM_TIMESTEP, per_sample_normal, per_sample_timesteps
from .student import GaussianDenoiser, student_gaussians, teacher_targets
from .validation import Problem, at_least, positive

Background = tuple[float, float, float]  # RGB in [0, 1] behind every render of a run
LRDecay = Literal["constant", "cosine"]  # the learning rate over a stage: constant, or cosine from it to 0 at max_steps


def learning_rate_decay(
    optimizer: torch.optim.Optimizer, kind: LRDecay, max_steps: int, warmup_steps: int = 0
) -> Callable[[int], None]:
    """`before_step(step)` setting every group's learning rate for `step`: its initial one (constant) or that times
    ½(1 + cos(π step / max_steps)) (SGDR's cosine annealing without restarts), times min(1, (step + 1)/warmup_steps)
    during a linear warm-up (Goyal et al. 2017). A function of the step alone, so a resumed stage continues on the
    same curve."""
    if kind not in ("constant", "cosine"):
        raise ValueError(f"lr_decay must be 'constant' or 'cosine', got {kind!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    initial = [group["lr"] for group in optimizer.param_groups]

    def before_step(step: int) -> None:
        factor = 1.0 if kind == "constant" else 0.5 * (1 + math.cos(math.pi * min(step / max_steps, 1.0)))
        if warmup_steps:
            factor *= min(1.0, (step + 1) / warmup_steps)
        for group, lr in zip(optimizer.param_groups, initial, strict=True):
            group["lr"] = lr * factor

    return before_step


def batch_seeds(batch: ViewBatch) -> Int[Tensor, " batch"]:
    """The batch's per-sample seeds (set by the loop on every batch it draws from a `BatchSource`)."""
    if batch.seeds is None:
        raise ValueError("the stage losses need per-sample seeds (ViewBatch.seeds); draw batches through run_loop")
    return batch.seeds


@dataclass(frozen=True)
class DiffusionConfig:
    """The diffusion process of the student (paper: T = 100, t* = 20, 10 DDIM steps)."""

    schedule: Literal["linear", "cosine"] = "linear"
    num_train_steps: int = 100  # T
    t_star: int = 20  # image losses only for t >= t*; stage 2 starts above it
    ddim_steps: int = 10  # DDIM steps of the multi-step stage and of sampling
    prediction: Literal["x0", "v", "skip"] = "x0"  # the student's output: n̂₀, v, or n̂₀ with EDM's skip from n_t
    skip_sigma: float = 0.1  # σ_d of the "skip" output (splat_train.student)

    def problems(self) -> list[Problem]:
        found = at_least(self, {"num_train_steps": 2, "ddim_steps": 1}) + positive(self, ["skip_sigma"])
        if not 0 <= self.t_star < self.num_train_steps - 1:
            found.append(("t_star", f"must be in 0..{self.num_train_steps - 2} (T = {self.num_train_steps} steps)"))
        elif self.ddim_steps > self.t_star + 1:
            found.append(("ddim_steps", f"must be <= t_star + 1 = {self.t_star + 1} (stage 2 starts above t*)"))
        return found

    def make_schedule(self) -> Schedule:
        if self.schedule == "linear":
            return Schedule.linear(self.num_train_steps)
        if self.schedule == "cosine":
            return Schedule.cosine(self.num_train_steps)
        raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")


@dataclass(frozen=True)
class TeacherStageConfig:
    loop: LoopConfig = LoopConfig(max_steps=800_000, checkpoint_every=1000)
    learning_rate: float = 5e-5  # Splatter Image's released models (code value; the paper appendix says 2e-4)
    adam_eps: float = 1e-15  # Splatter Image's Adam epsilon
    lpips_weight: float = 0.01  # weight of LPIPS once enabled: loss = (1 − w) L2 + w LPIPS
    lpips_start_step: int | None = None  # enable LPIPS from this step on (None: never; needs the VGG16 weights)
    lr_decay: LRDecay = "constant"
    warmup_steps: int = 0  # linear learning-rate warm-up over the stage's first steps (0: none)

    def problems(self) -> list[Problem]:
        found = positive(self, ["learning_rate", "adam_eps"]) + at_least(self, {"warmup_steps": 0})
        found += at_least(self, {"lpips_start_step": 0})
        if not 0 <= self.lpips_weight <= 1:
            found.append(("lpips_weight", "must be in [0, 1] (loss = (1 - w) L2 + w LPIPS)"))
        return found


@dataclass(frozen=True)
class BootstrapConfig:
    loop: LoopConfig = LoopConfig(max_steps=100_000, checkpoint_every=1000)
    learning_rate: float = 1e-4
    map_weight: float = 1.0  # L_3DGS
    image_weight: float = 1.0  # L_image, for samples with t >= t*
    cycle_weight: float = 1.0  # L_cyc, for samples with t >= t* (0 disables)
    lr_decay: LRDecay = "constant"
    warmup_steps: int = 0  # linear learning-rate warm-up over the stage's first steps (0: none)

    def problems(self) -> list[Problem]:
        weights = {"map_weight": 0, "image_weight": 0, "cycle_weight": 0, "warmup_steps": 0}
        return positive(self, ["learning_rate"]) + at_least(self, weights)


@dataclass(frozen=True)
class MultistepConfig:
    loop: LoopConfig = LoopConfig(max_steps=20_000, checkpoint_every=500)
    learning_rate: float = 2e-5
    weighting: WeightingKind = DEFAULT_WEIGHTING  # λ_t of the per-step rendering losses (see splat_diffusion.weighting)
    render_steps: Literal["all", "final"] = "all"  # render every step's x0 prediction, or only the final sample
    cycle_weight: float = 1.0
    map_weight: float = 0.0  # L_3DGS of the first step's x̂₀ vs the teacher map (0: the paper's stage 2, no 3D loss)
    checkpoint_steps: bool = True  # activation checkpointing per DDIM step (same values and gradients, less memory)
    lr_decay: LRDecay = "constant"
    warmup_steps: int = 0  # linear learning-rate warm-up over the stage's first steps (0: none)
    t_start_max: int | None = None  # training starts t_start ~ U{t* + 1, ..., t_start_max} (None: T − 1)

    def problems(self) -> list[Problem]:
        return positive(self, ["learning_rate"]) + at_least(
            self, {"cycle_weight": 0, "map_weight": 0, "warmup_steps": 0}
        )


def background_tensor(background: Background, like: Tensor) -> Tensor:
    return torch.tensor(background, dtype=like.dtype, device=like.device)


def rendering_loss(gaussians: Gaussians, batch: ViewBatch, background: Tensor) -> Tensor:
    """Mean over target views of the per-view L2 between renders and ground truth, per object."""
    rendered = render(gaussians, batch.target_cameras, background=background).rgb
    return l2(rendered, batch.target_images).mean(dim=1)


def _repeat_batch(batch: ViewBatch, times: int) -> ViewBatch:
    """The batch repeated `times` times along the batch dimension (copy i of object b at index i * batch + b)."""
    if times == 1:
        return batch
    return ViewBatch(
        source_images=batch.source_images.repeat(times, 1, 1, 1),
        source_cameras=Cameras.cat([batch.source_cameras] * times, along="batch"),
        target_images=batch.target_images.repeat(times, 1, 1, 1, 1),
        target_cameras=Cameras.cat([batch.target_cameras] * times, along="batch"),
        teacher_inputs={k: torch.cat([v] * times) for k, v in batch.teacher_inputs.items()},
        target_teacher_inputs={k: torch.cat([v] * times) for k, v in batch.target_teacher_inputs.items()},
        seeds=None if batch.seeds is None else batch.seeds.repeat(times),
    )


def _frozen(teacher: nn.Module) -> nn.Module:
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def train_teacher(
    teacher: nn.Module,
    batches: BatchSource,
    config: TeacherStageConfig,
    run_dir,
    *,
    background: Background,
    lpips_model: nn.Module | None = None,
    progress: ProgressCallback | None = None,
) -> LoopResult:
    """Train a teacher on rendered target views (Splatter Image recipe)."""
    if config.lpips_start_step is not None and lpips_model is None:
        raise ValueError("lpips_start_step is set but no lpips_model was given (see splat_train.load_lpips)")
    optimizer = torch.optim.Adam(teacher.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    step_counter = {"step": 0}
    decay = learning_rate_decay(optimizer, config.lr_decay, config.loop.max_steps, config.warmup_steps)

    def before_step(step: int) -> None:
        step_counter["step"] = step
        decay(step)

    def compute_loss(batch: ViewBatch) -> LossOutput:
        output = teacher(batch.source_images, batch.source_cameras, **batch.teacher_inputs)
        rendered = render(
            output.gaussians, batch.target_cameras, background=background_tensor(background, batch.source_images)
        )
        mse = l2(rendered.rgb, batch.target_images).mean()
        terms = {"l2": float(mse.detach())}
        loss = mse
        if config.lpips_start_step is not None and step_counter["step"] >= config.lpips_start_step:
            perceptual = lpips_loss(lpips_model, rendered.rgb, batch.target_images).mean()
            loss = (1 - config.lpips_weight) * mse + config.lpips_weight * perceptual
            terms["lpips"] = float(perceptual.detach())
        return LossOutput(loss, terms)

    return run_loop(
        stage="teacher",
        model=teacher,
        optimizer=optimizer,
        batches=batches,
        compute_loss=compute_loss,
        config=config.loop,
        run_dir=run_dir,
        stage_config=config,
        before_step=before_step,
        progress=progress,
    )


def bootstrap_loss(
    student: GaussianDenoiser,
    teacher: nn.Module,
    schedule: Schedule,
    batch: ViewBatch,
    config: BootstrapConfig,
    *,
    t_star: int,
    background: Background,
) -> LossOutput:
    """Stage 1 (paper eq. L_bootstrap): single-step denoising of the noised teacher map from a random t.

    The image and cycle terms of samples with t < t* are multiplied by 0, not skipped: every parameter takes part
    in every step whichever t a rank draws (DDP without unused parameters)."""
    seeds = batch_seeds(batch)
    clean = teacher_targets(teacher, student, batch.source_images, batch.source_cameras, **batch.teacher_inputs)
    t = per_sample_timesteps(schedule, seeds, STREAM_TIMESTEP).to(clean.device)
    noisy = q_sample(schedule, clean, t, per_sample_normal(seeds, STREAM_NOISE, clean))
    predicted = student(noisy, t, batch.source_images)
    map_loss = gaussian_map_loss(predicted, clean)
    supervised = (t >= t_star).to(clean.dtype)
    gaussians = student_gaussians(teacher, student, predicted, batch.source_cameras, **batch.teacher_inputs)
    colour = background_tensor(background, clean)
    image_loss = rendering_loss(gaussians, batch, colour)
    total = config.map_weight * map_loss + config.image_weight * supervised * image_loss
    terms = {"map": float(map_loss.mean().detach()), "image": float(image_loss.mean().detach())}
    if config.cycle_weight > 0:
        cycle = cycle_consistency_loss(
            student,
            teacher,
            schedule,
            batch,
            gaussians,
            t,
            per_sample_normal(seeds, STREAM_CYCLE_NOISE, clean),
            view=batch.num_views - 1,
            background=colour,
        )
        total = total + config.cycle_weight * supervised * cycle
        terms["cycle"] = float(cycle.mean().detach())
    return LossOutput(total.mean(), terms)


def bootstrap(
    student: GaussianDenoiser,
    teacher: nn.Module,
    batches: BatchSource,
    config: BootstrapConfig,
    run_dir,
    *,
    diffusion: DiffusionConfig,
    background: Background,
    progress: ProgressCallback | None = None,
) -> LoopResult:
    """Stage 1: train the student from the teacher (3D loss) and the images (rendering and cycle losses)."""
    teacher = _frozen(teacher)
    schedule = diffusion.make_schedule().to(next(student.parameters()).device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.learning_rate)
    return run_loop(
        stage="bootstrap",
        model=student,
        optimizer=optimizer,
        batches=batches,
        compute_loss=lambda batch: bootstrap_loss(
            student, teacher, schedule, batch, config, t_star=diffusion.t_star, background=background
        ),
        config=config.loop,
        run_dir=run_dir,
        stage_config={"stage": config, "diffusion": diffusion, "background": background},
        before_step=learning_rate_decay(optimizer, config.lr_decay, config.loop.max_steps, config.warmup_steps),
        progress=progress,
    )


def multistep_loss(
    student: GaussianDenoiser,
    teacher: nn.Module,
    schedule: Schedule,
    batch: ViewBatch,
    config: MultistepConfig,
    *,
    diffusion: DiffusionConfig,
    background: Background,
) -> LossOutput:
    """Stage 2 (paper eq. L_mlt-stp + L_cyc): DDIM from the noised teacher map with gradients through all steps;
    with `map_weight` > 0 also stage 1's L_3DGS on the first step's x̂₀ (the ablation that keeps the diffusion loss)."""
    seeds = batch_seeds(batch)
    clean = teacher_targets(teacher, student, batch.source_images, batch.source_cameras, **batch.teacher_inputs)
    low, high = diffusion.t_star + 1, config.t_start_max
    t_start = per_sample_timesteps(schedule, seeds, STREAM_TIMESTEP, low=low, high=high).to(clean.device)
    timesteps = ddim_timesteps(schedule, diffusion.ddim_steps, t_start)  # [steps batch]
    start = sdedit_start(schedule, clean, t_start, per_sample_normal(seeds, STREAM_NOISE, clean))
    trajectory = unrolled_ddim(
        student.denoiser(batch.source_images), start, timesteps, schedule, checkpoint=config.checkpoint_steps
    )
    colour = background_tensor(background, clean)
    steps = list(range(trajectory.num_steps)) if config.render_steps == "all" else [trajectory.num_steps - 1]
    weights = timestep_weights(schedule, timesteps[steps], config.weighting, dtype=clean.dtype)  # [S batch]
    # all steps' x0 predictions rendered in one call (the steps become extra scenes of the batch)
    per_step = _repeat_batch(batch, len(steps))
    gaussians = student_gaussians(
        teacher, student, trajectory.x0_hats[steps].flatten(0, 1), per_step.source_cameras, **per_step.teacher_inputs
    )
    per_step = rendering_loss(gaussians, per_step, colour).unflatten(0, (len(steps), batch.batch_size))
    image_loss = (weights * per_step).sum(0) / weights.sum(0)
    total = image_loss
    terms = {"image": float(image_loss.mean().detach()), "final_image": float(per_step[-1].mean().detach())}
    if config.map_weight > 0:  # the paper's ablation "retaining the diffusion loss in stage 2" (23.13 vs 24.49)
        map_loss = gaussian_map_loss(trajectory.x0_hats[0], clean)
        total = total + config.map_weight * map_loss
        terms["map"] = float(map_loss.mean().detach())
    if config.cycle_weight > 0:
        final = student_gaussians(teacher, student, trajectory.sample, batch.source_cameras, **batch.teacher_inputs)
        cycle = cycle_consistency_loss(
            student,
            teacher,
            schedule,
            batch,
            final,
            t_start,
            per_sample_normal(seeds, STREAM_CYCLE_NOISE, clean),
            view=batch.num_views - 1,
            background=colour,
        )
        total = total + config.cycle_weight * cycle
        terms["cycle"] = float(cycle.mean().detach())
    return LossOutput(total.mean(), terms)


def multistep(
    student: GaussianDenoiser,
    teacher: nn.Module,
    batches: BatchSource,
    config: MultistepConfig,
    run_dir,
    *,
    diffusion: DiffusionConfig,
    background: Background,
    progress: ProgressCallback | None = None,
) -> LoopResult:
    """Stage 2: multi-step denoising fine-tuning with rendering losses only (no 3D loss)."""
    teacher = _frozen(teacher)
    schedule = diffusion.make_schedule().to(next(student.parameters()).device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.learning_rate)
    return run_loop(
        stage="multistep",
        model=student,
        optimizer=optimizer,
        batches=batches,
        compute_loss=lambda batch: multistep_loss(
            student, teacher, schedule, batch, config, diffusion=diffusion, background=background
        ),
        config=config.loop,
        run_dir=run_dir,
        stage_config={"stage": config, "diffusion": diffusion, "background": background},
        before_step=learning_rate_decay(optimizer, config.lr_decay, config.loop.max_steps, config.warmup_steps),
        progress=progress,
    )
