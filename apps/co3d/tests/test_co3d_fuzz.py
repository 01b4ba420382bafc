"""Fuzzing the Co3D reader: the files of a valid preprocessed sequence (written by the test fixtures' writers) with
random byte flips, insertions, deletions and truncations, of the whole file or of one array inside an .npz, and
random frame orders and bad-sequence lists, either read or fail with exactly a Co3DDataError naming that file; the
dataset check never raises."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from co3d_fixtures import random_sequence_arrays, write_sequence
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app_co3d.data import Co3DDataError, Co3DDataset, check_split, load_bad_sequences, read_frame_order
from splat_render.fuzzing import Edit, byte_edits, mutated

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME = "900_1_1"
FILES = ["camera_Rs.npz", "camera_Ts.npz", f"{NAME}/images_fg.npy", f"{NAME}/focal_lengths.npy"]
FILES += [f"{NAME}/frame_order.txt"]

edits = byte_edits(st)


def mutated_inside(archive: bytes, changes: list[Edit]) -> bytes:
    """A valid .npz whose every member is `mutated` (the zip container intact, the .npy arrays broken)."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(output, "w") as target:
        for member in source.infolist():
            target.writestr(member.filename, mutated(source.read(member), changes))
    return output.getvalue()


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The train split of a co3d_hydrant_for_gs folder with one sequence of 3 views of 4 px."""
    directory = tmp_path_factory.mktemp("co3d_fuzz") / "co3d_hydrant_for_gs" / "train"
    write_sequence(directory, NAME, *random_sequence_arrays(3, side=4))
    return directory


def read_split(split: Path) -> None:
    dataset = Co3DDataset(split.parent, "train", exclude=())
    for index in range(len(dataset)):
        dataset.load(index)


def test_the_fuzzed_sequence_is_valid(split: Path) -> None:
    read_split(split)
    assert check_split(split.parent, "train", None).problems == ()


@FUZZ
@given(file=st.sampled_from(FILES), changes=edits, inside=st.booleans())
@example(file="camera_Rs.npz", changes=[("flip", 0, b"\x01")], inside=False)  # not a zip archive any more
@example(file="camera_Rs.npz", changes=[("flip", 400, b"\x01")], inside=False)  # a member's CRC no longer matches
def test_a_mutated_file_reads_or_fails_naming_it_and_the_check_lists_it(
    split: Path, file: str, changes: list[Edit], inside: bool
) -> None:
    path = split / file
    original = path.read_bytes()
    path.write_bytes(
        mutated_inside(original, changes) if inside and file.endswith(".npz") else mutated(original, changes)
    )
    try:
        try:
            read_split(split)
        except Co3DDataError as error:
            assert type(error) is Co3DDataError and error.path == path, str(error)
            assert str(path) in str(error) and "\n" not in str(error)
        report = check_split(split.parent, "train", None)
        assert all(type(problem) is Co3DDataError and problem.path == path for problem in report.problems)
    finally:
        path.write_bytes(original)


@FUZZ
@given(text=st.text(max_size=60) | st.binary(max_size=60))
@example(text=b"00000.png\n\xff\n")
def test_random_frame_orders_read_or_fail_naming_the_file(tmp_path_factory, text: str | bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "frame_order.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        assert all(name.strip() == name and name for name in read_frame_order(path))
    except Co3DDataError as error:
        assert type(error) is Co3DDataError and error.path == path and "\n" not in str(error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["sequences", "nan", "x"]), inner),
    max_leaves=6,
)
bad_sequence_lists = st.one_of(
    json_values,
    st.fixed_dictionaries({"categories": json_values}),
    st.fixed_dictionaries({"categories": st.fixed_dictionaries({"hydrant": json_values})}),
    st.fixed_dictionaries(
        {"categories": st.fixed_dictionaries({"hydrant": st.dictionaries(st.just("nan"), json_values)})}
    ),
)


@FUZZ
@given(document=bad_sequence_lists.map(json.dumps) | st.binary(max_size=40))
@example(document='{"categories": {"hydrant": []}}')
@example(document='{"categories": {"hydrant": {"nan": {"sequences": ["a", 1]}}}}')
def test_random_bad_sequence_lists_read_or_fail_naming_the_file(tmp_path_factory, document: str | bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "bad_sequences.json"
    path.write_bytes(document if isinstance(document, bytes) else document.encode())
    try:
        lists = load_bad_sequences("hydrant", path)
        assert all(isinstance(name, str) for names in lists.values() for name in names)
    except Co3DDataError as error:
        assert type(error) is Co3DDataError and error.path == path and "\n" not in str(error)


def test_a_missing_array_member_is_named(split: Path) -> None:
    path = split / "camera_Ts.npz"
    original = path.read_bytes()
    np.savez(path, other=np.zeros((3, 3)))
    try:
        with pytest.raises(Co3DDataError, match=rf"{path}: no entry for sequence '{NAME}'"):
            read_split(split)
    finally:
        path.write_bytes(original)
