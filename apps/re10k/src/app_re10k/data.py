"""RealEstate10K readers and writers of both public layouts, pixelSplat chunks and the original txt files (their
format and camera convention: README.md "Data preparation"), and training examples with cameras relative to the
source frame. Malformed chunks, txt lines and JPEGs raise a ValueError naming the file."""

import io
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float, Int, UInt8
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from splat_apps.images import BOMB_ERRORS, open_refusing_bombs, pixel_limit_problem
from splat_apps.views import ViewExample, make_example
from splat_render import rigid_inverse

FLASH3D_SIZE = (256, 384)  # (height, width) of Flash3D's RealEstate10K frames (configs/dataset/re10k.yaml)
CAMERA_COLUMNS = 18  # fx fy cx cy 0 0 + 3x4 world-to-camera, row-major
CHUNK_FIELDS = ("key", "url", "timestamps", "cameras", "images")
JPEG_MAGIC = b"\xff\xd8\xff"  # start-of-image marker, then the first segment marker
MAX_OFFSET = 30  # Flash3D: targets within ±30 frames of the source
NEAR, FAR = 0.01, 100.0  # Flash3D's znear / zfar for RealEstate10K renders
_REFUSED_GLOBAL = re.compile(r"\bGLOBAL\s+([\w.]+)")  # torch.load's name of a refused class or function
SPLIT_FILE = "test_files.txt"  # Flash3D's name for the evaluation split (splits/re10k_mine_filtered/test_files.txt)


def cameras_from_rows(
    rows: Float[Tensor, "views 18"],
) -> tuple[Float[Tensor, "views 3 3"], Float[Tensor, "views 4 4"]]:
    """Split 18-number camera rows into normalized intrinsics K and 4×4 world-to-camera matrices."""
    if rows.ndim != 2 or rows.shape[1] != CAMERA_COLUMNS:
        raise ValueError(f"rows must have shape [views, {CAMERA_COLUMNS}], got {list(rows.shape)}")
    fx, fy, cx, cy = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    zeros, ones = torch.zeros_like(fx), torch.ones_like(fx)
    K = torch.stack([fx, zeros, cx, zeros, fy, cy, zeros, zeros, ones], dim=-1).reshape(-1, 3, 3)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=rows.dtype).expand(rows.shape[0], 1, 4)
    world_to_cam = torch.cat([rows[:, 6:].reshape(-1, 3, 4), bottom], dim=1)
    return K, world_to_cam


def rows_from_cameras(
    intrinsics: Float[Tensor, "views 3 3"], world_to_cam: Float[Tensor, "views 4 4"]
) -> Float[Tensor, "views 18"]:
    """The 18-number rows of normalized K and world-to-camera matrices."""
    K = intrinsics
    intrinsic_part = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], dim=-1)
    return torch.cat([intrinsic_part, torch.zeros_like(intrinsic_part[:, :2]), world_to_cam[:, :3].flatten(1)], dim=1)


def pixel_intrinsics(normalized: Float[Tensor, "*batch 3 3"], height: int, width: int) -> Float[Tensor, "*batch 3 3"]:
    """K in pixels for a `height`×`width` image: row 0 of the normalized K times W, row 1 times H. Normalized (0, 0)
    and (1, 1) are the image's outer corners, as in `splat_render.Cameras` (pixel (i, j) centred at (j + ½, i + ½))."""
    scale = torch.tensor([width, height, 1.0], dtype=normalized.dtype, device=normalized.device)
    return normalized * scale[:, None]


