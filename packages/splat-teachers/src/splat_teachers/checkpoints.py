"""Teacher checkpoints: `<name>.safetensors` (the state dict) + `<name>.json` (kind and config), loaded strictly;
and `.ply` export of a prediction.

Loading rebuilds the teacher from the JSON config and loads the tensors with `strict=True`; a checkpoint of another
architecture (or a config edited by hand) is a one-line ValueError listing the missing / unexpected keys and the
shape mismatches. Files are written atomically (temporary file, then rename).
"""

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from splat_render.ply import save_ply

from ._state_dict import load_state_dict_strict, read_state_dict
from .config_io import config_from_dict, config_to_dict
from .flash3d import Flash3D, Flash3DConfig
from .protocol import TeacherOutput
from .splatter_image import SplatterImage, SplatterImageConfig

FORMAT = "splat-teachers/1"
KINDS: dict[str, tuple[type, type]] = {
    "splatter-image": (SplatterImage, SplatterImageConfig),
    "flash3d": (Flash3D, Flash3DConfig),
}


def _kind_of(teacher: torch.nn.Module) -> str:
    for kind, (cls, _) in KINDS.items():
        if type(teacher) is cls:
            return kind
    raise ValueError(f"teacher must be one of {[c.__name__ for c, _ in KINDS.values()]}, got {type(teacher).__name__}")


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(`.safetensors`, `.json`) paths of a checkpoint named by either file or by its stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def atomic_write(path: str | os.PathLike, write) -> Path:
    """`write(temporary)` next to `path`, then rename it over `path`: readers see the old file or the whole new one,
    never a torn one (a per-process temporary name, so concurrent writers do not clash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    write(temporary)
    os.replace(temporary, path)
    return path


def save_checkpoint(teacher: SplatterImage | Flash3D, path: str | os.PathLike) -> Path:
    """Write the teacher's state dict and config; returns the `.safetensors` path."""
    kind = _kind_of(teacher)
    weights, config_path = checkpoint_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in teacher.state_dict().items()}
    document = {"format": FORMAT, "kind": kind, "config": config_to_dict(teacher.config)}
    atomic_write(weights, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT, "kind": kind}))
    atomic_write(config_path, lambda p: p.write_text(json.dumps(document, indent=1) + "\n"))
    return weights


def read_checkpoint_config(path: str | os.PathLike) -> tuple[str, object]:
    """(kind, config dataclass) of a checkpoint's JSON."""
    _, config_path = checkpoint_paths(path)
    if not config_path.is_file():
        raise ValueError(f"{config_path}: no such checkpoint config (expected next to the .safetensors file)")
    try:
        document = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("kind") not in KINDS:
        raise ValueError(f"{config_path}: not a {FORMAT} checkpoint config with a kind in {sorted(KINDS)}")
    _, config_cls = KINDS[document["kind"]]
    return document["kind"], config_from_dict(config_cls, document["config"], where=str(config_path))


def load_weights(teacher: SplatterImage | Flash3D, path: str | os.PathLike) -> None:
    """Load a checkpoint's tensors into an existing teacher, strictly (clear ValueError on any mismatch)."""
    weights, _ = checkpoint_paths(path)
    load_state_dict_strict(teacher, read_state_dict(weights), source=str(weights))


def load_checkpoint(path: str | os.PathLike, **teacher_kwargs) -> SplatterImage | Flash3D:
    """Rebuild a teacher from its config and load its weights strictly. Returns it in eval mode.

    `teacher_kwargs` go to the constructor (for example `depth_backbone=` for an external-depth Flash3D).
    """
    kind, config = read_checkpoint_config(path)
    teacher_cls, _ = KINDS[kind]
    teacher = teacher_cls(config, **teacher_kwargs)
    load_weights(teacher, path)
    return teacher.eval()


def export_ply(output: TeacherOutput, path: str | os.PathLike, index: int = 0) -> Path:
    """Write scene `index` of a teacher prediction as a standard 3DGS `.ply` (`splat_render.ply.save_ply`)."""
    return save_ply(output.gaussians, path, index=index)
