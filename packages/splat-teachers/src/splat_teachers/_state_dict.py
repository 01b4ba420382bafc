"""Reading state dicts safely and loading them strictly, with one-line errors."""

import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

_LISTED = 6


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _LISTED else "")


def read_state_dict(path: str | os.PathLike, *, hint: str = "") -> dict[str, Tensor]:
    """Tensors of a `.safetensors` file, or of a PyTorch `.pth` (a bare state dict, or a dict holding one under
    `model_state_dict` / `state_dict` / `model`, as Splatter Image and Flash3D save them).

    `.pth` files are pickles: they are read with `torch.load(..., weights_only=True)`, which only rebuilds tensors
    and plain containers; a file holding any other object is refused with a ValueError. `hint` is appended to the
    error for a missing file (for example where to download it).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file" + (f"; {hint}" if hint else ""))
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{path}: refusing to unpickle it: it holds objects other than tensors and plain containers, which "
            f"torch.load(weights_only=True) rejects ({reason})"
        ) from None
    except Exception as error:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from None
    if isinstance(loaded, dict):
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: expected a state dict (str -> tensor), possibly under 'model_state_dict'")
    return dict(loaded)


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """`module.load_state_dict(state_dict, strict=True)` with a one-line ValueError listing what does not match."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    mismatched = [
        f"{k} {list(state_dict[k].shape)} vs {list(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if mismatched:
        problems.append(f"shape mismatches (checkpoint vs model): {_listing(mismatched)}")
    if problems:
        raise ValueError(
            f"{source} does not fit this {type(module).__name__} architecture (another architecture or config?): "
            + "; ".join(problems)
        )
    module.load_state_dict(state_dict, strict=True)
