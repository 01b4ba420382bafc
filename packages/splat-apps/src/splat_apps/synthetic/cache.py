"""The on-disk cache of generated datasets: one folder per option set, assembled under a temporary name and renamed
into place after its `manifest.json` and `COMPLETE` marker are written, so an interrupted or concurrent generation
never leaves a folder that looks complete."""

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

MARKER = "COMPLETE"
MANIFEST = "manifest.json"
CACHE_ENV = "LESSON_SPLATS_DATA"  # overrides where generated datasets go


def repository_root(start: Path) -> Path | None:
    """The nearest folder above `start` holding this project's `uv.lock` (None when installed elsewhere)."""
    for folder in (start, *start.parents):
        if (folder / "uv.lock").is_file() and (folder / "packages").is_dir():
            return folder
    return None


def default_cache_dir() -> Path:
    """`$LESSON_SPLATS_DATA/synthetic` if set, else `<repository>/data/synthetic` (git-ignored), else
    `./data/synthetic`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "synthetic"
    root = repository_root(Path(__file__).resolve().parent)
    return (root if root is not None else Path.cwd()) / "data" / "synthetic"


def options_key(prefix: str, options: Any, version: int) -> str:
    """A readable, unique folder name for a dataclass of generator options: `<prefix>-<hash>` (12 hex digits of the
    options and the generator version)."""
    payload = json.dumps(
        {"version": version, **(asdict(options) if is_dataclass(options) else options)}, sort_keys=True
    )
    return f"{prefix}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / MANIFEST).is_file()


def cached(final: Path, write: Callable[[Path], dict]) -> Path:
    """`final` if a complete copy exists; otherwise `write(partial)` fills a temporary sibling folder and returns the
    manifest, which is written with the marker before the folder is renamed to `final`. A folder at `final` without
    the marker (an interrupted older run) is replaced; if another process publishes first, its copy is kept."""
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        manifest = write(partial)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        (partial / MARKER).write_text("complete\n")
        if final.exists() and not is_complete(final):
            shutil.rmtree(final)
        try:
            os.rename(partial, final)
        except OSError:
            if not is_complete(final):  # another process published first otherwise
                raise
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return final
