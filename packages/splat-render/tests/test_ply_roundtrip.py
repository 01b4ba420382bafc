"""`.ply` files in the standard 3DGS layout round-trip and are readable by name."""

import pathlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plyfile import PlyData
from render_strategies import random_gaussians, seeds

from splat_render.ply import load_ply, save_ply


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=seeds, count=st.integers(1, 50), degree=st.integers(0, 3), batch=st.integers(1, 3))
def test_ply_round_trip_preserves_every_gaussian(tmp_path: pathlib.Path, seed, count, degree, batch) -> None:
    generator = torch.Generator().manual_seed(seed)
    scene = random_gaussians(generator, batch, count, sh_degree=degree, dtype=torch.float32)
    index = batch - 1
    loaded = load_ply(save_ply(scene, tmp_path / "scene.ply", index=index))
    for name, value in loaded.tensors().items():
        torch.testing.assert_close(value, getattr(scene, name)[index : index + 1], rtol=1e-6, atol=1e-6)


def test_ply_uses_the_standard_3dgs_property_names(tmp_path: pathlib.Path) -> None:
    scene = random_gaussians(torch.Generator().manual_seed(0), 1, 3, sh_degree=1, dtype=torch.float32)
    path = save_ply(scene, tmp_path / "scene.ply")
    names = list(PlyData.read(str(path))["vertex"].data.dtype.names)
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(9)] + ["opacity", "scale_0", "scale_1", "scale_2"]
    expected += ["rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected
    vertex = PlyData.read(str(path))["vertex"]
    # f_rest is channel-major: f_rest_{c*3 + k-1} is SH coefficient k of colour channel c
    np.testing.assert_allclose(vertex["f_rest_4"], scene.sh[0, :, 2, 1].numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["opacity"], torch.logit(scene.opacities[0]).numpy(), rtol=1e-5)


def test_loading_a_broken_ply_names_the_file_and_the_problem(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="no such .ply file"):
        load_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_text("not a ply")
    with pytest.raises(ValueError, match="junk.ply: not a readable .ply"):
        load_ply(tmp_path / "junk.ply")