def encode_jpeg(image: UInt8[np.ndarray, "height width 3"], quality: int = 95) -> bytes:
    """JPEG file bytes of an RGB uint8 image (pillow, 4:4:4 chroma so thin texture lines keep their colour)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def image_tensor(
    image: Image.Image, size: tuple[int, int] | None, *, name: str = "image"
) -> Float[Tensor, "3 height width"]:
    """A pillow image as RGB in [0, 1], resized (LANCZOS, as Flash3D) to `size` = (height, width) if given. More than
    `MAX_PIXELS` pixels is a ValueError naming `name`, raised from the header before decoding."""
    problem = pixel_limit_problem(image.width, image.height)
    if problem:
        raise ValueError(f"{name}: {problem}")
    image = image.convert("RGB")
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def decode_jpeg(data: bytes, size: tuple[int, int] | None = None, *, name: str) -> Float[Tensor, "3 height width"]:
    """JPEG bytes as RGB in [0, 1] (`image_tensor`); `name` (file, key, frame) is named in the error for bad data,
    too many pixels or a decompression bomb."""
    if not data.startswith(JPEG_MAGIC):
        raise ValueError(f"{name}: not JPEG data (starts with {data[:4]!r})")
    try:
        with open_refusing_bombs(io.BytesIO(data)) as opened:
            if opened.format != "JPEG":
                raise ValueError(f"{name}: not JPEG data (pillow reads it as {opened.format})")
            return image_tensor(opened, size, name=name)
    except BOMB_ERRORS as error:
        raise ValueError(f"{name}: JPEG refused as a possible decompression bomb ({error})") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise ValueError(f"{name}: cannot decode JPEG ({error})") from None


@dataclass(frozen=True)
class FrameSequence:
    """One clip: per-frame timestamps and cameras; `frames[i]` is frame i's JPEG, a uint8 byte tensor (chunk) or a
    file path (txt layout), decoded only when asked for. `source` (the chunk or txt file) is named in every error."""

    key: str
    url: str
    timestamps: Int[Tensor, " views"]
    intrinsics: Float[Tensor, "views 3 3"]  # normalized (row 0 / width, row 1 / height)
    world_to_cam: Float[Tensor, "views 4 4"]  # OpenCV axes
    frames: tuple[Tensor | Path, ...]
    source: Path

    def __post_init__(self) -> None:
        count = self.timestamps.shape[0]
        if len(self.frames) != count or self.intrinsics.shape[0] != count or self.world_to_cam.shape[0] != count:
            raise ValueError(
                f"{self.source}: sequence {self.key} has {count} timestamps, {self.intrinsics.shape[0]} cameras and "
                f"{len(self.frames)} images; they must be equal"
            )

    def __len__(self) -> int:
        return self.timestamps.shape[0]

    def jpeg(self, index: int) -> bytes:
        """The JPEG file bytes of frame `index`."""
        frame = self.frames[index]
        if isinstance(frame, Path):
            try:
                return frame.read_bytes()
            except OSError as error:
                raise ValueError(f"{frame}: cannot read frame {index} of {self.key} ({error.strerror})") from None
        return frame.numpy().tobytes()

    def image(self, index: int, size: tuple[int, int] | None = FLASH3D_SIZE) -> Float[Tensor, "3 height width"]:
        """Frame `index` as RGB in [0, 1], resized to `size` = (height, width) (None: as stored)."""
        frame = self.frames[index]
        name = str(frame) if isinstance(frame, Path) else f"{self.source} (key {self.key}, frame {index})"
        return decode_jpeg(self.jpeg(index), size, name=name)


# ---------------------------------------------------------------------------------------------------------------------
# pixelSplat chunks


def _load_failure(error: BaseException) -> str:
    """The gist of a `torch.load` failure, in one line: the global `weights_only` refused to unpickle (torch >= 2.6
    says "GLOBAL posix.system" in a paragraph of advice), else the line after "WeightsUnpickler error:" (older torch:
    "Unsupported class __main__.Thing"), else the error's first line."""
    text = str(error).strip()
    refused = _REFUSED_GLOBAL.search(text)
    if refused:
        return f"refused to unpickle it: global {refused.group(1)}"
    if "WeightsUnpickler error:" in text:
        detail = [line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines() if line.strip()]
        return f"refused to unpickle it: {detail[0]}" if detail else "refused to unpickle it"
    return text.splitlines()[0] if text else type(error).__name__


