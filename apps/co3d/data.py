"""Co3D hydrant reader for the Splatter Image preprocessed layout: PyTorch3D → OpenCV cameras, the origin distance,
training examples relative to the input camera, and the evaluation protocol.

Layout (written by `preprocess.py` from raw Co3D v2, or by `synthetic.py`; Splatter Image
`data_preprocessing/preprocess_co3d.py` writes the same)::

    co3d_<category>_for_gs/<split>/camera_Rs.npz          PyTorch3D R per sequence, key = sequence name, [N 3 3]
                                  /camera_Ts.npz          PyTorch3D T per sequence, [N 3]
                                  /<sequence>/images_fg.npy     float [N 3 H W] in [0, 1], foreground on black (H = W)
                                             /focal_lengths.npy  [N 1 2] focal length (fx, fy) in NDC units
                                             /frame_order.txt    N lines, one per frame, in sequence order

with split in train/val/test. "View k" of a sequence is line k of `frame_order.txt` (row k of every array).
A sequence folder without `frame_order.txt` is not a sequence (Splatter Image leaves empty folders for sequences it
dropped for NaNs) and is skipped.

Cameras. PyTorch3D multiplies row vectors, `X_cam = X_world R + T`, with camera axes x left, y up, z forward; OpenCV
(our `Cameras`) uses x right, y down, z forward. Hence, with D = diag(-1, -1, 1),

    world_to_cam (OpenCV) = [[D R^T, D T], [0, 0, 0, 1]],

which is Splatter Image's `readCamerasFromNpy` (row-major [[R, 0], [T, 1]] times diag(-1, -1, 1, 1), transposed).
The principal point is the image centre (the preprocessing crops a square centred on it) and the focal length in
pixels is `focal_ndc * H / 2`: NDC spans [-1, 1] across the (square) image.

Origin distance (PixelNeRF, Splatter Image `get_origin_distance`): the depth of the world origin, the centre of the
normalised object, along the camera's optical axis, dot(-C, z) for camera centre C and optical axis z (both in world
coordinates). It is computed from the world-frame pose *before* cameras are made relative to the input view; the
hydrant preset of the teacher predicts depth in [origin distance - 2, origin distance + 2] (znear -2, zfar 2).

Evaluation protocol (Splatter Image `eval.py`, `datasets/co3d.py`): test split; the input is view 0 (the first line
of `frame_order.txt`), the targets are every other view; views whose ground truth is all black (no foreground) are
skipped; metrics on the full 128 x 128 image with a black background; the mean over each sequence's views, then the
mean over sequences (`splat_train.metrics.MetricAccumulator`). The input view is scored separately (`*_input`).

Excluded sequences (NaNs, no foreground in the input frame, cameras too close / far, low quality) are listed per
category in `bad_sequences.json` next to this file, transcribed from Splatter Image.
"""

import argparse
import json
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from splat_render import Cameras, rigid_inverse
from splat_train.metrics import MetricAccumulator, image_metrics

SPLITS = ("train", "val", "test")
CO3D_RESOLUTION = 128
"""Side of the preprocessed square images (Splatter Image's `training_resolution`)."""
EVAL_INPUT_VIEW = 0
"""Input view of the evaluation protocol: the first frame of each test sequence."""
ORIGIN_DEPTH_RANGE = (-2.0, 2.0)
"""(znear, zfar) of the hydrant teacher preset: predicted depths lie in origin distance + [znear, zfar]."""
BACKGROUND = 0.0
"""Co3D images are composited on black; renders for loss and evaluation use the same background."""
RENDER_NEAR = 0.2
"""Camera near plane of the returned `Cameras`; the 3DGS rasterizer Splatter Image renders with culls z <= 0.2."""
RENDER_FAR = 1000.0
BAD_SEQUENCES_PATH = Path(__file__).resolve().with_name("bad_sequences.json")
IMAGE_RANGE_TOLERANCE = 1e-3  # images_fg values outside [-tol, 1 + tol] are an error, inside they are clamped
ROTATION_TOLERANCE = 1e-3  # max |R^T R - I| and |det R - 1| accepted for a PyTorch3D rotation

_FLIP_XY = (-1.0, -1.0, 1.0)  # PyTorch3D (x left, y up) -> OpenCV (x right, y down) camera axes


