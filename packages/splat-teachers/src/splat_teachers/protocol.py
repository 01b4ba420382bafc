"""The teacher contract: one image per scene in, a raw Gaussian map and the Gaussians it stands for out.

    teacher(images [batch 3 height width], cameras) -> TeacherOutput(gaussian_map, gaussians)

`cameras` holds one input view per image (`Cameras` with `views` = 1): its `K` gives the pixel rays and its pose
places the Gaussians; with the identity pose (the standard use, as in Splatter Image) the Gaussians live in the
input camera's frame and target cameras are expressed relative to it. Extra per-image inputs (Co3D's origin
distance, a precomputed depth map) are explicit keyword arguments. Foreign models are wrapped by adapters that
implement this protocol (k-diffusion `external.py` style).
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor

from splat_render import Cameras, Gaussians

from .pixel_gaussians import GaussianMapSpec


@dataclass(frozen=True)
class TeacherOutput:
    """A teacher's prediction: the raw pre-activation map (the diffusion student's data) and its Gaussians."""

    gaussian_map: Float[Tensor, "batch channels height width"]
    gaussians: Gaussians


@runtime_checkable
class Teacher(Protocol):
    """A deterministic single-image -> 3D Gaussians predictor (see the module docstring)."""

    @property
    def map_spec(self) -> GaussianMapSpec:
        """Layout of `TeacherOutput.gaussian_map`."""
        ...

    def __call__(self, images: Float[Tensor, "batch 3 height width"], cameras: Cameras, **inputs) -> TeacherOutput: ...

    def gaussians_from_map(
        self, gaussian_map: Float[Tensor, "batch channels height width"], cameras: Cameras, **inputs
    ) -> Gaussians:
        """The teacher's own head applied to any map of its layout (for example a student's prediction)."""
        ...