def _sequence_from_example(example: object, path: Path, position: int) -> FrameSequence:
    where = f"{path}: example {position}"
    if not isinstance(example, dict):
        raise ValueError(f"{where} is a {type(example).__name__}, expected a dict with keys {list(CHUNK_FIELDS)}")
    missing = [name for name in CHUNK_FIELDS if name not in example]
    if missing:
        raise ValueError(f"{where} lacks key(s) {missing} (a pixelSplat example has {list(CHUNK_FIELDS)})")
    key, url, timestamps, cameras, images = (example[name] for name in CHUNK_FIELDS)
    if not isinstance(key, str) or not isinstance(url, str):
        raise ValueError(f"{where}: 'key' and 'url' must be strings")
    where = f"{path}: example {position} (key {key})"
    if not isinstance(timestamps, Tensor) or timestamps.ndim != 1 or timestamps.is_floating_point():
        raise ValueError(f"{where}: 'timestamps' must be a 1-D integer tensor")
    count = timestamps.shape[0]
    if not isinstance(cameras, Tensor) or not cameras.is_floating_point() or cameras.shape != (count, CAMERA_COLUMNS):
        shape = list(cameras.shape) if isinstance(cameras, Tensor) else type(cameras).__name__
        raise ValueError(f"{where}: 'cameras' must be a float tensor of shape [{count}, {CAMERA_COLUMNS}], got {shape}")
    if not isinstance(images, list | tuple) or len(images) != count:
        raise ValueError(f"{where}: 'images' must be a list of {count} JPEG byte tensors")
    for index, image in enumerate(images):
        if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.ndim != 1:
            raise ValueError(f"{where}: image {index} must be a 1-D uint8 tensor of JPEG bytes")
        if image[: len(JPEG_MAGIC)].numpy().tobytes() != JPEG_MAGIC:
            raise ValueError(f"{where}: image {index} is not JPEG data (no JPEG start-of-image marker)")
    if not torch.isfinite(cameras).all():
        raise ValueError(f"{where}: cameras contain NaN or Inf")
    if (cameras[:, :2] <= 0).any():
        raise ValueError(f"{where}: focal lengths fx, fy must be positive")
    intrinsics, world_to_cam = cameras_from_rows(cameras.to(torch.float32))
    return FrameSequence(key, url, timestamps.to(torch.int64), intrinsics, world_to_cam, tuple(images), path)


def read_chunk(path: str | os.PathLike) -> list[FrameSequence]:
    """The sequences of one pixelSplat chunk file."""
    path = Path(path)
    try:
        examples = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: chunk file not found") from None
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        reason = _load_failure(error)
        raise ValueError(f"{path}: not a pixelSplat chunk of plain tensors/lists/dicts ({reason})") from None
    if not isinstance(examples, list):
        raise ValueError(f"{path}: a pixelSplat chunk is a list of examples, got {type(examples).__name__}")
    return [_sequence_from_example(example, path, position) for position, example in enumerate(examples)]


def write_chunk(path: str | os.PathLike, sequences: list[FrameSequence]) -> None:
    """Write sequences as one pixelSplat chunk (the layout of real_estate_10k_tools' convert.py)."""
    examples = [
        {
            "url": sequence.url,
            "timestamps": sequence.timestamps.to(torch.int64),
            "cameras": rows_from_cameras(sequence.intrinsics, sequence.world_to_cam).to(torch.float32),
            "images": [torch.frombuffer(bytearray(sequence.jpeg(i)), dtype=torch.uint8) for i in range(len(sequence))],
            "key": sequence.key,
        }
        for sequence in sequences
    ]
    torch.save(examples, path)