class Co3DDataError(ValueError):
    """A malformed file or folder of a preprocessed Co3D dataset; `path` names it and `problem` says what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# --------------------------------------------------------------------------------------------------------------------
# Camera conventions


def opencv_world_to_cam(R: Float[Tensor, "*batch 3 3"], T: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 4 4"]:
    """OpenCV world-to-camera [[D R^T, D T], [0 0 0 1]] of PyTorch3D cameras (X_cam = X_world R + T, x left, y up),
    with D = diag(-1, -1, 1) flipping x and y."""
    flip = torch.tensor(_FLIP_XY, dtype=R.dtype, device=R.device)
    rotation = flip[:, None] * R.transpose(-1, -2)
    translation = flip * T
    top = torch.cat([rotation, translation[..., :, None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 3] = 1
    return torch.cat([top, bottom], dim=-2)


def pytorch3d_from_opencv(
    world_to_cam: Float[Tensor, "*batch 4 4"],
) -> tuple[Float[Tensor, "*batch 3 3"], Float[Tensor, "*batch 3"]]:
    """The inverse of `opencv_world_to_cam`: PyTorch3D (R, T) of an OpenCV world-to-camera transform."""
    flip = torch.tensor(_FLIP_XY, dtype=world_to_cam.dtype, device=world_to_cam.device)
    R = (flip[:, None] * world_to_cam[..., :3, :3]).transpose(-1, -2)
    T = flip * world_to_cam[..., :3, 3]
    return R, T


def focal_ndc_to_pixels(focal_ndc: Float[Tensor, "*batch 2"], resolution: int) -> Float[Tensor, "*batch 2"]:
    """Focal lengths in pixels of a square `resolution` image whose NDC range [-1, 1] spans the image."""
    return focal_ndc * (resolution / 2)


def co3d_intrinsics(focal_ndc: Float[Tensor, "*batch 2"], resolution: int) -> Float[Tensor, "*batch 3 3"]:
    """Pixel K of a preprocessed frame: focal `focal_ndc * resolution / 2`, principal point at the image centre."""
    focal = focal_ndc_to_pixels(focal_ndc, resolution)
    K = torch.zeros(*focal_ndc.shape[:-1], 3, 3, dtype=focal_ndc.dtype, device=focal_ndc.device)
    K[..., 0, 0] = focal[..., 0]
    K[..., 1, 1] = focal[..., 1]
    K[..., 0, 2] = resolution / 2
    K[..., 1, 2] = resolution / 2
    K[..., 2, 2] = 1
    return K


def origin_distance(cam_to_world: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch"]:
    """Depth of the world origin along each camera's optical axis, dot(-C, z) (PixelNeRF / Splatter Image)."""
    centre = cam_to_world[..., :3, 3]
    optical_axis = cam_to_world[..., :3, 2]
    return (-centre * optical_axis).sum(dim=-1)


def relative_world_to_cam(
    input_cam_to_world: Float[Tensor, "4 4"], world_to_cam: Float[Tensor, "views 4 4"]
) -> Float[Tensor, "views 4 4"]:
    """World-to-camera of each view in the input camera's frame, w2c_j @ c2w_input (float64 inside)."""
    relative = world_to_cam.double() @ input_cam_to_world.double()
    return relative.to(world_to_cam.dtype)


# --------------------------------------------------------------------------------------------------------------------
# Excluded sequences (a data file)


