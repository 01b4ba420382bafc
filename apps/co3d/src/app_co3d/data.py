"""Co3D reader for the Splatter Image preprocessed layout: PyTorch3D → OpenCV cameras, the origin distance, training
and evaluation examples relative to the input camera, and the `--check-data` report.

Layout (written by `preprocess.py` from raw Co3D v2, by `synthetic.py`, or by Splatter Image's
`data_preprocessing/preprocess_co3d.py`)::

    co3d_<category>_for_gs/<split>/camera_Rs.npz          PyTorch3D R per sequence, key = sequence name, [N 3 3]
                                  /camera_Ts.npz          PyTorch3D T per sequence, [N 3]
                                  /<sequence>/images_fg.npy     float [N 3 H W] in [0, 1], foreground on black (H = W)
                                             /focal_lengths.npy  [N 1 2] focal length (fx, fy) in NDC units
                                             /frame_order.txt    N lines, one per frame, in sequence order

with split in train/val/test. "View k" of a sequence is line k of `frame_order.txt` (row k of every array). A folder
without `frame_order.txt` is not a sequence (Splatter Image leaves empty folders for sequences it dropped for NaNs);
the sequences listed per category in `bad_sequences.json` (transcribed from Splatter Image: NaNs, no foreground in the
input frame, cameras too close / far, low quality) are excluded.

Cameras. PyTorch3D multiplies row vectors, `X_cam = X_world R + T`, with camera axes x left, y up, z forward; OpenCV
(our `Cameras`) uses x right, y down, z forward. Hence, with D = diag(-1, -1, 1), world_to_cam (OpenCV) =
[[D R^T, D T], [0, 0, 0, 1]] (Splatter Image's `readCamerasFromNpy`). The principal point is the image centre and the
focal length in pixels `focal_ndc * H / 2`: NDC spans [-1, 1] across the (square) image.

Origin distance (PixelNeRF, Splatter Image `get_origin_distance`): the depth dot(-C, z) of the world origin, the
centre of the normalised object, along the optical axis (camera centre C, optical axis z, in world coordinates). It is
computed from the world-frame pose, before cameras are made relative to the input view, and travels with every
example as the teacher input `origin_distance`; the `hydrants` head predicts depths in origin distance + [-2, 2].
"""

import json
import sys
import tokenize
import zipfile
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from splat_apps.datacheck import DataError, DatasetCheck, SplitCheck, check_command
from splat_apps.views import ViewExample, drawn_views, evaluation_view_indices, make_example, resize_images
from splat_render import rigid_inverse

SPLITS = ("train", "val", "test")
EVAL_INPUT_VIEW = 0  # the protocol's input view: the first frame of each sequence
BACKGROUND = 0.0  # Co3D frames are foreground on black; renders for loss and evaluation use the same background
RENDER_NEAR = 0.2  # near plane of the cameras (the 3DGS rasterizer Splatter Image renders with culls z <= 0.2)
RENDER_FAR = 1000.0
BAD_SEQUENCES_PATH = Path(__file__).resolve().with_name("bad_sequences.json")
IMAGE_RANGE_TOLERANCE = 1e-3  # images_fg values outside [-tol, 1 + tol] are an error, inside they are clamped
ROTATION_TOLERANCE = 1e-3  # max |R^T R - I| and |det R - 1| accepted for a PyTorch3D rotation

NPY_ERRORS = (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zlib.error)
"""What numpy raises for a broken .npy / .npz (a garbled header reaches its tokenizer, a broken zip its zipfile)."""
_FLIP_XY = (-1.0, -1.0, 1.0)  # PyTorch3D (x left, y up) -> OpenCV (x right, y down) camera axes


class Co3DDataError(DataError):
    """A malformed file or folder of a preprocessed Co3D dataset; `path` names it and `problem` says what is wrong."""


# --------------------------------------------------------------------------------------------------------------------
# Camera conventions


