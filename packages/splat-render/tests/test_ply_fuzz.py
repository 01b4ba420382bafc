"""Fuzzing `load_ply`: a valid 3DGS .ply (binary and ASCII, written by `gaussians_to_ply_data`) with random byte flips,
insertions, deletions and truncations, and random headers, either loads or fails with exactly a ValueError naming the
file in one line."""

import io
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from render_strategies import random_gaussians

from splat_render.fuzzing import Edit, byte_edits, mutated
from splat_render.ply import gaussians_to_ply_data, load_ply

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ply_bytes(text: bool) -> bytes:
    scene = random_gaussians(torch.Generator().manual_seed(0), 1, 3, sh_degree=1, dtype=torch.float32)
    document = gaussians_to_ply_data(scene)
    document.text = text
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


BASES = {"binary": ply_bytes(False), "ascii": ply_bytes(True)}
HEADER_END = BASES["binary"].index(b"end_header")

edits = byte_edits(st, HEADER_END)


def loads_or_fails_naming(path: Path) -> None:
    try:
        scene = load_ply(path)
    except ValueError as error:
        assert type(error) is ValueError, repr(error)
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error), str(error)
    else:
        assert scene.batch_size == 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ply_fuzz")


def test_the_fuzzed_bases_load(folder: Path) -> None:
    for kind, data in BASES.items():
        (folder / f"{kind}.ply").write_bytes(data)
        assert load_ply(folder / f"{kind}.ply").num_gaussians == 3


@FUZZ
@given(kind=st.sampled_from(sorted(BASES)), changes=edits)
# The three inserted bytes shift a float32 into a signalling NaN, which warned when cast.
@example(kind="binary", changes=[("insert", 2507, b"\x00"), ("insert", 2509, b"\x00"), ("insert", 2511, b"\x00")])
def test_a_mutated_ply_loads_or_fails_naming_the_file(folder: Path, kind: str, changes: list[Edit]) -> None:
    path = folder / "scene.ply"
    path.write_bytes(mutated(BASES[kind], changes))
    loads_or_fails_naming(path)


properties = st.lists(
    st.sampled_from(["x", "y", "z", "opacity", "f_dc_0", "f_dc_1", "f_dc_2", "f_rest_0", "f_rest_x", "f_rest_"])
    | st.sampled_from([f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])
    | st.from_regex(r"f_rest_[0-9]{1,2}", fullmatch=True),
    max_size=24,
)


@FUZZ
@given(
    names=properties, kind=st.sampled_from(["float", "uchar", "double", "list uchar float"]), count=st.integers(0, 2)
)
@example(names=["f_rest_x", "f_rest_0", "f_rest_1"], kind="float", count=1)  # a non-numeric f_rest suffix
@example(names=[f"f_rest_{i}" for i in range(6)], kind="float", count=1)  # 3 coefficients is not an SH degree
@example(
    names=["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2"]
    + [f"rot_{i}" for i in range(4)],
    kind="list uchar float",
    count=1,
)  # list properties
def test_random_vertex_properties_load_or_fail_naming_the_file(folder: Path, names, kind: str, count: int) -> None:
    header = ["ply", "format ascii 1.0", f"element vertex {count}"] + [f"property {kind} {name}" for name in names]
    value = "1 0.5" if kind.startswith("list") else "0.5"
    rows = [" ".join([value] * len(names))] * count
    path = folder / "random.ply"
    path.write_text("\n".join([*header, "end_header", *rows]) + "\n")
    loads_or_fails_naming(path)