def load_bad_sequences(category: str, path: str | Path = BAD_SEQUENCES_PATH) -> dict[str, tuple[str, ...]]:
    """Excluded sequences of `category` by reason (`nan`, `low_quality`, ...); {} for a category the file lacks."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise Co3DDataError(path, "missing bad-sequence list") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Co3DDataError(path, f"unreadable bad-sequence list: {error}") from None
    categories = document.get("categories") if isinstance(document, dict) else None
    if not isinstance(categories, dict):
        raise Co3DDataError(path, "bad-sequence list must be a JSON object with a 'categories' object")
    lists = categories.get(category, {})
    result = {}
    for reason, entry in lists.items():
        names = entry.get("sequences") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise Co3DDataError(path, f"categories.{category}.{reason}.sequences must be a list of strings")
        result[reason] = tuple(names)
    return result


def excluded_sequences(category: str, path: str | Path = BAD_SEQUENCES_PATH) -> frozenset[str]:
    """Union of every exclusion list of `category` (Splatter Image skips them in training and evaluation)."""
    return frozenset(name for names in load_bad_sequences(category, path).values() for name in names)


def infer_category(root: str | Path) -> str:
    """`hydrant` for `.../co3d_hydrant_for_gs` (Splatter Image's folder name)."""
    name = Path(root).name
    if name.startswith("co3d_") and name.endswith("_for_gs") and len(name) > len("co3d__for_gs"):
        return name[len("co3d_") : -len("_for_gs")]
    raise Co3DDataError(root, "cannot tell the category: expected a folder named co3d_<category>_for_gs")


# --------------------------------------------------------------------------------------------------------------------
# Files


def read_frame_order(path: str | Path) -> tuple[str, ...]:
    """Non-empty lines of `frame_order.txt`, one per view."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise Co3DDataError(path, "missing frame_order.txt") from None
    except (OSError, UnicodeDecodeError) as error:
        raise Co3DDataError(path, f"unreadable frame order: {error}") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise Co3DDataError(path, "frame order lists no frames")
    return names


def _open_npy(path: Path, what: str) -> np.ndarray:
    """Memory-map a .npy file (never unpickling); Co3DDataError naming the path if it cannot be read."""
    if not path.is_file():
        raise Co3DDataError(path, f"missing {what}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise Co3DDataError(path, f"unreadable {what} (expected a plain numeric .npy array): {error}") from None


def load_camera_archive(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a `camera_Rs.npz` / `camera_Ts.npz` (never unpickling), keyed by sequence name."""
    path = Path(path)
    if not path.is_file():
        raise Co3DDataError(path, "missing camera archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for key in archive.files:
                try:
                    arrays[key] = np.asarray(archive[key])
                except ValueError as error:
                    raise Co3DDataError(path, f"entry {key!r} is not a plain numeric array: {error}") from None
    except Co3DDataError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise Co3DDataError(path, f"unreadable camera archive (expected an .npz of numeric arrays): {error}") from None
    return arrays


def _check_numeric(path: Path, array: np.ndarray, what: str) -> None:
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise Co3DDataError(path, f"{what} has dtype {array.dtype}, expected a numeric array")


def check_rotations(path: Path, what: str, R: np.ndarray) -> None:
    """Co3DDataError unless every R is a finite rotation matrix (orthonormal, det +1)."""
    if not np.isfinite(R).all():
        raise Co3DDataError(path, f"{what} has non-finite values")
    R64 = R.astype(np.float64)
    orthogonality = np.abs(np.swapaxes(R64, -1, -2) @ R64 - np.eye(3)).max(initial=0.0)
    determinant = np.abs(np.linalg.det(R64) - 1).max(initial=0.0)
    if orthogonality > ROTATION_TOLERANCE or determinant > ROTATION_TOLERANCE:
        raise Co3DDataError(
            path,
            f"{what} is not a rotation (max |R^T R - I| = {orthogonality:.3g}, max |det R - 1| = {determinant:.3g})",
        )


@dataclass(frozen=True)
class SequenceFiles:
    """Where one sequence's data lives: its folder and the split's camera archives (entry `name`)."""

    name: str
    directory: Path
    rotations: Path
    translations: Path

    @property
    def images(self) -> Path:
        return self.directory / "images_fg.npy"

    @property
    def focal_lengths(self) -> Path:
        return self.directory / "focal_lengths.npy"

    @property
    def frame_order(self) -> Path:
        return self.directory / "frame_order.txt"


@dataclass(frozen=True)
class Co3DSequence:
    """Some (or all) views of one sequence in the dataset's world frame (OpenCV cameras)."""

    name: str
    images: Float[Tensor, "views 3 height width"]
    """Foreground on black, in [0, 1]."""
    focal_ndc: Float[Tensor, "views 2"]
    world_to_cam: Float[Tensor, "views 4 4"]
    K: Float[Tensor, "views 3 3"]
    views: Int[Tensor, " views"]
    """Position of each view in the sequence's frame order."""
    frame_names: tuple[str, ...]

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    @property
    def cam_to_world(self) -> Float[Tensor, "views 4 4"]:
        return rigid_inverse(self.world_to_cam.double()).to(self.world_to_cam.dtype)

    @property
    def origin_distances(self) -> Float[Tensor, " views"]:
        return origin_distance(self.cam_to_world.double()).to(self.world_to_cam.dtype)


def read_sequence(
    files: SequenceFiles,
    R_all: np.ndarray,
    T_all: np.ndarray,
    views: Sequence[int] | None = None,
    resolution: int | None = None,
) -> Co3DSequence:
    """Read `views` (positions in the frame order; default all) of a sequence, validating every file involved.

    `R_all`, `T_all` are the sequence's entries of `camera_Rs.npz` / `camera_Ts.npz`. `resolution` resizes the images
    (antialiased bilinear); the NDC focal lengths hold at any resolution.
    """
    names = read_frame_order(files.frame_order)
    count = len(names)
    images = _open_npy(files.images, "images_fg.npy")
    focal = _open_npy(files.focal_lengths, "focal_lengths.npy")
    _check_numeric(files.images, images, "images_fg.npy")
    _check_numeric(files.focal_lengths, focal, "focal_lengths.npy")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise Co3DDataError(files.images, f"images must have shape [N 3 H H] (square RGB), got {list(images.shape)}")
    if focal.ndim != 3 or focal.shape[1:] != (1, 2):
        raise Co3DDataError(files.focal_lengths, f"focal lengths must have shape [N 1 2], got {list(focal.shape)}")
    if R_all.ndim != 3 or R_all.shape[1:] != (3, 3):
        raise Co3DDataError(files.rotations, f"entry {files.name!r} must have shape [N 3 3], got {list(R_all.shape)}")
    if T_all.ndim != 2 or T_all.shape[1:] != (3,):
        raise Co3DDataError(files.translations, f"entry {files.name!r} must have shape [N 3], got {list(T_all.shape)}")
    counts = {
        files.frame_order: count,
        files.images: images.shape[0],
        files.focal_lengths: focal.shape[0],
        files.rotations: R_all.shape[0],
        files.translations: T_all.shape[0],
    }
    if len(set(counts.values())) > 1:  # name the file that disagrees with the most common count
        values = list(counts.values())
        majority = max(values, key=lambda n: (values.count(n), n == images.shape[0]))
        odd = next(path for path, n in counts.items() if n != majority)
        found = ", ".join(f"{p.name}: {c}" for p, c in counts.items())
        raise Co3DDataError(odd, f"frame count mismatch in sequence {files.name!r} ({found})")
    positions = list(range(count)) if views is None else [int(v) for v in views]
    for v in positions:
        if not 0 <= v < count:
            raise ValueError(f"view {v} out of range for sequence {files.name!r} with {count} views")
    index = np.asarray(positions, dtype=np.int64)

    pixels = np.asarray(images[index], dtype=np.float32)
    if not np.isfinite(pixels).all():
        raise Co3DDataError(files.images, f"non-finite values in views {sorted(set(positions))}")
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if low < -IMAGE_RANGE_TOLERANCE or high > 1 + IMAGE_RANGE_TOLERANCE:
        raise Co3DDataError(files.images, f"values must lie in [0, 1], found [{low:.4g}, {high:.4g}]")
    focal_ndc = np.asarray(focal[index, 0], dtype=np.float64)
    if not np.isfinite(focal_ndc).all() or (focal_ndc <= 0).any():
        raise Co3DDataError(files.focal_lengths, "focal lengths must be finite and positive")
    R = np.asarray(R_all[index], dtype=np.float64)
    T = np.asarray(T_all[index], dtype=np.float64)
    check_rotations(files.rotations, f"entry {files.name!r}", R)
    if not np.isfinite(T).all():
        raise Co3DDataError(files.translations, f"entry {files.name!r} has non-finite values")

    image_tensor = torch.from_numpy(pixels).clamp_(0, 1)
    side = image_tensor.shape[-1]
    if resolution is not None and resolution != side:
        image_tensor = resize_images(image_tensor, resolution)
        side = resolution
    focal_tensor = torch.from_numpy(focal_ndc)
    return Co3DSequence(
        name=files.name,
        images=image_tensor,
        focal_ndc=focal_tensor.float(),
        world_to_cam=opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T)).float(),
        K=co3d_intrinsics(focal_tensor, side).float(),
        views=torch.as_tensor(positions, dtype=torch.long),
        frame_names=tuple(names[v] for v in positions),
    )


