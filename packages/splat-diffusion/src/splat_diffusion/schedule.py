"""Discrete variance-preserving noise schedules (DDPM, Ho et al. 2020): `Schedule` and its two constructors.

Time index convention (the DDPM / diffusers one): `t` is an integer in `[0, num_train_steps - 1]` and

    alpha_bar(t) = prod_{s <= t} (1 - beta_s),      x_t = sqrt(alpha_bar(t)) x0 + sqrt(1 - alpha_bar(t)) eps,

so even `t = 0` carries a little noise (`beta_0`). "No noise at all" is written `t = -1`, which only the DDIM step
accepts (`t_prev < 0` means alpha_bar = 1, i.e. the clean sample). The accessors below accept `[0, T - 1]` only.

The master copies of `betas` and `alphas_cumprod` are float64; accessors gather them on the query tensor's device
and return float64 (float32 on MPS, which lacks float64) unless asked otherwise, and the functions that combine
them with data (`q_sample`, `ddim_step`, the parameterization conversions) cast the float64 coefficients to the
data's dtype at the last moment.
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Float64, Int
from torch import Tensor

# The reference DDPM linear schedule (Ho et al. 2020, section 4): 1000 steps, betas from 1e-4 to 0.02.
REFERENCE_LINEAR_STEPS = 1000
REFERENCE_BETA_START = 1e-4
REFERENCE_BETA_END = 0.02


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete DDPM noise schedule of `num_train_steps` steps (paper: 100).

    Build one with `Schedule.linear(...)`, `Schedule.cosine(...)` or `Schedule.from_betas(betas)`; the constructor
    checks that `alphas_cumprod == cumprod(1 - betas)`. Both tensors are float64 and 1-D.
    """

    betas: Float64[Tensor, " train_steps"]
    alphas_cumprod: Float64[Tensor, " train_steps"]

    def __post_init__(self) -> None:
        for name in ("betas", "alphas_cumprod"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.dtype != torch.float64 or value.ndim != 1:
                raise ValueError(f"{name} must be a 1-D float64 tensor, got {_describe(value)}")
        betas, alphas_cumprod = self.betas, self.alphas_cumprod
        if betas.numel() < 1:
            raise ValueError("betas must hold at least one step, got an empty tensor")
        if betas.shape != alphas_cumprod.shape or betas.device != alphas_cumprod.device:
            raise ValueError(
                f"alphas_cumprod has shape {list(alphas_cumprod.shape)} on {alphas_cumprod.device} "
                f"but betas has {list(betas.shape)} on {betas.device}"
            )
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"betas must lie in (0, 1), got values in [{betas.min().item():.3g}, {betas.max().item():.3g}]"
            )
        expected = torch.cumprod(1.0 - betas, dim=0)
        if not torch.allclose(alphas_cumprod, expected, rtol=1e-10, atol=0.0):
            raise ValueError("alphas_cumprod must equal cumprod(1 - betas); build schedules with Schedule.from_betas")

    def __repr__(self) -> str:
        a = self.alphas_cumprod
        return f"Schedule(num_train_steps={self.num_train_steps}, alpha_bar={a[0].item():.4g}..{a[-1].item():.4g})"

    # ----------------------------------------------------------------------------------------------- constructors

    @classmethod
    def from_betas(cls, betas: Float[Tensor, " train_steps"]) -> "Schedule":
        """A schedule from its per-step betas (cast to float64); alphas_cumprod = cumprod(1 - betas)."""
        if not isinstance(betas, Tensor) or betas.ndim != 1 or not betas.is_floating_point():
            raise ValueError(f"betas must be a 1-D floating-point tensor, got {_describe(betas)}")
        betas = betas.to(torch.float64)
        return cls(betas=betas, alphas_cumprod=torch.cumprod(1.0 - betas, dim=0))

    @classmethod
    def linear(
        cls,
        num_train_steps: int = 100,
        beta_start: float | None = None,
        beta_end: float | None = None,
    ) -> "Schedule":
        """Betas evenly spaced from `beta_start` to `beta_end` (Ho et al. 2020).

        Defaults: the reference 1000-step schedule (1e-4 .. 0.02) with both endpoints multiplied by
        `1000 / num_train_steps`, the rule of Nichol & Dhariwal's improved-DDPM code. Since -log alpha_bar(t) is
        about the sum of the betas up to t, scaling the betas by 1000/T keeps alpha_bar as a function of t/T
        (nearly) the same: for T = 100 the betas run from 1e-3 to 0.2, alpha_bar(T - 1) = 2.0e-5 against 4.0e-5
        for the reference, and alpha_bar(10k - 1) stays within 0.01 of the reference alpha_bar(100k - 1).
        """
        _check_num_train_steps(num_train_steps)
        scale = REFERENCE_LINEAR_STEPS / num_train_steps
        beta_start = REFERENCE_BETA_START * scale if beta_start is None else beta_start
        beta_end = REFERENCE_BETA_END * scale if beta_end is None else beta_end
        if not (0.0 < beta_start <= beta_end < 1.0):
            raise ValueError(
                f"linear schedule needs 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, "
                f"beta_end={beta_end} (num_train_steps={num_train_steps}; the default betas scale with 1000/T, "
                "so T must be >= 21 for them)"
            )
        return cls.from_betas(torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64))

    @classmethod
    def cosine(cls, num_train_steps: int = 100, s: float = 0.008, max_beta: float = 0.999) -> "Schedule":
        """The cosine schedule of Nichol & Dhariwal 2021, eq. 17: f(u) = cos((u + s) / (1 + s) * pi / 2)^2,
        beta_t = 1 - f((t + 1) / T) / f(t / T), clipped at `max_beta` (0.999) to avoid the singularity at u = 1.

        Before clipping, alpha_bar(t) = f((t + 1) / T) / f(0); the clip only changes the last step(s).
        """
        _check_num_train_steps(num_train_steps)
        if not (s > 0.0 and 0.0 < max_beta < 1.0):
            raise ValueError(f"cosine schedule needs s > 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        u = torch.arange(num_train_steps + 1, dtype=torch.float64) / num_train_steps
        f = torch.cos((u + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
        betas = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
        return cls.from_betas(betas)

    # -------------------------------------------------------------------------------------------------- accessors

    @property
    def num_train_steps(self) -> int:
        return self.betas.shape[0]

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> "Schedule":
        """The same schedule with its float64 master copies on `device`."""
        return type(self)(betas=self.betas.to(device), alphas_cumprod=self.alphas_cumprod.to(device))

    def alpha_bar(self, t: int | Int[Tensor, "*shape"], dtype: torch.dtype | None = None) -> Float[Tensor, "*shape"]:
        """alpha_bar(t) = prod_{s <= t} (1 - beta_s) for integer t in [0, T - 1], on t's device, float64 by default."""
        return self._gather(self.alphas_cumprod, t, dtype)

    def sigma(self, t: int | Int[Tensor, "*shape"], dtype: torch.dtype | None = None) -> Float[Tensor, "*shape"]:
        """Noise standard deviation sqrt(1 - alpha_bar(t)) of x_t (variance-preserving form)."""
        return self._gather(torch.sqrt(1.0 - self.alphas_cumprod), t, dtype)

    def snr(self, t: int | Int[Tensor, "*shape"], dtype: torch.dtype | None = None) -> Float[Tensor, "*shape"]:
        """Signal-to-noise ratio alpha_bar(t) / (1 - alpha_bar(t)) (Kingma et al. 2021)."""
        return self._gather(self.alphas_cumprod / (1.0 - self.alphas_cumprod), t, dtype)

    def _gather(self, table: Tensor, t: int | Tensor, dtype: torch.dtype | None) -> Tensor:
        t = check_timesteps(self, t, "t")
        return table.to(device=t.device, dtype=work_dtype(t.device) if dtype is None else dtype)[t]


def check_timesteps(schedule: Schedule, t: int | Tensor, name: str, *, low: int | None = 0) -> Tensor:
    """`t` as an int64 tensor (same shape and device), or ValueError if it is not integer or not in [low, T - 1]
    (`low=None`: no lower bound)."""
    if isinstance(t, bool) or not isinstance(t, int | Tensor):
        raise ValueError(f"{name} must be an int or an integer tensor, got {_describe(t)}")
    if isinstance(t, int):
        t = torch.tensor(t, dtype=torch.int64, device=schedule.device)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    t = t.to(torch.int64)
    high = schedule.num_train_steps - 1
    if t.numel() > 0:
        t_min, t_max = int(t.min()), int(t.max())
        if (low is not None and t_min < low) or t_max > high:
            raise ValueError(
                f"{name} must lie in [{'-inf' if low is None else low}, {high}] "
                f"(num_train_steps={schedule.num_train_steps}), got values in [{t_min}, {t_max}]"
            )
    return t


def work_dtype(device: torch.device) -> torch.dtype:
    """float64, the dtype coefficients are computed in, or float32 on devices without float64 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _check_num_train_steps(num_train_steps: int) -> None:
    if isinstance(num_train_steps, bool) or not isinstance(num_train_steps, int) or num_train_steps < 2:
        raise ValueError(f"num_train_steps must be an int >= 2, got {num_train_steps!r}")


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__name__} {value!r}"
