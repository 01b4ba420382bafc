"""Losses and metrics: zero (or perfect) at equality, non-negative, and equal to their definitions."""

import math
import pathlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from splat_train import ScoreAccumulator, gaussian_map_loss, l1, l2, psnr, ssim, ssim_loss
from splat_train.perceptual import LPIPSWeightsMissing, load_lpips
from splat_train.ssim import C1, C2, gaussian_window

seeds = st.integers(0, 2**31 - 1)


def _images(seed: int, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=20, deadline=None)
@given(seed=seeds, batch=st.integers(1, 3), size=st.integers(4, 20))
def test_losses_are_non_negative_and_zero_at_equality(seed: int, batch: int, size: int) -> None:
    x, y = _images(seed, batch, 3, size, size + 1), _images(seed + 1, batch, 3, size, size + 1)
    for loss in (l2, l1, ssim_loss, gaussian_map_loss):
        assert (loss(x, y) >= 0).all()
        torch.testing.assert_close(loss(x, x), torch.zeros(batch, dtype=torch.float64), atol=1e-12, rtol=0)
        assert loss(x, y).shape == (batch,)


def test_losses_keep_every_leading_dimension() -> None:
    x, y = _images(0, 2, 3, 3, 8, 8), _images(1, 2, 3, 3, 8, 8)
    assert l2(x, y).shape == (2, 3) and ssim(x, y).shape == (2, 3)
    torch.testing.assert_close(l2(x, y)[1, 2], (x[1, 2] - y[1, 2]).square().mean())


def test_psnr_of_a_known_error_and_of_identical_images() -> None:
    x = _images(0, 2, 3, 8, 8)
    torch.testing.assert_close(psnr(x + 0.1, x), torch.full((2,), 20.0, dtype=torch.float64))
    identical = psnr(x, x)
    assert torch.isfinite(identical).all() and torch.equal(identical, torch.full((2,), 100.0, dtype=torch.float64))
    # not clamped: predictions outside [0, 1] count fully
    torch.testing.assert_close(psnr(x + 2.0, x), torch.full((2,), -10 * math.log10(4.0), dtype=torch.float64))


def test_ssim_of_identical_images_is_one() -> None:
    x = _images(3, 4, 3, 16, 16)
    torch.testing.assert_close(ssim(x, x), torch.ones(4, dtype=torch.float64))


def test_ssim_of_constant_images_matches_the_closed_form_away_from_borders() -> None:
    a, b = 0.3, 0.7
    x = torch.full((1, 3, 31, 31), a, dtype=torch.float64)
    y = torch.full((1, 3, 31, 31), b, dtype=torch.float64)
    from splat_train.ssim import ssim_map

    centre = ssim_map(x, y)[0, :, 15, 15]
    expected = (2 * a * b + C1) / (a * a + b * b + C1)  # variances and covariance are 0 in the interior
    torch.testing.assert_close(centre, torch.full((3,), expected, dtype=torch.float64))


def _naive_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Direct transcription of the definition: windowed statistics with zero padding, pixel by pixel."""
    channels, height, width = x.shape
    window = gaussian_window(dtype=torch.float64)
    weights = window[:, None] * window[None, :]
    half = 5
    total = 0.0
    for c in range(channels):
        for i in range(height):
            for j in range(width):
                mx = my = sxx = syy = sxy = 0.0
                for u in range(-half, half + 1):
                    for v in range(-half, half + 1):
                        if 0 <= i + u < height and 0 <= j + v < width:
                            w = float(weights[u + half, v + half])
                            px, py = float(x[c, i + u, j + v]), float(y[c, i + u, j + v])
                            mx, my = mx + w * px, my + w * py
                            sxx, syy, sxy = sxx + w * px * px, syy + w * py * py, sxy + w * px * py
                vx, vy, cxy = sxx - mx * mx, syy - my * my, sxy - mx * my
                total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    return total / (channels * height * width)


def test_ssim_matches_its_definition_on_small_images() -> None:
    x, y = _images(5, 2, 6, 7), _images(6, 2, 6, 7)
    assert math.isclose(float(ssim(x, y)), _naive_ssim(x, y), rel_tol=1e-10)


def test_score_accumulator_averages_per_item_then_over_items_in_each_slot() -> None:
    accumulator = ScoreAccumulator()
    accumulator.add("a", "novel", {"psnr": torch.tensor([10.0, 20.0])})
    accumulator.add("b", "novel", {"psnr": torch.tensor(30.0)})
    accumulator.add("a", "input", {"psnr": torch.tensor(50.0)})
    summary = accumulator.summary()
    assert summary["novel"]["psnr"] == 22.5  # (15 + 30) / 2, not the per-view mean 20
    assert summary["novel"]["items"] == 2 and summary["input"] == {"psnr": 50.0, "items": 1}
    assert accumulator.per_item()["a"] == {"novel": {"psnr": 15.0}, "input": {"psnr": 50.0}}
    assert list(summary) == ["novel", "input"]  # slots in the order they were first seen


def test_score_accumulator_with_one_view_per_slot_is_the_mean_over_items() -> None:
    accumulator = ScoreAccumulator()
    values = torch.tensor([3.0, 5.0, 10.0])
    for row, value in enumerate(values):
        accumulator.add(f"row {row}", "tgt5", {"ssim": value})
    assert accumulator.summary()["tgt5"]["ssim"] == float(values.mean())


def test_missing_lpips_weights_fail_with_one_line_naming_the_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(LPIPSWeightsMissing, match=str(tmp_path / "nowhere.pth")) as error:
        load_lpips(trunk_path=tmp_path / "nowhere.pth")
    assert "\n" not in str(error.value)


def test_lpips_with_a_vgg_checkpoint_is_zero_at_equality_and_positive_otherwise(tmp_path: pathlib.Path) -> None:
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg16().features.state_dict()  # stand-in trunk weights: tests never download
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.items()}, path)
    model = load_lpips(trunk_path=path)
    x, y = _images(0, 2, 3, 32, 32).float(), _images(1, 2, 3, 32, 32).float()
    from splat_train import lpips_loss

    torch.testing.assert_close(lpips_loss(model, x, x), torch.zeros(2), atol=1e-6, rtol=0)
    assert (lpips_loss(model, x, y) > 0).all()
    assert not any(p.requires_grad for p in model.parameters())
    torch.save({"classifier.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg checkpoint"):
        load_lpips(trunk_path=tmp_path / "other.pth")
