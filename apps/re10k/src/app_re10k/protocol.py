"""Flash3D's RealEstate10K split files and border crop (the evaluation itself is `evaluation.py`).

A split file has one row per evaluated source frame, `key src tgt5 tgt10 tgt_rand`: indices into the clip's frames
(Flash3D's `splits/re10k_mine_filtered/test_files.txt`), targets 5 and 10 frames after the source and one at a random
offset within ±30. Metrics are taken on both images cropped by 5% per side (Flash3D's `evaluation/evaluator.py`).

    uv run apps/re10k/protocol.py --root data/re10k --split test --out data/re10k/test_files.txt --every 10
"""

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from splat_apps.views import ViewExample

from .data import FrameSequence, load_example, open_dataset

NEAR_OFFSET, FAR_OFFSET = 5, 10  # the fixed target slots: source + 5 and source + 10 frames
RANDOM_OFFSET = 30  # the random slot: an offset in [-30, 30] \ {0}
TARGET_SLOTS = ("tgt5", "tgt10", "tgt_rand")  # split-file column names of the three targets
VIEW_SLOTS = ("src", *TARGET_SLOTS)  # the views of an evaluation example, in order
SLOT_LABELS = {"src": "source", "tgt5": "+5", "tgt10": "+10", "tgt_rand": "±30"}
BORDER_MARGIN = 0.05


@dataclass(frozen=True)
class SplitRow:
    """One evaluation row: a sequence, its source frame and the three target frames (indices into the frames)."""

    key: str
    src: int
    tgt5: int
    tgt10: int
    tgt_rand: int

    @property
    def targets(self) -> tuple[int, int, int]:
        return self.tgt5, self.tgt10, self.tgt_rand

    def line(self) -> str:
        return f"{self.key} {self.src} {self.tgt5} {self.tgt10} {self.tgt_rand}"


def read_split(path: str | os.PathLike, num_views: Mapping[str, int] | None = None) -> list[SplitRow]:
    """Rows of a split file; with `num_views` (key → frame count) every key and index is checked against it.
    Errors name `file:line`; blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read split file ({error})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 5:
            raise ValueError(f"{path}:{number}: expected 5 columns 'key src tgt5 tgt10 tgt_rand', got {len(tokens)}")
        try:
            indices = [int(token) for token in tokens[1:]]
        except ValueError:
            raise ValueError(f"{path}:{number}: frame indices must be integers, got {tokens[1:]}") from None
        row = SplitRow(tokens[0], *indices)
        if min(indices) < 0:
            raise ValueError(f"{path}:{number}: frame indices must be non-negative, got {indices}")
        if num_views is not None:
            if row.key not in num_views:
                raise ValueError(f"{path}:{number}: sequence {row.key} is not in the dataset")
            if max(indices) >= num_views[row.key]:
                raise ValueError(
                    f"{path}:{number}: frame index {max(indices)} out of range for {row.key} "
                    f"with {num_views[row.key]} frames"
                )
        rows.append(row)
    return rows


def write_split(path: str | os.PathLike, rows: list[SplitRow]) -> None:
    Path(path).write_text("".join(f"{row.line()}\n" for row in rows))


def _sequence_generator(seed: int, key: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def generate_split(
    num_views: Mapping[str, int], *, every: int = 10, seed: int = 0, max_offset: int = RANDOM_OFFSET
) -> list[SplitRow]:
    """A split in Flash3D's format for any dataset (key → frame count): sources at frames 0, every, 2·every, ...
    whose +10 target exists; targets at +5, +10 and a random offset in [-max_offset, max_offset] \\ {0} that stays
    inside the sequence. Each sequence draws from its own generator seeded by (`seed`, key)."""
    if every < 1:
        raise ValueError(f"every must be a positive frame step, got {every}")
    if max_offset < 1:
        raise ValueError(f"max_offset must be positive, got {max_offset}")
    rows = []
    for key in sorted(num_views):
        count = num_views[key]
        generator = _sequence_generator(seed, key)
        for src in range(0, count - FAR_OFFSET, every):
            offsets = [o for o in range(-max_offset, max_offset + 1) if o != 0 and 0 <= src + o < count]
            pick = int(torch.randint(len(offsets), (), generator=generator))
            rows.append(SplitRow(key, src, src + NEAR_OFFSET, src + FAR_OFFSET, src + offsets[pick]))
    return rows


def load_split_example(sequence: FrameSequence, row: SplitRow, size: tuple[int, int]) -> ViewExample:
    """The evaluation example of a split row: the source frame as input, target views (src, tgt5, tgt10, tgt_rand)
    with cameras relative to the source."""
    if sequence.key != row.key:
        raise ValueError(f"row is for sequence {row.key}, got sequence {sequence.key}")
    return load_example(sequence, [row.src, *row.targets], size)


def crop_bounds(height: int, width: int, margin: float = BORDER_MARGIN) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of Flash3D's border crop: y0 = ceil(margin·H), y1 = floor((1 − margin)·H), same for x."""
    y0, y1 = math.ceil(margin * height), math.floor((1 - margin) * height)
    x0, x1 = math.ceil(margin * width), math.floor((1 - margin) * width)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"a {margin} border crop leaves nothing of a {height}x{width} image")
    return y0, y1, x0, x1


def crop_border(
    images: Float[Tensor, "*batch channels height width"], margin: float = BORDER_MARGIN
) -> Float[Tensor, "*batch channels cropped_height cropped_width"]:
    """Drop Flash3D's 5% border (`crop_bounds`) from images."""
    y0, y1, x0, x1 = crop_bounds(images.shape[-2], images.shape[-1], margin)
    return images[..., y0:y1, x0:x1]


@dataclass(frozen=True)
class SplitCommand:
    """Write a Flash3D-format evaluation split for a RealEstate10K split in either layout."""

    root: Path  # dataset root holding <split>/ (pixelSplat chunks + index.json, or txt files + frame folders)
    out: Path  # split file to write
    split: str = "test"
    every: int = 10  # a source every k frames
    seed: int = 0  # seeds the random targets (per sequence)
    max_offset: int = RANDOM_OFFSET  # random target within ±max_offset frames


def main(argv: list[str] | None = None) -> int:
    import tyro

    command = tyro.cli(SplitCommand, args=argv)
    counts = open_dataset(command.root, command.split).frame_counts()
    rows = generate_split(counts, every=command.every, seed=command.seed, max_offset=command.max_offset)
    command.out.parent.mkdir(parents=True, exist_ok=True)
    write_split(command.out, rows)
    print(f"{command.out}: {len(rows)} rows from {len(counts)} sequences")
    return 0