def read_index(path: str | os.PathLike) -> dict[str, str]:
    """pixelSplat `index.json`: sequence key → chunk file name (relative to the split folder)."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: index file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(index, dict):
        raise ValueError(f"{path}: expected a JSON object mapping keys to chunk files")
    for key, chunk in index.items():
        if not isinstance(chunk, str) or Path(chunk).name != chunk or not chunk:
            raise ValueError(f"{path}: key {key!r} maps to {chunk!r}, expected a chunk file name in the same folder")
    return index


class SequenceDataset:
    """One split of a dataset: its sequences by key (`ChunkDataset`, `TxtDataset`)."""

    def keys(self) -> list[str]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> FrameSequence:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.keys())

    def __iter__(self) -> Iterator[FrameSequence]:
        return (self[key] for key in self.keys())

    def frame_counts(self) -> dict[str, int]:
        return {sequence.key: len(sequence) for sequence in self}


class ChunkDataset(SequenceDataset):
    """One split of the pixelSplat layout, chunks read on demand; the last `cached_chunks` read are kept in memory (a
    real chunk is ~100 MB of JPEG bytes)."""

    def __init__(self, root: str | os.PathLike, split: str, *, cached_chunks: int = 2) -> None:
        if cached_chunks < 1:
            raise ValueError(f"cached_chunks must be at least 1, got {cached_chunks}")
        self.directory = Path(root) / split
        self.index = read_index(self.directory / "index.json")
        self.cached_chunks = cached_chunks
        self._cache: OrderedDict[str, dict[str, FrameSequence]] = OrderedDict()

    def _chunk(self, name: str) -> dict[str, FrameSequence]:
        if name not in self._cache:
            self._cache[name] = {sequence.key: sequence for sequence in read_chunk(self.directory / name)}
            while len(self._cache) > self.cached_chunks:
                self._cache.popitem(last=False)
        self._cache.move_to_end(name)
        return self._cache[name]

    def keys(self) -> list[str]:
        return list(self.index)

    def __getitem__(self, key: str) -> FrameSequence:
        if key not in self.index:
            raise KeyError(f"{key!r} is not in {self.directory / 'index.json'}")
        sequences = self._chunk(self.index[key])
        if key not in sequences:
            chunk = self.directory / self.index[key]
            raise ValueError(f"{chunk}: index.json puts key {key} in this chunk but it is not there")
        return sequences[key]

    def __iter__(self) -> Iterator[FrameSequence]:
        """Every indexed sequence, chunk by chunk (each chunk read once)."""
        return (self[key] for key in sorted(self.index, key=self.index.__getitem__))


# ---------------------------------------------------------------------------------------------------------------------
# Original RealEstate10K txt files


def _txt_row(path: Path, number: int, tokens: list[str]) -> tuple[int, list[float]]:
    """The timestamp and camera numbers of line `number` of a txt file."""
    if len(tokens) != 1 + CAMERA_COLUMNS:
        raise ValueError(f"{path}:{number}: expected {1 + CAMERA_COLUMNS} columns, got {len(tokens)}")
    try:
        timestamp = int(tokens[0])
    except ValueError:
        raise ValueError(f"{path}:{number}: timestamp {tokens[0]!r} is not an integer") from None
    try:
        row = [float(token) for token in tokens[1:]]
    except ValueError as error:
        raise ValueError(f"{path}:{number}: {error}") from None
    if not all(math.isfinite(value) for value in row):
        raise ValueError(f"{path}:{number}: camera numbers must be finite")
    if row[0] <= 0 or row[1] <= 0:
        raise ValueError(f"{path}:{number}: focal lengths fx, fy must be positive")
    return timestamp, row


def read_txt(path: str | os.PathLike, frames_dir: str | os.PathLike) -> FrameSequence:
    """One RealEstate10K txt file; its frames are `<frames_dir>/<timestamp>.jpg` (read lazily)."""
    path, frames_dir = Path(path), Path(frames_dir)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read RealEstate10K txt file ({error})") from None
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}:1: expected the video URL on the first line")
    timestamps: list[int] = []
    rows: list[list[float]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.split():
            continue
        timestamp, row = _txt_row(path, number, line.split())
        if timestamp in timestamps:
            raise ValueError(f"{path}:{number}: timestamp {timestamp} appears twice (frames are <timestamp>.jpg)")
        timestamps.append(timestamp)
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no frames after the URL line")
    intrinsics, world_to_cam = cameras_from_rows(torch.tensor(rows, dtype=torch.float64))
    frames = tuple(frames_dir / f"{timestamp}.jpg" for timestamp in timestamps)
    timestamps_tensor = torch.tensor(timestamps, dtype=torch.int64)
    return FrameSequence(
        path.stem, lines[0].strip(), timestamps_tensor, intrinsics.float(), world_to_cam.float(), frames, path
    )


def write_txt(path: str | os.PathLike, frames_dir: str | os.PathLike, sequence: FrameSequence) -> None:
    """Write a sequence in the original layout: `path` (URL + camera lines) and `<frames_dir>/<timestamp>.jpg`."""
    path, frames_dir = Path(path), Path(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    rows = rows_from_cameras(sequence.intrinsics, sequence.world_to_cam).tolist()
    lines = [sequence.url]
    for index, (timestamp, row) in enumerate(zip(sequence.timestamps.tolist(), rows, strict=True)):
        lines.append(" ".join([str(timestamp), *(repr(float(value)) for value in row)]))
        (frames_dir / f"{timestamp}.jpg").write_bytes(sequence.jpeg(index))
    path.write_text("\n".join(lines) + "\n")


class TxtDataset(SequenceDataset):
    """One split of the original layout. As in pixelSplat's converter and Flash3D's preprocessing, clips whose frame
    folder is missing (videos that could not be downloaded) are left out; a missing frame fails when it is read."""

    def __init__(self, root: str | os.PathLike, split: str) -> None:
        self.directory = Path(root) / split
        if not self.directory.is_dir():
            raise ValueError(f"{self.directory}: split folder not found")
        self.paths = {
            path.stem: path for path in sorted(self.directory.glob("*.txt")) if (self.directory / path.stem).is_dir()
        }

    def keys(self) -> list[str]:
        return list(self.paths)

    def __getitem__(self, key: str) -> FrameSequence:
        if key not in self.paths:
            raise KeyError(f"{key!r} has no txt file with a frame folder in {self.directory}")
        return read_txt(self.paths[key], self.directory / key)


def open_dataset(root: str | os.PathLike, split: str, *, cached_chunks: int = 2) -> ChunkDataset | TxtDataset:
    """The split in whichever layout `<root>/<split>` holds: `index.json` → chunks, otherwise txt files."""
    directory = Path(root) / split
    if (directory / "index.json").is_file():
        return ChunkDataset(root, split, cached_chunks=cached_chunks)
    if directory.is_dir() and any(directory.glob("*.txt")):
        return TxtDataset(root, split)
    raise ValueError(f"{directory}: neither a pixelSplat split (index.json) nor RealEstate10K txt files")


@dataclass(frozen=True)
class DataSource:
    """Where a run reads its frames: a root with train/ and test/ (either layout) and the evaluation split file."""

    root: Path
    split_file: Path
    synthetic: bool


# ---------------------------------------------------------------------------------------------------------------------
# Training examples


@dataclass(frozen=True)
class ExampleConfig:
    """How a training example is drawn (Flash3D, configs/dataset/re10k.yaml)."""

    size: tuple[int, int] = FLASH3D_SIZE  # (height, width) every frame is resized to; e.g. (64, 96) on CPU
    num_targets: int = 3  # target frames per example (Flash3D: gauss_novel_frames [-1, 1, 2])
    max_offset: int = MAX_OFFSET  # targets within ±max_offset frames of the source
    render_source: bool = True  # the source frame is a target too (Flash3D renders frame 0)

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (height, width) with positive entries, got {self.size}")
        if not 1 <= self.num_targets <= self.max_offset:
            raise ValueError(f"num_targets must be in [1, max_offset={self.max_offset}], got {self.num_targets}")


def sample_target_indices(
    num_views: int, source: int, num_targets: int, max_offset: int, generator: torch.Generator | None
) -> list[int]:
    """Distinct random target frames within ±max_offset of `source`, never the source, all inside the sequence
    (Flash3D draws `randperm(61)[:n] - 30` and clips to the sequence, which can repeat a frame; we draw among the
    offsets that stay inside it)."""
    if not 0 <= source < num_views:
        raise ValueError(f"source must be a frame index in [0, {num_views}), got {source}")
    window = [source + o for o in range(-max_offset, max_offset + 1) if o != 0 and 0 <= source + o < num_views]
    if len(window) < num_targets:
        raise ValueError(f"only {len(window)} frames within ±{max_offset} of {source}, need num_targets={num_targets}")
    order = torch.randperm(len(window), generator=generator)[:num_targets]
    return [window[i] for i in order.tolist()]


def load_example(
    sequence: FrameSequence, indices: list[int], size: tuple[int, int], *, render_source: bool = True
) -> ViewExample:
    """Frames `indices` of `sequence` resized to `size`; the first (the source) is the input view, the targets are
    all of them (`render_source`) or the frames after it. Cameras are relative to the source, in float64 (Flash3D's
    `process_gt_poses`: T_tgt_w2c @ T_src_c2w), with Flash3D's near / far planes."""
    if not indices or not all(0 <= i < len(sequence) for i in indices):
        raise ValueError(f"indices must be frame indices of {sequence.key} in [0, {len(sequence)}), got {indices}")
    world_to_cam = sequence.world_to_cam[indices].double()
    return make_example(
        sequence.key,
        torch.stack([sequence.image(i, size) for i in indices]),
        world_to_cam,
        pixel_intrinsics(sequence.intrinsics[indices], *size),
        0,
        range(0 if render_source else 1, len(indices)),
        near=NEAR,
        far=FAR,
        view_indices=torch.tensor(indices, dtype=torch.int64),
        cam_to_world=rigid_inverse(world_to_cam),
    )