def resize_images(
    images: Float[Tensor, "*batch 3 height width"], resolution: int
) -> Float[Tensor, "*batch 3 resolution resolution"]:
    """Antialiased bilinear resize to a square `resolution`, clamped to [0, 1]."""
    leading = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    resized = F.interpolate(flat, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1).reshape(*leading, 3, resolution, resolution)


# --------------------------------------------------------------------------------------------------------------------
# Examples


@dataclass(frozen=True)
class Co3DExample:
    """One sequence seen from an input view, with target views. Cameras are relative to the input camera, so
    `input_camera.world_to_cam` is the identity; origin distances come from the dataset's world frame."""

    sequence: str
    input_image: Float[Tensor, "3 height width"]
    input_camera: Cameras  # batch 1, views 1
    input_origin_distance: Float[Tensor, ""]
    target_images: Float[Tensor, "views 3 height width"]
    target_cameras: Cameras  # batch 1, views
    target_origin_distances: Float[Tensor, " views"]
    """Origin distance of each target view (the conditioning value when a target render is fed back as input)."""
    input_view: int
    target_views: Int[Tensor, " views"]
    input_cam_to_world: Float[Tensor, "4 4"]
    """The input camera's pose in the dataset's world frame (maps the example's frame back to the dataset's)."""


@dataclass(frozen=True)
class Co3DBatch:
    """`collate`d examples, batch dimension first."""

    sequences: tuple[str, ...]
    input_images: Float[Tensor, "batch 3 height width"]
    input_cameras: Cameras  # batch, views 1
    input_origin_distances: Float[Tensor, " batch"]
    target_images: Float[Tensor, "batch views 3 height width"]
    target_cameras: Cameras  # batch, views
    target_origin_distances: Float[Tensor, "batch views"]
    input_views: Int[Tensor, " batch"]
    target_views: Int[Tensor, "batch views"]
    input_cam_to_world: Float[Tensor, "batch 4 4"]

    def to(self, device: torch.device | str) -> "Co3DBatch":
        return Co3DBatch(
            sequences=self.sequences,
            input_images=self.input_images.to(device),
            input_cameras=self.input_cameras.to(device),
            input_origin_distances=self.input_origin_distances.to(device),
            target_images=self.target_images.to(device),
            target_cameras=self.target_cameras.to(device),
            target_origin_distances=self.target_origin_distances.to(device),
            input_views=self.input_views.to(device),
            target_views=self.target_views.to(device),
            input_cam_to_world=self.input_cam_to_world.to(device),
        )


