"""DDIM (Song et al. 2021): the timestep grid, one step (eq. 12), and the unrolled, differentiable sampler.

The sampler is a plain function of a denoiser `denoise(x_t, t) -> x0_hat` (k-diffusion's contract, with x0 instead of
sigma-space D(x; sigma)); it carries no `no_grad`, so the caller owns grad mode. Under grad, `unrolled_ddim` keeps the
graph of every step, which is the paper's multi-step training: the rendering losses of the final (and intermediate) x0
predictions back-propagate through all DDIM steps into the denoiser's parameters.
"""

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from jaxtyping import Float, Int
from torch import Tensor

from ._per_sample import append_dims, check_same_shape, check_sample, per_sample_timesteps
from .noising import Timestep
from .parameterization import Denoiser
from .schedule import Schedule, check_timesteps, work_dtype


def ddim_timesteps(
    schedule: Schedule, num_steps: int = 10, t_start: int | Int[Tensor, " batch"] | None = None
) -> Int[Tensor, " steps"] | Int[Tensor, "steps batch"]:
    """`num_steps` evenly spaced timesteps, descending, from `t_start` (default T - 1) down to t_start / num_steps:

        t_i = round(t_start * (num_steps - i) / num_steps),  i = 0 .. num_steps - 1   (computed in float64)

    so the grid starts exactly at t_start and ends above 0 (the last DDIM step then goes from t_{S-1} to the clean
    sample, t_prev = -1). Needs 1 <= num_steps <= t_start, which makes the rounded values strictly decreasing.
    Paper: T = 100, 10 steps; t_start = 99 gives [99, 89, 79, 69, 59, 50, 40, 30, 20, 10].
    A `[batch]` tensor of start times gives one grid per sample, shape `[steps batch]`.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    t_start = schedule.num_train_steps - 1 if t_start is None else t_start
    if isinstance(t_start, Tensor) and t_start.ndim > 1:
        raise ValueError(f"t_start must be an int or a [batch] tensor, got shape {list(t_start.shape)}")
    start = check_timesteps(schedule, t_start, "t_start", low=1)
    if int(start.min()) < num_steps:
        raise ValueError(
            f"num_steps must be <= t_start so that the timesteps are distinct, got num_steps={num_steps} "
            f"and t_start={int(start.min())}"
        )
    fraction = torch.arange(num_steps, 0, -1, dtype=work_dtype(start.device), device=start.device) / num_steps
    fraction = fraction.reshape((num_steps,) + (1,) * start.ndim)
    return torch.round(start.to(fraction.dtype) * fraction).to(torch.int64)


def ddim_step(
    schedule: Schedule,
    x_t: Float[Tensor, " batch *dims"],
    t: Timestep,
    t_prev: Timestep,
    x0_hat: Float[Tensor, " batch *dims"],
    eta: float = 0.0,
    noise: Float[Tensor, " batch *dims"] | None = None,
) -> Float[Tensor, " batch *dims"]:
    """One DDIM update x_t -> x_{t_prev} given the denoiser's x0_hat (Song et al. 2021, eq. 12):

        eps_hat   = (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t)
        sigma     = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)                      (eq. 16)
        x_{t_prev} = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_hat + sigma * noise

    with a = alpha_bar. `t_prev < 0` means a_prev = 1: the step returns x0_hat exactly. eta = 0 is deterministic
    DDIM; eta = 1 with t_prev = t - 1 is the DDPM ancestral step. `noise` (standard normal, the caller's draw) is
    required when eta > 0. `t` and `t_prev` are ints or one value per sample; coefficients are float64, cast to x_t's
    dtype.
    """
    check_sample("x_t", x_t)
    check_same_shape("x0_hat", x0_hat, "x_t", x_t)
    if not (0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    if eta > 0.0:
        if noise is None:
            raise ValueError("noise is required when eta > 0 (draw it with torch.randn_like(x_t, generator=...))")
        check_same_shape("noise", noise, "x_t", x_t)
    t = per_sample_timesteps(schedule, t, x_t, "t")
    t_prev = per_sample_timesteps(schedule, t_prev, x_t, "t_prev", low=None)
    if bool((t_prev >= t).any()):
        raise ValueError(f"t_prev must be < t, got t={t.tolist()} and t_prev={t_prev.tolist()}")
    clean = t_prev < 0  # t_prev < 0: the clean sample, alpha_bar = 1

    a_t = schedule.alpha_bar(t)
    a_prev = torch.where(clean, 1.0, schedule.alpha_bar(t_prev.clamp(min=0)))
    sigma = eta * torch.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev))
    direction = torch.sqrt((1.0 - a_prev - sigma**2).clamp(min=0.0))
    # x_prev = c_x x_t + c_0 x0_hat (+ sigma noise): eq. 12 with eps_hat substituted, coefficients in float64.
    c_x = direction / torch.sqrt(1.0 - a_t)
    c_0 = torch.sqrt(a_prev) - c_x * torch.sqrt(a_t)
    x_prev = append_dims(c_x, x_t) * x_t + append_dims(c_0, x_t) * x0_hat
    if eta > 0.0:
        x_prev = x_prev + append_dims(sigma, x_t) * noise
    return x_prev


@dataclass(frozen=True, eq=False)
class Trajectory:
    """What `unrolled_ddim` computed: the denoiser's prediction at every step and every iterate.

    `x0_hats[i]` is denoise(xs[i], timesteps[i]); `xs[0]` is the start and `xs[i + 1]` the DDIM update of step i; the
    last update goes to the clean sample (t_prev = -1), so `xs[-1]` equals `x0_hats[-1]`, the sample.
    """

    x0_hats: Float[Tensor, "steps batch *dims"]
    xs: Float[Tensor, "steps+1 batch *dims"]
    timesteps: Int[Tensor, " steps"] | Int[Tensor, "steps batch"]

    @property
    def sample(self) -> Float[Tensor, " batch *dims"]:
        """The result of sampling: the x0 prediction of the last step."""
        return self.x0_hats[-1]

    @property
    def num_steps(self) -> int:
        return self.x0_hats.shape[0]


def unrolled_ddim(
    denoise: Denoiser,
    x_start: Float[Tensor, " batch *dims"],
    timesteps: Int[Tensor, " steps"] | Int[Tensor, "steps batch"],
    schedule: Schedule,
    *,
    checkpoint: bool = True,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> Trajectory:
    """Run DDIM from `x_start` (at `timesteps[0]`) through every step down to the clean sample, keeping the autograd
    graph of all steps when grad is enabled (the paper's multi-step denoising training, stage 2).

    `timesteps` is strictly decreasing along steps, in [0, T - 1] (e.g. `ddim_timesteps(...)`), either shared
    `[steps]` or per sample `[steps batch]`; step i goes from timesteps[i] to timesteps[i + 1], the last to t = -1.
    `denoise` is called as denoise(x_t, t) with t an int64 `[batch]` tensor and must return x0_hat shaped like x_t.

    checkpoint: wrap each step (denoiser call + DDIM update) in `torch.utils.checkpoint.checkpoint(...,
        use_reentrant=False)`: the activations of a step are recomputed during backward instead of kept, so activation
        memory stays about one step's worth; values and gradients are the same as without it. Skipped under no_grad.
    eta: DDIM stochasticity (0: deterministic). The step noise is drawn from `generator` (None: torch's default
        generator) outside the checkpointed function, so the recomputation sees the same noise.
    """
    check_sample("x_start", x_start)
    batch = x_start.shape[0]
    if not isinstance(timesteps, Tensor) or timesteps.ndim not in (1, 2) or timesteps.shape[0] < 1:
        raise ValueError(f"timesteps must be a non-empty [steps] or [steps batch] tensor, got {timesteps!r}")
    if timesteps.ndim == 2 and timesteps.shape[1] != batch:
        raise ValueError(f"timesteps must be [steps] or [steps batch={batch}], got {list(timesteps.shape)}")
    timesteps = check_timesteps(schedule, timesteps, "timesteps").to(x_start.device)
    if timesteps.shape[0] > 1 and not bool((timesteps[1:] < timesteps[:-1]).all()):
        raise ValueError(f"timesteps must be strictly decreasing along steps, got {timesteps.tolist()}")
    if not (0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta}")

    def step(x: Tensor, t: Tensor, t_prev: Tensor, step_eta: float, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        x0_hat = denoise(x, t)
        if not isinstance(x0_hat, Tensor) or x0_hat.shape != x.shape:
            got = list(x0_hat.shape) if isinstance(x0_hat, Tensor) else type(x0_hat).__name__
            raise ValueError(f"denoise(x_t, t) must return x0_hat of shape {list(x.shape)}, got {got}")
        return x0_hat, ddim_step(schedule, x, t, t_prev, x0_hat, eta=step_eta, noise=noise)

    use_checkpoint = checkpoint and torch.is_grad_enabled()
    num_steps = timesteps.shape[0]
    x, xs, x0_hats = x_start, [x_start], []
    for i in range(num_steps):
        t = timesteps[i].expand(batch)
        t_prev = timesteps[i + 1].expand(batch) if i + 1 < num_steps else torch.full_like(t, -1)
        # The last step (to t = -1) has sigma = 0 whatever eta is: it needs no noise (and runs as eta = 0).
        noise = None
        if eta > 0.0 and i + 1 < num_steps:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        step_eta = eta if i + 1 < num_steps else 0.0
        if use_checkpoint:
            x0_hat, x = torch.utils.checkpoint.checkpoint(step, x, t, t_prev, step_eta, noise, use_reentrant=False)
        else:
            x0_hat, x = step(x, t, t_prev, step_eta, noise)
        x0_hats.append(x0_hat)
        xs.append(x)
    return Trajectory(x0_hats=torch.stack(x0_hats), xs=torch.stack(xs), timesteps=timesteps)
