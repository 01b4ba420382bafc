"""The camera and view toolkit of every reader: cameras relative to the input view, one example type for an item
seen from an input view with target views, collation into the stages' `ViewBatch`, and the view choices of the
training and evaluation protocols.

Convention: a pixel-aligned teacher puts its Gaussians in the input camera's frame, so an example's cameras are
relative to the input camera (its `world_to_cam` is the identity) and a target's is `w2c_target @ c2w_input`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from splat_render import Cameras
from splat_train import ViewBatch


def relative_world_to_cam(
    input_cam_to_world: Float[Tensor, "*batch 4 4"], world_to_cam: Float[Tensor, "*batch views 4 4"]
) -> Float[Tensor, "*batch views 4 4"]:
    """World-to-camera of each view in the input camera's frame, `w2c_view @ c2w_input` (in float64, returned in
    `world_to_cam`'s dtype): the input camera becomes the identity and the world frame the input camera's."""
    relative = world_to_cam.double() @ input_cam_to_world.double()[..., None, :, :]
    return relative.to(world_to_cam.dtype)


@dataclass(frozen=True)
class ViewExample:
    """One item (object, sequence, clip) seen from an input view, with target views. Cameras are relative to the
    input camera (`input_camera.world_to_cam` is the identity); `input_cam_to_world` maps back to the dataset's
    world frame. `teacher_inputs` are extra teacher inputs of the input view (e.g. Co3D's `origin_distance`, a
    scalar each) and `target_teacher_inputs` the same for every target view ([views] each)."""

    item: str
    input_image: Float[Tensor, "3 height width"]
    input_camera: Cameras  # batch 1, views 1
    target_images: Float[Tensor, "views 3 height width"]
    target_cameras: Cameras  # batch 1, views
    input_view: int
    target_views: Int[Tensor, " views"]
    input_cam_to_world: Float[Tensor, "4 4"]
    teacher_inputs: dict[str, Tensor] = field(default_factory=dict)
    target_teacher_inputs: dict[str, Tensor] = field(default_factory=dict)


def make_example(
    item: str,
    images: Float[Tensor, "views 3 height width"],
    world_to_cam: Float[Tensor, "views 4 4"],
    K: Float[Tensor, "views 3 3"],
    input_position: int,
    target_positions: Sequence[int],
    *,
    near: float,
    far: float,
    view_indices: Int[Tensor, " views"] | None = None,
    cam_to_world: Float[Tensor, "views 4 4"] | None = None,
    per_view_inputs: Mapping[str, Float[Tensor, " views"]] | None = None,
) -> ViewExample:
    """An example from loaded views: positions index these views; `view_indices` name them in the item's full view
    list (default: the positions); `cam_to_world` defaults to the inverse of `world_to_cam`; `per_view_inputs` are
    teacher inputs of every loaded view (split into the input's and the targets'). Relative cameras are computed in
    float64 and stored in K's dtype."""
    targets = torch.as_tensor(list(target_positions), dtype=torch.long)
    height, width = images.shape[-2:]
    if cam_to_world is None:
        cam_to_world = torch.linalg.inv(world_to_cam.double()).to(world_to_cam.dtype)
    if view_indices is None:
        view_indices = torch.arange(images.shape[0])
    c2w_input = cam_to_world[input_position]
    eye = torch.eye(4, dtype=K.dtype)[None, None]
    inputs = dict(per_view_inputs or {})
    return ViewExample(
        item=item,
        input_image=images[input_position],
        input_camera=Cameras(eye, K[input_position][None, None], width, height, near, far),
        target_images=images[targets],
        target_cameras=Cameras(
            relative_world_to_cam(c2w_input, world_to_cam[targets]).to(K.dtype)[None],
            K[targets][None],
            width,
            height,
            near,
            far,
        ),
        input_view=int(view_indices[input_position]),
        target_views=view_indices[targets],
        input_cam_to_world=c2w_input,
        teacher_inputs={name: values[input_position] for name, values in inputs.items()},
        target_teacher_inputs={name: values[targets] for name, values in inputs.items()},
    )


