"""A run directory's `config.json`: written when a run starts, refused when the directory holds another experiment,
read back (typed) by `eval` and `sample`, and upgraded from the layout older versions wrote.

A run directory holds `config.json`, `checkpoints/<stage>/step_*.safetensors`, `metrics.jsonl` and `eval/`.
"""

import json
import os
from pathlib import Path
from typing import Any

from splat_teachers.config_io import config_from_dict, to_jsonable
from splat_train.distributed import on_main

from .experiment import training_fields

# Loop fields that may change between invocations of one run: training longer, checkpointing or logging differently.
RESUMABLE_LOOP_FIELDS = ("max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "progress", "bf16")
# Stage fields that may change too: a run that diverged resumes from its last good checkpoint with a lower rate
# (each step's rate is logged in metrics.jsonl, so the history stays readable).
RESUMABLE_STAGE_FIELDS = ("learning_rate",)
STAGE_SECTIONS = ("teacher", "bootstrap", "multistep")


def upgrade_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    """A config.json written before the stages shared one diffusion process and one background colour (each student
    stage had `diffusion`, each stage and re10k's `eval` had `background`), in today's layout; a ValueError when the
    old values disagree, since no run of today's code can reproduce that."""
    config = json.loads(json.dumps(config))  # a deep copy
    for key, owners in (("diffusion", ("bootstrap", "multistep")), ("background", (*STAGE_SECTIONS, "eval"))):
        values = {
            name: config[name].pop(key) for name in owners if isinstance(config.get(name), dict) and key in config[name]
        }
        if not values:
            continue
        if key in config or len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            raise ValueError(
                f"{where}: written by an older version whose stages had different {key} settings "
                f"({', '.join(values)}); today's runs share one --{key}: start a new --run-dir"
            )
        config[key] = next(iter(values.values()))
    return config


def _training_view(config: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    view = {name: config.get(name) for name in fields}
    for name, value in view.items():
        if isinstance(value, dict) and isinstance(value.get("loop"), dict):
            loop = {k: v for k, v in value["loop"].items() if k not in RESUMABLE_LOOP_FIELDS}
            kept = {k: v for k, v in value.items() if name not in STAGE_SECTIONS or k not in RESUMABLE_STAGE_FIELDS}
            view[name] = {**kept, "loop": loop}
    return view


def _differences(saved: Any, mine: Any, path: str) -> list[str]:
    """`--flag saved → given` for every leaf where two JSON values differ."""
    if isinstance(saved, dict) and isinstance(mine, dict):
        keys = list(saved) + [k for k in mine if k not in saved]
        return [d for k in keys for d in _differences(saved.get(k), mine.get(k), f"{path}.{k}" if path else k)]
    if saved == mine:
        return []
    return [f"--{path.replace('_', '-')} {json.dumps(saved)} → {json.dumps(mine)}"]


def read_config_file(path: Path) -> dict[str, Any]:
    """The JSON object of a config.json (upgraded to today's layout); one-line ValueErrors naming the file."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable config.json ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a run config (a JSON {type(config).__name__}, expected an object)")
    return upgrade_config(config, str(path))


def save_run_config(run_dir: str | os.PathLike, experiment: Any) -> Path:
    """Write `run_dir/config.json`. If the directory already holds a run whose training fields (`training_fields`)
    differ, apart from the loop fields that may change when resuming, raise a ValueError naming them instead.

    Under torchrun only rank 0 reads and writes the file; every rank returns its path or raises its error."""
    return on_main(lambda: _save_run_config(Path(run_dir), experiment))


def _save_run_config(run_dir: Path, experiment: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    current = to_jsonable(experiment)
    fields = training_fields(type(experiment))
    if path.is_file():
        # through the dataclasses: an option added since the run started takes its default, as it did in that run
        saved = to_jsonable(config_from_dict(type(experiment), read_config_file(path), where=str(path)))
        saved = _training_view(saved, fields)
        mine = _training_view(current, fields)
        changed = [name for name in fields if saved.get(name) != mine.get(name)]
        if changed:
            leaves = [d for name in changed for d in _differences(saved.get(name), mine.get(name), name)]
            shown = "; ".join(leaves[:6]) + (f"; and {len(leaves) - 6} more" if len(leaves) > 6 else "")
            raise ValueError(
                f"{run_dir} holds a run with a different configuration ({', '.join(changed)} differ: {shown}); "
                f"to resume it pass its options again (saved in {path}), to start over use another --run-dir"
            )
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(current, indent=1) + "\n")
    os.replace(temporary, path)
    return path


def load_run_config(run_dir: str | os.PathLike, experiment_type: type) -> Any:
    """The experiment of type `experiment_type` saved in `run_dir/config.json` (ValueErrors name the file)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no config.json (not a run directory)")
    return config_from_dict(experiment_type, read_config_file(path), where=str(path))
