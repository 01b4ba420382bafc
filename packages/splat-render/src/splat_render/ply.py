"""The standard 3DGS `.ply` layout (graphdeco-inria/gaussian-splatting), readable by common splat viewers.

One vertex per Gaussian with float32 properties, in this order:
`x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`, where
* `f_dc_c` is the degree-0 SH coefficient of colour channel c, `f_rest` the higher-degree coefficients stored
  channel-major (`f_rest_{c * (K - 1) + k - 1}` holds coefficient k of channel c),
* `opacity` is the logit of the opacity and `scale_i` the log of the scale (the activations are applied on load),
* `rot` is the wxyz quaternion, `nx ny nz` are zeros.
"""

import os
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from .types import Gaussians, sh_degree_from_coeffs

_OPACITY_EPS = 1e-7


def gaussians_to_ply_data(gaussians: Gaussians, index: int = 0) -> PlyData:
    """The PLY document for scene `index` of a batch."""
    if not 0 <= index < gaussians.batch_size:
        raise ValueError(f"index {index} out of range for a batch of {gaussians.batch_size}")
    scene = gaussians[index].detach().to(device="cpu", dtype=torch.float64)
    count, coeffs = scene.num_gaussians, scene.sh.shape[2]
    sh = scene.sh[0]  # [N K 3]
    columns = {
        "x": scene.means[0, :, 0],
        "y": scene.means[0, :, 1],
        "z": scene.means[0, :, 2],
        "nx": torch.zeros(count, dtype=torch.float64),
        "ny": torch.zeros(count, dtype=torch.float64),
        "nz": torch.zeros(count, dtype=torch.float64),
    }
    columns |= {f"f_dc_{c}": sh[:, 0, c] for c in range(3)}
    rest = sh[:, 1:, :].transpose(1, 2).reshape(count, 3 * (coeffs - 1))  # channel-major
    columns |= {f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])}
    opacity = scene.opacities[0].clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
    columns["opacity"] = torch.log(opacity / (1 - opacity))
    columns |= {f"scale_{i}": torch.log(scene.scales[0, :, i]) for i in range(3)}
    columns |= {f"rot_{i}": scene.quats[0, :, i] for i in range(4)}
    vertex = np.empty(count, dtype=[(name, "f4") for name in columns])
    for name, values in columns.items():
        vertex[name] = values.numpy()
    return PlyData([PlyElement.describe(vertex, "vertex")])


def save_ply(gaussians: Gaussians, path: str | os.PathLike, index: int = 0) -> Path:
    """Write scene `index` as a binary little-endian 3DGS `.ply` (atomically: a temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    gaussians_to_ply_data(gaussians, index).write(str(temporary))
    os.replace(temporary, path)
    return path


def load_ply(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Gaussians:
    """Read a 3DGS `.ply` into a batch of one scene. A missing, unparsable or non-3DGS file (a missing, misnamed or
    non-numeric property, a count of `f_rest_*` that is no SH degree) is a one-line ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such .ply file")
    try:
        data = PlyData.read(str(path))
        vertex = data["vertex"]
    except Exception as error:
        raise ValueError(f"{path}: not a readable .ply with a 'vertex' element ({error})") from None
    names = set(vertex.data.dtype.names)
    misnamed = sorted(n for n in names if n.startswith("f_rest_") and not n[len("f_rest_") :].isdigit())
    if misnamed:
        raise ValueError(f"{path}: properties {misnamed} are not named f_rest_<index>")
    rest_names = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.split("_")[-1]))
    if len(rest_names) % 3:
        raise ValueError(f"{path}: {len(rest_names)} f_rest_* properties is not a multiple of 3")
    coeffs = 1 + len(rest_names) // 3
    try:
        sh_degree_from_coeffs(coeffs)
    except ValueError as error:
        raise ValueError(f"{path}: {len(rest_names)} f_rest_* properties: {error}") from None
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", *[f"scale_{i}" for i in range(3)]]
    required += [f"rot_{i}" for i in range(4)] + [f"f_rest_{i}" for i in range(len(rest_names))]
    missing = [n for n in required if n not in names]
    if missing:
        raise ValueError(f"{path}: missing 3DGS properties {missing}")
    not_numbers = [n for n in required if vertex.data.dtype[n].kind not in "fiu" or vertex.data.dtype[n].shape]
    if not_numbers:
        raise ValueError(f"{path}: 3DGS properties {not_numbers} must be scalar numbers (not lists)")

    def column(*keys: str) -> torch.Tensor:
        with np.errstate(invalid="ignore"):  # a signalling NaN in the file would warn on the cast; it stays a NaN
            values = np.stack([np.asarray(vertex[k], dtype=np.float64) for k in keys], -1)
        return torch.from_numpy(values).to(dtype)

    count = len(vertex.data)
    dc = column("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]
    rest = torch.zeros(count, 0, 3, dtype=dtype)
    if rest_names:
        rest = column(*[f"f_rest_{i}" for i in range(len(rest_names))]).reshape(count, 3, coeffs - 1).transpose(1, 2)
    return Gaussians(
        means=column("x", "y", "z")[None],
        quats=column("rot_0", "rot_1", "rot_2", "rot_3")[None],
        scales=torch.exp(column("scale_0", "scale_1", "scale_2"))[None],
        opacities=torch.sigmoid(column("opacity")[:, 0])[None],
        sh=torch.cat([dc, rest], dim=1)[None],
    )
