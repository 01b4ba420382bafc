"""splat-teachers: deterministic single-image -> 3D Gaussians teachers (Splatter Image, Flash3D-style) and their
reusable parts (the EDM SongUNet backbone and the pixel-aligned Gaussian head)."""

from .checkpoints import export_ply, load_checkpoint, load_weights, save_checkpoint
from .flash3d import (
    FLASH3D_PRESETS,
    DepthBackbone,
    Flash3D,
    Flash3DConfig,
    MonocularDepthConfig,
    MonocularDepthHead,
    ResNetConfig,
    UniDepthV1,
    flash3d_gaussians_from_map,
    flash3d_preset,
)
from .pixel_gaussians import (
    CARS,
    CHAIRS,
    HEAD_PRESETS,
    HYDRANTS,
    ChannelInit,
    GaussianMapSpec,
    PixelHeadConfig,
    gaussians_from_map,
    head_preset,
)
from .protocol import Teacher, TeacherOutput
from .splatter_image import (
    SPLATTER_IMAGE_PRESETS,
    OfficialSplatterImage,
    SplatterImage,
    SplatterImageConfig,
    splatter_image_preset,
)
from .unet import UNET_PRESETS, GaussianMapNetwork, SongUNet, UNetConfig, unet_preset

__all__ = [
    "CARS",
    "CHAIRS",
    "FLASH3D_PRESETS",
    "HEAD_PRESETS",
    "HYDRANTS",
    "SPLATTER_IMAGE_PRESETS",
    "UNET_PRESETS",
    "ChannelInit",
    "DepthBackbone",
    "Flash3D",
    "Flash3DConfig",
    "GaussianMapNetwork",
    "GaussianMapSpec",
    "MonocularDepthConfig",
    "MonocularDepthHead",
    "OfficialSplatterImage",
    "PixelHeadConfig",
    "ResNetConfig",
    "SongUNet",
    "SplatterImage",
    "SplatterImageConfig",
    "Teacher",
    "TeacherOutput",
    "UNetConfig",
    "UniDepthV1",
    "export_ply",
    "flash3d_gaussians_from_map",
    "flash3d_preset",
    "gaussians_from_map",
    "head_preset",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "splatter_image_preset",
    "unet_preset",
]