def opencv_world_to_cam(R: Float[Tensor, "*batch 3 3"], T: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 4 4"]:
    """OpenCV world-to-camera [[D R^T, D T], [0 0 0 1]] of PyTorch3D cameras (X_cam = X_world R + T, x left, y up),
    with D = diag(-1, -1, 1) flipping x and y."""
    flip = torch.tensor(_FLIP_XY, dtype=R.dtype, device=R.device)
    world_to_cam = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    world_to_cam[..., :3, :3] = flip[:, None] * R.transpose(-1, -2)
    world_to_cam[..., :3, 3] = flip * T
    world_to_cam[..., 3, 3] = 1
    return world_to_cam


def co3d_intrinsics(focal_ndc: Float[Tensor, "*batch 2"], resolution: int) -> Float[Tensor, "*batch 3 3"]:
    """Pixel K of a square `resolution` frame: focal `focal_ndc * resolution / 2`, principal point at the centre."""
    K = torch.zeros(*focal_ndc.shape[:-1], 3, 3, dtype=focal_ndc.dtype, device=focal_ndc.device)
    K[..., [0, 1], [0, 1]] = focal_ndc * (resolution / 2)  # fx, fy on the diagonal
    K[..., :2, 2] = resolution / 2
    K[..., 2, 2] = 1
    return K


def origin_distance(cam_to_world: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch"]:
    """Depth of the world origin along each camera's optical axis, dot(-C, z) (PixelNeRF / Splatter Image)."""
    return (-cam_to_world[..., :3, 3] * cam_to_world[..., :3, 2]).sum(dim=-1)


# --------------------------------------------------------------------------------------------------------------------
# Files


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
    entries = categories.get(category, {})
    if not isinstance(entries, dict):
        raise Co3DDataError(path, f"categories.{category} must be an object mapping reasons to {{'sequences': [...]}}")
    result = {}
    for reason, entry in entries.items():
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
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except NPY_ERRORS as error:
        raise Co3DDataError(path, f"unreadable {what} (expected a plain numeric .npy array): {error}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        array.close()
        raise Co3DDataError(path, f"unreadable {what}: an .npz archive, expected a plain numeric .npy array")
    return array


def load_camera_archive(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a `camera_Rs.npz` / `camera_Ts.npz` (never unpickling), keyed by sequence name."""
    path = Path(path)
    if not path.is_file():
        raise Co3DDataError(path, "missing camera archive")
    try:
        with path.open("rb") as handle:  # numpy leaves its own handle open when the zip is broken
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise Co3DDataError(path, "not an .npz archive (a single .npy array?), expected one array per sequence")
            with archive:
                arrays = {}
                for key in archive.files:
                    try:
                        arrays[key] = np.asarray(archive[key])
                    except NPY_ERRORS as error:
                        raise Co3DDataError(path, f"entry {key!r} is not a plain numeric array: {error}") from None
    except Co3DDataError:
        raise
    except NPY_ERRORS as error:
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


# --------------------------------------------------------------------------------------------------------------------
# Sequences


@dataclass(frozen=True)
class Co3DSequence:
    """Some (or all) views of one sequence in the dataset's world frame (OpenCV cameras)."""

    name: str
    views: Int[Tensor, " views"]  # position of each view in the sequence's frame order
    frame_names: tuple[str, ...]
    images: Float[Tensor, "views 3 height width"]  # foreground on black, in [0, 1]
    focal_ndc: Float[Tensor, "views 2"]
    world_to_cam: Float[Tensor, "views 4 4"]
    K: Float[Tensor, "views 3 3"]

    @property
    def cam_to_world(self) -> Float[Tensor, "views 4 4"]:
        return rigid_inverse(self.world_to_cam.double()).to(self.world_to_cam.dtype)

    @property
    def origin_distances(self) -> Float[Tensor, " views"]:
        return origin_distance(self.cam_to_world.double()).to(self.world_to_cam.dtype)

    @property
    def num_views(self) -> int:
        return self.images.shape[0]

    def example(
        self, input_position: int, target_positions: Sequence[int], near: float = RENDER_NEAR, far: float = RENDER_FAR
    ) -> ViewExample:
        """An example of these views (positions index them, not the full frame order), cameras relative to the input
        view; every view's world-frame origin distance rides along as the teacher input `origin_distance`."""
        views = (self.images, self.world_to_cam, self.K, input_position, target_positions)
        return make_example(
            self.name,
            *views,
            near=near,
            far=far,
            view_indices=self.views,
            cam_to_world=self.cam_to_world,
            per_view_inputs={"origin_distance": self.origin_distances},
        )


def read_sequence(
    directory: Path,
    R_all: np.ndarray,
    T_all: np.ndarray,
    views: Sequence[int] | None = None,
    resolution: int | None = None,
) -> Co3DSequence:
    """Read `views` (positions in the frame order; default all) of the sequence in `directory`, validating every file
    involved. `R_all`, `T_all` are its entries of the split's `camera_Rs.npz` / `camera_Ts.npz`. `resolution` resizes
    the images (antialiased bilinear); the NDC focal lengths hold at any resolution."""
    name = directory.name
    order_path = directory / "frame_order.txt"
    images_path, focal_path = directory / "images_fg.npy", directory / "focal_lengths.npy"
    rotations_path, translations_path = directory.parent / "camera_Rs.npz", directory.parent / "camera_Ts.npz"
    names = read_frame_order(order_path)
    count = len(names)
    images = _open_npy(images_path, "images_fg.npy")
    focal = _open_npy(focal_path, "focal_lengths.npy")
    _check_numeric(images_path, images, "images_fg.npy")
    _check_numeric(focal_path, focal, "focal_lengths.npy")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise Co3DDataError(images_path, f"images must have shape [N 3 H H] (square RGB), got {list(images.shape)}")
    if focal.ndim != 3 or focal.shape[1:] != (1, 2):
        raise Co3DDataError(focal_path, f"focal lengths must have shape [N 1 2], got {list(focal.shape)}")
    if R_all.ndim != 3 or R_all.shape[1:] != (3, 3):
        raise Co3DDataError(rotations_path, f"entry {name!r} must have shape [N 3 3], got {list(R_all.shape)}")
    if T_all.ndim != 2 or T_all.shape[1:] != (3,):
        raise Co3DDataError(translations_path, f"entry {name!r} must have shape [N 3], got {list(T_all.shape)}")
    counts = {
        order_path: count,
        images_path: images.shape[0],
        focal_path: focal.shape[0],
        rotations_path: R_all.shape[0],
        translations_path: T_all.shape[0],
    }
    if len(set(counts.values())) > 1:  # name the file that disagrees with the most common count
        values = list(counts.values())
        majority = max(values, key=lambda n: (values.count(n), n == images.shape[0]))
        odd = next(path for path, n in counts.items() if n != majority)
        found = ", ".join(f"{p.name}: {c}" for p, c in counts.items())
        raise Co3DDataError(odd, f"frame count mismatch in sequence {name!r} ({found})")
    positions = list(range(count)) if views is None else [int(v) for v in views]
    for v in positions:
        if not 0 <= v < count:
            raise ValueError(f"view {v} out of range for sequence {name!r} with {count} views")
    index = np.asarray(positions, dtype=np.int64)

    pixels = np.asarray(images[index], dtype=np.float32)
    if not np.isfinite(pixels).all():
        raise Co3DDataError(images_path, f"non-finite values in views {sorted(set(positions))}")
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if low < -IMAGE_RANGE_TOLERANCE or high > 1 + IMAGE_RANGE_TOLERANCE:
        raise Co3DDataError(images_path, f"values must lie in [0, 1], found [{low:.4g}, {high:.4g}]")
    focal_ndc = torch.from_numpy(np.asarray(focal[index, 0], dtype=np.float64))
    if not focal_ndc.isfinite().all() or (focal_ndc <= 0).any():
        raise Co3DDataError(focal_path, "focal lengths must be finite and positive")
    R = np.asarray(R_all[index], dtype=np.float64)
    T = np.asarray(T_all[index], dtype=np.float64)
    check_rotations(rotations_path, f"entry {name!r}", R)
    if not np.isfinite(T).all():
        raise Co3DDataError(translations_path, f"entry {name!r} has non-finite values")

    image_tensor = torch.from_numpy(pixels).clamp_(0, 1)
    if resolution is not None:
        image_tensor = resize_images(image_tensor, resolution, resolution)
    return Co3DSequence(
        name=name,
        views=torch.as_tensor(positions, dtype=torch.long),
        frame_names=tuple(names[v] for v in positions),
        images=image_tensor,
        focal_ndc=focal_ndc.float(),
        world_to_cam=opencv_world_to_cam(torch.from_numpy(R), torch.from_numpy(T)).float(),
        K=co3d_intrinsics(focal_ndc, image_tensor.shape[-1]).float(),
    )


def is_black(images: Float[Tensor, "*batch 3 height width"]) -> Bool[Tensor, "*batch"]:
    """True for images that are exactly zero everywhere (Co3D frames whose foreground mask is empty)."""
    return (images == 0).flatten(-3).all(dim=-1)


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
        complete = [p.name for p in folders if (p / "frame_order.txt").is_file()]
        self.incomplete = tuple(p.name for p in folders if p.name not in complete)  # left by Splatter Image
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

    def num_views(self, index: int) -> int:
        return len(read_frame_order(self.directory / self.sequence_names[index] / "frame_order.txt"))

    def load(self, index: int, views: Sequence[int] | None = None) -> Co3DSequence:
        """Read `views` (positions in the frame order; default all) of sequence `index`."""
        name = self.sequence_names[index]
        return read_sequence(
            self.directory / name, self._rotations[name], self._translations[name], views, self.resolution
        )

    def __getitem__(self, index: int) -> Co3DSequence:
        return self.load(index)

    def training_example(
        self, index: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
    ) -> ViewExample:
        """Random input and targets (`splat_apps.views.drawn_views`); only the chosen views are read."""
        views, input_position, positions = drawn_views(
            self.num_views(index), num_targets, generator, include_input_in_targets
        )
        return self.load(index, views).example(input_position, positions, self.near, self.far)

    def evaluation_example(
        self,
        index: int,
        input_view: int = EVAL_INPUT_VIEW,
        *,
        skip_black_targets: bool = True,
        include_input_in_targets: bool = True,
    ) -> ViewExample:
        """The test protocol's views (Splatter Image `eval.py`): `input_view` in; every other view out, all-black ones
        dropped. With `include_input_in_targets` the input view is also the first target (scored on its own)."""
        input_view, others = evaluation_view_indices(self.num_views(index), input_view)
        sequence = self.load(index)
        if skip_black_targets:
            black = is_black(sequence.images)
            others = [v for v in others if not bool(black[v])]
        targets = [input_view, *others] if include_input_in_targets else others
        if not targets:
            raise ValueError(f"sequence {sequence.name!r} has no non-black target view")
        return sequence.example(input_view, targets, self.near, self.far)


def image_size(dataset: Co3DDataset) -> int:
    """Side of the (square) images the dataset returns."""
    if not len(dataset):
        raise ValueError(f"{dataset!r} has no sequences")
    return dataset.load(0, [0]).images.shape[-1]


# --------------------------------------------------------------------------------------------------------------------
# Whole-dataset check


def check_split(root: Path, split: str, category: str | None) -> SplitCheck:
    """Read every view of every (non-excluded) sequence of one split; every problem is kept with its path."""
    try:
        dataset = Co3DDataset(root, split, category=category)
    except Co3DDataError as error:
        return SplitCheck(split, problems=(error,))
    views, problems = 0, []
    for index in range(len(dataset)):
        try:
            views += dataset.load(index).num_views
        except Co3DDataError as error:
            problems.append(error)
    if not len(dataset):
        problems.append(Co3DDataError(dataset.directory, "split has no sequences"))
    return SplitCheck(split, dataset.directory, len(dataset), views, len(dataset.skipped), tuple(problems))


def check_dataset(root: str | Path, splits: Sequence[str] = SPLITS, category: str | None = None) -> DatasetCheck:
    """`check_split` of each of the given splits."""
    root = Path(root)
    return DatasetCheck(
        root, f"Co3D dataset {root}", "sequences", tuple(check_split(root, s, category) for s in splits)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`apps/co3d/data.py --check-data PATH [--split S ...] [--category C] [--plain]`."""
    return check_command(
        argv,
        prog="apps/co3d/data.py",
        splits=SPLITS,
        check=check_dataset,
        options=[("--category", {"default": None, "help": "category (default: from the folder name)"})],
        description=__doc__.split("\n\n")[0],
        root_help="dataset root, the co3d_<category>_for_gs folder",
    )


if __name__ == "__main__":
    sys.exit(main())
