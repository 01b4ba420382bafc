"""Real spherical harmonics up to degree 3, with the constants and sign conventions of 3DGS and gsplat.

A colour is `max(sum_k Y_k(d) c_k + 0.5, 0)` for the unit direction d from the camera centre to the Gaussian.
"""

import torch
from jaxtyping import Float
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
MAX_SH_DEGREE = 3


def num_sh_coeffs(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh_dc(rgb: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """The degree-0 coefficient whose colour (without view dependence) is `rgb`."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    return dc * SH_C0 + 0.5


def sh_basis(degree: int, dirs: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch sh_coeffs"]:
    """Real SH basis Y_k(d) for k < (degree + 1)^2 at unit directions `dirs`."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh degree must be in [0, {MAX_SH_DEGREE}], got {degree}")
    x, y, z = dirs.unbind(-1)
    basis = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        basis += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        basis += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        basis += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(basis, dim=-1)


def eval_sh(
    degree: int, coeffs: Float[Tensor, "*batch sh_coeffs 3"], dirs: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 3"]:
    """Colour `sum_k Y_k(d) c_k` using the first (degree + 1)^2 coefficients; `dirs` need not be unit length."""
    count = num_sh_coeffs(degree)
    if coeffs.shape[-2] < count:
        raise ValueError(f"sh degree {degree} needs {count} coefficients, got {coeffs.shape[-2]}")
    basis = sh_basis(degree, torch.nn.functional.normalize(dirs, dim=-1))
    return (basis[..., None] * coeffs[..., :count, :]).sum(dim=-2)