def make_example(
    sequence: Co3DSequence,
    input_position: int,
    target_positions: Sequence[int],
    near: float = RENDER_NEAR,
    far: float = RENDER_FAR,
) -> Co3DExample:
    """An example from loaded views; positions index `sequence` (not the full frame order)."""
    targets = torch.as_tensor(list(target_positions), dtype=torch.long)
    side = sequence.images.shape[-1]
    cam_to_world = sequence.cam_to_world
    distances = sequence.origin_distances  # world frame, before making cameras relative
    c2w_input = cam_to_world[input_position]
    input_camera = Cameras(
        world_to_cam=torch.eye(4, dtype=sequence.world_to_cam.dtype)[None, None],
        K=sequence.K[input_position][None, None],
        width=side,
        height=side,
        near=near,
        far=far,
    )
    target_cameras = Cameras(
        world_to_cam=relative_world_to_cam(c2w_input, sequence.world_to_cam[targets])[None],
        K=sequence.K[targets][None],
        width=side,
        height=side,
        near=near,
        far=far,
    )
    return Co3DExample(
        sequence=sequence.name,
        input_image=sequence.images[input_position],
        input_camera=input_camera,
        input_origin_distance=distances[input_position],
        target_images=sequence.images[targets],
        target_cameras=target_cameras,
        target_origin_distances=distances[targets],
        input_view=int(sequence.views[input_position]),
        target_views=sequence.views[targets],
        input_cam_to_world=c2w_input,
    )


def sample_view_indices(
    num_views: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
) -> tuple[int, list[int]]:
    """Random distinct views (input, targets). With `include_input_in_targets` (Splatter Image's scheme) draw
    `num_targets` views: the first is the input and all are targets; otherwise the input is drawn in addition."""
    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")
    needed = num_targets if include_input_in_targets else num_targets + 1
    if needed > num_views:
        raise ValueError(f"num_targets={num_targets} needs {needed} distinct views but the sequence has {num_views}")
    drawn = torch.randperm(num_views, generator=generator)[:needed].tolist()
    return drawn[0], drawn if include_input_in_targets else drawn[1:]


