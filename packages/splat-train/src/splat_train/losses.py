"""Training losses, unreduced: each returns one value per image (or per map), the stage runner reduces
(EDM `training/loss.py` style). Images are `[*batch 3 H W]` in [0, 1]; Gaussian maps `[*batch C H W]`."""

from jaxtyping import Float
from torch import Tensor, nn

from .perceptual import lpips_distance
from .ssim import ssim


def _check(prediction: Tensor, target: Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {list(prediction.shape)} and target {list(target.shape)} must have equal shapes")


def l2(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch"]:
    """Mean squared error per image (Splatter Image's L2; the paper's ℓ_image = ||x − R(ŝ₀, v)||²)."""
    _check(prediction, target)
    return (prediction - target).square().mean(dim=(-3, -2, -1))


def l1(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch"]:
    """Mean absolute error per image (Flash3D's photometric term)."""
    _check(prediction, target)
    return (prediction - target).abs().mean(dim=(-3, -2, -1))


def ssim_loss(
    prediction: Float[Tensor, "*batch channels height width"], target: Float[Tensor, "*batch channels height width"]
) -> Float[Tensor, "*batch"]:
    """1 − SSIM per image (3DGS SSIM: 11×11 Gaussian window, σ 1.5, C1 = 0.01², C2 = 0.03²)."""
    return 1 - ssim(prediction, target)


def lpips_loss(
    model: nn.Module,
    prediction: Float[Tensor, "*batch 3 height width"],
    target: Float[Tensor, "*batch 3 height width"],
) -> Float[Tensor, "*batch"]:
    """LPIPS-VGG per image; `model` from `splat_train.perceptual.load_lpips` (never a random backbone)."""
    _check(prediction, target)
    return lpips_distance(model, prediction, target)


def gaussian_map_loss(
    student_x0: Float[Tensor, "*batch channels height width"],
    teacher_map: Float[Tensor, "*batch channels height width"],
) -> Float[Tensor, "*batch"]:
    """ℓ_3DGS = ||s₀^teacher − D_θ(s_t, t, x_src)||², mean over channels and pixels, in the normalized map space."""
    _check(student_x0, teacher_map)
    return (student_x0 - teacher_map).square().mean(dim=(-3, -2, -1))