def collate(examples: Sequence[ViewExample], device: torch.device | str = "cpu") -> ViewBatch:
    """Stack examples (same image size and number of targets) into the stages' `ViewBatch` (float32, on `device`)."""
    if not examples:
        raise ValueError("collate needs at least one example")
    shapes = {e.target_images.shape for e in examples}
    if len(shapes) != 1 or len({e.input_image.shape for e in examples}) != 1:
        raise ValueError(f"examples must share image size and number of targets, got target shapes {sorted(shapes)}")

    def float32(cameras: Cameras) -> Cameras:
        return Cameras(
            cameras.world_to_cam.float(), cameras.K.float(), cameras.width, cameras.height, cameras.near, cameras.far
        )

    names = examples[0].teacher_inputs.keys()
    return ViewBatch(
        source_images=torch.stack([e.input_image for e in examples]).float(),
        source_cameras=float32(Cameras.cat([e.input_camera for e in examples], along="batch")),
        target_images=torch.stack([e.target_images for e in examples]).float(),
        target_cameras=float32(Cameras.cat([e.target_cameras for e in examples], along="batch")),
        teacher_inputs={n: torch.stack([e.teacher_inputs[n] for e in examples]).float() for n in names},
        target_teacher_inputs={n: torch.stack([e.target_teacher_inputs[n] for e in examples]).float() for n in names},
    ).to(device)


def with_planes(cameras: Cameras, near: float, far: float) -> Cameras:
    """The same cameras with other near / far planes (e.g. rendering planes instead of a head's depth range)."""
    return Cameras(cameras.world_to_cam, cameras.K, cameras.width, cameras.height, near, far)


def sample_view_indices(
    num_views: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
) -> tuple[int, list[int]]:
    """Random distinct views (input, targets). With `include_input_in_targets` (Splatter Image's scheme) draw
    `num_targets` views: the first is the input and all are targets (the input is rendered too); otherwise the input
    is drawn in addition."""
    if num_targets < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}")
    needed = num_targets if include_input_in_targets else num_targets + 1
    if needed > num_views:
        raise ValueError(f"num_targets={num_targets} needs {needed} distinct views but the item has {num_views}")
    drawn = torch.randperm(num_views, generator=generator)[:needed].tolist()
    return drawn[0], drawn if include_input_in_targets else drawn[1:]


def drawn_views(
    num_views: int, num_targets: int, generator: torch.Generator, include_input_in_targets: bool = True
) -> tuple[list[int], int, list[int]]:
    """A training example's random views (`sample_view_indices`) as what to read: the distinct views, sorted, and the
    positions among them of the input and of every target."""
    input_view, target_views = sample_view_indices(num_views, num_targets, generator, include_input_in_targets)
    views = sorted({input_view, *target_views})
    return views, views.index(input_view), [views.index(v) for v in target_views]


def evaluation_view_indices(num_views: int, input_view: int) -> tuple[int, list[int]]:
    """The single-view protocols' views (pixelNeRF, Splatter Image): `input_view` in, every other view a target."""
    if not 0 <= input_view < num_views:
        raise ValueError(f"input_view must be in [0, {num_views}) for an item of {num_views} views, got {input_view}")
    return input_view, [v for v in range(num_views) if v != input_view]


def resize_images(
    images: Float[Tensor, "*batch 3 height width"], height: int, width: int
) -> Float[Tensor, "*batch 3 new_height new_width"]:
    """Antialiased bilinear resize (a box-like filter when shrinking), clamped to [0, 1]."""
    if images.shape[-2:] == (height, width):
        return images
    leading = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    resized = F.interpolate(flat, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0, 1).reshape(*leading, 3, height, width)


def input_batch(
    image: Float[Tensor, "1 3 height width"], cameras: Cameras, **teacher_inputs: Float[Tensor, " 1"]
) -> ViewBatch:
    """A one-image `ViewBatch` (e.g. an image file given to `sample.py`) whose only target is the input view."""
    return ViewBatch(
        source_images=image.float(),
        source_cameras=cameras,
        target_images=image[:, None].float(),
        target_cameras=cameras,
        teacher_inputs=dict(teacher_inputs),
        target_teacher_inputs={name: value[:, None] for name, value in teacher_inputs.items()},
    )