def evaluation_view_indices(num_views: int, input_view: int = EVAL_INPUT_VIEW) -> tuple[int, list[int]]:
    """The protocol's views: `input_view` is the input, every other view is a target (in frame order)."""
    if not 0 <= input_view < num_views:
        raise ValueError(
            f"input_view must be in [0, {num_views}) for a sequence of {num_views} views, got {input_view}"
        )
    return input_view, [v for v in range(num_views) if v != input_view]


def is_black(images: Float[Tensor, "*batch 3 height width"]) -> Bool[Tensor, "*batch"]:
    """True for images that are exactly zero everywhere (Co3D frames whose foreground mask is empty)."""
    return (images == 0).flatten(-3).all(dim=-1)


def collate(examples: Sequence[Co3DExample]) -> Co3DBatch:
    """Stack examples (same image size and number of targets) into a batch."""
    if not examples:
        raise ValueError("collate needs at least one example")
    shapes = {e.target_images.shape for e in examples}
    if len(shapes) != 1 or len({e.input_image.shape for e in examples}) != 1:
        raise ValueError(f"examples must share image size and number of targets, got target shapes {sorted(shapes)}")
    return Co3DBatch(
        sequences=tuple(e.sequence for e in examples),
        input_images=torch.stack([e.input_image for e in examples]),
        input_cameras=Cameras.cat([e.input_camera for e in examples], along="batch"),
        input_origin_distances=torch.stack([e.input_origin_distance for e in examples]),
        target_images=torch.stack([e.target_images for e in examples]),
        target_cameras=Cameras.cat([e.target_cameras for e in examples], along="batch"),
        target_origin_distances=torch.stack([e.target_origin_distances for e in examples]),
        input_views=torch.tensor([e.input_view for e in examples], dtype=torch.long),
        target_views=torch.stack([e.target_views for e in examples]),
        input_cam_to_world=torch.stack([e.input_cam_to_world for e in examples]),
    )


# --------------------------------------------------------------------------------------------------------------------
# Dataset