class TrainingExamples:
    """Every (sequence, source frame) pair of a split (Flash3D's training index), with random targets per draw.
    Sequences of at most `num_targets` frames are left out. With real chunks and a small chunk cache, scattered draws
    re-read chunks: a paper-scale run wants a large `cached_chunks`."""

    def __init__(self, dataset: SequenceDataset, config: ExampleConfig) -> None:
        self.dataset = dataset
        self.config = config
        counts = {key: count for key, count in dataset.frame_counts().items() if count > config.num_targets}
        if not counts:
            raise ValueError(f"no sequence has more than num_targets={config.num_targets} frames")
        self.keys = sorted(counts)
        self.starts = torch.cumsum(torch.tensor([0] + [counts[key] for key in self.keys]), dim=0)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def pair(self, index: int) -> tuple[str, int]:
        """The (sequence key, source frame) of example `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"example index {index} out of range [0, {len(self)})")
        position = int(torch.searchsorted(self.starts, torch.tensor(index), right=True)) - 1
        return self.keys[position], index - int(self.starts[position])

    def example(self, index: int, generator: torch.Generator | None) -> ViewExample:
        """Pair `index` with `num_targets` random targets drawn from `generator`."""
        key, source = self.pair(index)
        sequence = self.dataset[key]
        cfg = self.config
        targets = sample_target_indices(len(sequence), source, cfg.num_targets, cfg.max_offset, generator)
        return load_example(sequence, [source, *targets], cfg.size, render_source=cfg.render_source)
