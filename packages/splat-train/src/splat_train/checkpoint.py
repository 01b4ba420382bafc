"""Training checkpoints: one safetensors file per save holding everything needed to continue bit-for-bit —
model, EMA, optimizer state, RNG states — with the config, step and optimizer hyper-parameters as JSON metadata.

Files are written atomically (a temporary file unique to the writing process in the same directory, fsync, then
`os.replace`), so a crash or a full disk while saving leaves the previous checkpoint intact. Each file carries a
SHA-256 checksum of its tensors and metadata, verified on load: a flipped bit is a one-line error naming the file,
and `latest_good_checkpoint` falls back to the previous checkpoint (renaming the bad one `*.corrupt`). Names are
`step_{step:08d}.safetensors`; the newest good one is the one to resume from.
"""

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

_NAME = re.compile(r"^step_(\d{8})\.safetensors$")


@dataclass(frozen=True)
class TrainingState:
    """Everything a checkpoint holds. `tensors` groups: `model`, `ema`, `optimizer`, `rng`."""

    step: int
    model: dict[str, Tensor]
    ema: dict[str, Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Tensor]
    config: dict[str, Any]


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, slots in state_dict["state"].items():
        for name, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def checksum(tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over the metadata (but its own `checksum` entry) and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps({k: v for k, v in metadata.items() if k != "checksum"}, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:08d}.safetensors"


def save_checkpoint(directory: str | os.PathLike, state: TrainingState, keep: int = 2) -> Path:
    """Write `state` atomically and delete all but the newest `keep` checkpoints; returns the new file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    optimizer_tensors, optimizer_meta = _flatten_optimizer(state.optimizer)
    tensors = {
        **{f"model.{k}": v.detach().contiguous().cpu() for k, v in state.model.items()},
        **{f"ema.{k}": v.detach().contiguous().cpu() for k, v in state.ema.items()},
        **optimizer_tensors,
        **{f"rng.{k}": v.contiguous().cpu() for k, v in state.rng.items()},
    }
    metadata = {
        "step": str(state.step),
        "config": json.dumps(state.config),
        "optimizer": json.dumps(optimizer_meta),
        "format": "lesson-splats training checkpoint v1",
    }
    metadata["checksum"] = checksum(tensors, metadata)
    path = checkpoint_path(directory, state.step)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(temporary), metadata=metadata)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # a full disk, a quota, a vanished directory: the previous checkpoints are untouched
        temporary.unlink(missing_ok=True)
        previous = latest_checkpoint(directory)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise ValueError(f"{path}: could not write the checkpoint ({error.strerror or error}); {kept}") from None
    for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike) -> TrainingState:
    """Read a checkpoint written by `save_checkpoint`; a missing or foreign file is a one-line ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({error})") from None
    if metadata.get("format") != "lesson-splats training checkpoint v1":
        raise ValueError(
            f"{path}: not a lesson-splats training checkpoint (metadata format {metadata.get('format')!r})"
        )
    missing = [key for key in ("step", "config", "optimizer") if key not in metadata]
    if missing:
        raise ValueError(f"{path}: incomplete training checkpoint (no {', '.join(missing)} in its metadata)")
    if "checksum" in metadata and checksum(tensors, metadata) != metadata["checksum"]:
        raise ValueError(f"{path}: checksum mismatch, the file is corrupt (a flipped bit or a partial copy)")

    def group(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}

    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return TrainingState(
        step=int(metadata["step"]),
        model=group("model"),
        ema=group("ema"),
        optimizer=_unflatten_optimizer(optimizer_tensors, json.loads(metadata["optimizer"])),
        rng=group("rng"),
        config=json.loads(metadata["config"]),
    )


def latest_good_checkpoint(directory: str | os.PathLike) -> tuple[Path, TrainingState] | None:
    """The newest checkpoint in `directory` that loads and verifies, with its state (None: there is none).

    Bad newer ones are renamed `<name>.corrupt` (kept for inspection, out of the listing) with a RuntimeWarning naming
    them and the one used instead; a ValueError, renaming nothing, when every checkpoint there is bad."""
    bad: dict[Path, str] = {}
    for path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path)
        except ValueError as error:
            bad[path] = str(error)
            continue
        for corrupt in bad:
            corrupt.replace(corrupt.with_name(corrupt.name + ".corrupt"))
        if bad:
            problems = "; ".join(bad.values())
            warnings.warn(f"{problems}; renamed to *.corrupt, using {path} instead", RuntimeWarning, stacklevel=2)
        return path, state
    if bad:  # nothing renamed: the files stay for the user to repair or remove
        raise ValueError(f"{directory}: no usable checkpoint ({'; '.join(bad.values())})")
    return None


def load_module_state(module: torch.nn.Module, state: dict[str, Tensor], *, what: str, source: Path | str) -> None:
    """Strict `load_state_dict` whose failure names the missing / unexpected / mis-shaped keys in one line."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or mismatched:

        def head(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        raise ValueError(
            f"{source}: {what} does not match this architecture — missing keys: [{head(missing)}], "
            f"unexpected keys: [{head(unexpected)}], shape mismatches: [{head(mismatched)}]"
        )
    module.load_state_dict(state, strict=True)