class Co3DDataset:
    """Sequences of one split of a preprocessed Co3D dataset, sorted by name, bad sequences excluded; each sequence is
    read from disk (memory-mapped, only the views asked for) when needed.

    `root` is the `co3d_<category>_for_gs` folder. `exclude` defaults to every list of the category in
    `bad_sequences.json` (`bad_sequences`); a category the file lacks (e.g. `synthetic`) excludes nothing.
    `resolution` resizes images (CPU presets); cameras follow from the NDC focal lengths.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        category: str | None = None,
        exclude: Collection[str] | None = None,
        bad_sequences: str | Path = BAD_SEQUENCES_PATH,
        resolution: int | None = None,
        near: float = RENDER_NEAR,
        far: float = RENDER_FAR,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
            raise ValueError(f"resolution must be a positive int or None, got {resolution!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise Co3DDataError(self.root, "dataset root is not a folder")
        self.category = category or infer_category(self.root)
        self.split = split
        self.directory = self.root / split
        if not self.directory.is_dir():
            raise Co3DDataError(self.directory, f"missing split folder for split {split!r}")
        self.excluded = frozenset(exclude) if exclude is not None else excluded_sequences(self.category, bad_sequences)
        self.resolution = resolution
        self.near, self.far = near, far
        self.rotations_path = self.directory / "camera_Rs.npz"
        self.translations_path = self.directory / "camera_Ts.npz"
        self._rotations = load_camera_archive(self.rotations_path)
        self._translations = load_camera_archive(self.translations_path)

        folders = sorted(p for p in self.directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.incomplete = tuple(p.name for p in folders if not (p / "frame_order.txt").is_file())
        """Folders without frame_order.txt (Splatter Image leaves them for sequences dropped for NaNs)."""
        complete = [p.name for p in folders if (p / "frame_order.txt").is_file()]
        self.skipped = tuple(name for name in complete if name in self.excluded)
        self.sequence_names = tuple(name for name in complete if name not in self.excluded)
        for name in self.sequence_names:
            for path, archive in ((self.rotations_path, self._rotations), (self.translations_path, self._translations)):
                if name not in archive:
                    raise Co3DDataError(path, f"no entry for sequence {name!r}")
                _check_numeric(path, archive[name], f"entry {name!r}")

    def __len__(self) -> int:
        return len(self.sequence_names)

    def __repr__(self) -> str:
        return (
            f"Co3DDataset({str(self.directory)!r}, sequences={len(self)}, excluded={len(self.skipped)}, "
            f"resolution={self.resolution})"
        )

    def files(self, index: int) -> SequenceFiles:
        name = self.sequence_names[index]
        return SequenceFiles(name, self.directory / name, self.rotations_path, self.translations_path)

    def num_views(self, index: int) -> int:
        return len(read_frame_order(self.files(index).frame_order))

    def load(self, index: int, views: Sequence[int] | None = None) -> Co3DSequence:
        """Read `views` (positions in the frame order; default all) of sequence `index`."""
        files = self.files(index)
        return read_sequence(files, self._rotations[files.name], self._translations[files.name], views, self.resolution)

    def __getitem__(self, index: int) -> Co3DSequence:
        return self.load(index)

    def training_example(
        self, index: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
    ) -> Co3DExample:
        """Random input and targets (`sample_view_indices`); only the chosen views are read."""
        input_view, target_views = sample_view_indices(
            self.num_views(index), num_targets, generator, include_input_in_targets
        )
        unique = sorted({input_view, *target_views})
        sequence = self.load(index, unique)
        positions = [unique.index(v) for v in target_views]
        return make_example(sequence, unique.index(input_view), positions, self.near, self.far)

    def sample_batch(
        self, batch_size: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
    ) -> Co3DBatch:
        """`batch_size` training examples of sequences drawn uniformly with replacement, collated."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not len(self):
            raise ValueError(f"{self!r} has no sequences to sample")
        indices = torch.randint(len(self), (batch_size,), generator=generator).tolist()
        return collate([self.training_example(i, num_targets, generator, include_input_in_targets) for i in indices])

    def evaluation_example(
        self,
        index: int,
        input_view: int = EVAL_INPUT_VIEW,
        *,
        skip_black_targets: bool = True,
        include_input_in_targets: bool = True,
    ) -> Co3DExample:
        """The test protocol: `input_view` in; every other view out, all-black ones dropped. With
        `include_input_in_targets` the input view is also the first target (scored separately as `*_input`)."""
        input_view, others = evaluation_view_indices(self.num_views(index), input_view)
        sequence = self.load(index)
        if skip_black_targets:
            black = is_black(sequence.images)
            others = [v for v in others if not bool(black[v])]
        targets = [input_view, *others] if include_input_in_targets else others
        if not targets:
            raise ValueError(f"sequence {sequence.name!r} has no non-black target view")
        return make_example(sequence, input_view, targets, self.near, self.far)


# --------------------------------------------------------------------------------------------------------------------
# Evaluation


RenderViews = Callable[[Co3DExample], Float[Tensor, "views 3 height width"]]
"""A reconstructor under test: from an example (input image, cameras, origin distance) to renders of its targets
(on a black background, `BACKGROUND`)."""


def score_example(
    accumulator: MetricAccumulator,
    example: Co3DExample,
    predictions: Float[Tensor, "views 3 height width"],
    lpips_model: nn.Module | None = None,
    chunk: int = 32,
) -> int:
    """Add the scores of every non-black target of `example` to `accumulator` (the input view as `*_input`);
    returns the number of novel views scored. Full images, no clamping (Splatter Image's `Metricator`)."""
    if predictions.shape != example.target_images.shape:
        raise ValueError(
            f"predictions must match the targets {list(example.target_images.shape)}, got {list(predictions.shape)}"
        )
    keep = ~is_black(example.target_images)
    is_input = example.target_views == example.input_view
    scored = 0
    with torch.no_grad():
        for selection, as_input in ((keep & ~is_input, False), (keep & is_input, True)):
            index = selection.nonzero().flatten()
            for start in range(0, index.numel(), chunk):
                part = index[start : start + chunk]
                target = example.target_images[part].to(predictions.device)
                scores = image_metrics(predictions[part].to(target.dtype), target, lpips_model)
                accumulator.add(example.sequence, scores, is_input=as_input)
            scored += 0 if as_input else index.numel()
    return scored


def evaluate(
    dataset: Co3DDataset,
    render_views: RenderViews,
    *,
    lpips_model: nn.Module | None = None,
    input_view: int = EVAL_INPUT_VIEW,
    max_sequences: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> MetricAccumulator:
    """Run the evaluation protocol over the dataset's sequences (the test split for reported numbers).

    Per sequence: `evaluation_example` (input view, non-black targets, the input view included as first target),
    `render_views(example)`, `score_example`. `accumulator.summary()` then holds the mean over sequences of each
    sequence's mean over views (`psnr`, `ssim`, `lpips`, and `*_input`).
    """
    accumulator = MetricAccumulator()
    count = len(dataset) if max_sequences is None else min(max_sequences, len(dataset))
    for index in range(count):
        example = dataset.evaluation_example(index, input_view)
        predictions = render_views(example)
        score_example(accumulator, example, predictions, lpips_model)
        if progress is not None:
            progress(index + 1, count, example.sequence)
    return accumulator


# --------------------------------------------------------------------------------------------------------------------
# Whole-dataset check


@dataclass(frozen=True)
class SplitCheck:
    split: str
    sequences: int = 0
    views: int = 0
    excluded: int = 0
    problems: tuple[Co3DDataError, ...] = ()


@dataclass(frozen=True)
class DatasetCheck:
    root: Path
    splits: tuple[SplitCheck, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> tuple[Co3DDataError, ...]:
        return tuple(p for s in self.splits for p in s.problems)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(root: str | Path, splits: Sequence[str] = SPLITS, category: str | None = None) -> DatasetCheck:
    """Read every view of every (non-excluded) sequence of the given splits; list every problem with its path."""
    root = Path(root)
    checks = []
    for split in splits:
        try:
            dataset = Co3DDataset(root, split, category=category)
        except Co3DDataError as error:
            checks.append(SplitCheck(split, problems=(error,)))
            continue
        views, problems = 0, []
        for index in range(len(dataset)):
            try:
                views += dataset.load(index).num_views
            except Co3DDataError as error:
                problems.append(error)
        if not len(dataset):
            problems.append(Co3DDataError(dataset.directory, "split has no sequences"))
        checks.append(SplitCheck(split, len(dataset), views, len(dataset.skipped), tuple(problems)))
    return DatasetCheck(root, tuple(checks))


def format_check(check: DatasetCheck) -> str:
    lines = [f"Co3D dataset {check.root}"]
    for split in check.splits:
        lines.append(
            f"  {split.split:5s}  sequences {split.sequences:5d}  views {split.views:7d}  excluded {split.excluded:4d}"
            f"  problems {len(split.problems)}"
        )
    lines.extend(f"  problem: {problem}" for problem in check.problems)
    lines.append("OK" if check.ok else f"{len(check.problems)} problem(s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="apps/co3d/data.py")
    parser.add_argument(
        "--check-data", type=Path, required=True, metavar="PATH", help="dataset root, the co3d_<category>_for_gs folder"
    )
    parser.add_argument("--split", action="append", choices=SPLITS, help="split(s) to check (default: all three)")
    parser.add_argument("--category", default=None, help="category (default: from the folder name)")
    args = parser.parse_args(argv)
    check = check_dataset(args.check_data, args.split or SPLITS, args.category)
    print(format_check(check))
    return 0 if check.ok else 1


__all__ = [
    "BACKGROUND",
    "BAD_SEQUENCES_PATH",
    "CO3D_RESOLUTION",
    "EVAL_INPUT_VIEW",
    "ORIGIN_DEPTH_RANGE",
    "RENDER_FAR",
    "RENDER_NEAR",
    "SPLITS",
    "Co3DBatch",
    "Co3DDataError",
    "Co3DDataset",
    "Co3DExample",
    "Co3DSequence",
    "RenderViews",
    "SequenceFiles",
    "check_dataset",
    "co3d_intrinsics",
    "collate",
    "evaluate",
    "evaluation_view_indices",
    "excluded_sequences",
    "focal_ndc_to_pixels",
    "infer_category",
    "is_black",
    "load_bad_sequences",
    "load_camera_archive",
    "make_example",
    "opencv_world_to_cam",
    "origin_distance",
    "pytorch3d_from_opencv",
    "read_frame_order",
    "read_sequence",
    "relative_world_to_cam",
    "resize_images",
    "sample_view_indices",
    "score_example",
]


if __name__ == "__main__":
    sys.exit(main())
