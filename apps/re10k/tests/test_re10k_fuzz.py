"""Fuzzing the RealEstate10K readers: a valid chunk, txt file, index and JPEG (written by this app's own writers)
with random byte flips, insertions, deletions and truncations, and random text, either read or fail with exactly a
ValueError naming the file — also when the frames of a chunk that still loads are decoded."""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from app_re10k.data import (
    FrameSequence,
    decode_jpeg,
    encode_jpeg,
    read_chunk,
    read_index,
    read_txt,
    write_chunk,
    write_txt,
)
from splat_render.fuzzing import Edit, byte_edits, mutated

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FRAMES = 2
RNG = np.random.default_rng(0)
JPEGS = [encode_jpeg(RNG.integers(0, 256, (8, 12, 3), dtype=np.uint8)) for _ in range(FRAMES)]
CAMERAS = torch.cat([torch.tensor([[0.5, 0.8, 0.5, 0.5]] * FRAMES), torch.zeros(FRAMES, 2)], 1)
SEQUENCE = FrameSequence(
    key="abc",
    url="https://example.invalid/v",
    timestamps=torch.tensor([10, 20]),
    intrinsics=torch.tensor([[0.5, 0, 0.5], [0, 0.8, 0.5], [0, 0, 1]]).expand(FRAMES, 3, 3),
    world_to_cam=torch.eye(4).expand(FRAMES, 4, 4),
    frames=tuple(torch.frombuffer(bytearray(jpeg), dtype=torch.uint8) for jpeg in JPEGS),
    source=Path("generated"),
)

edits = byte_edits(st)


def fails_naming(name: str | os.PathLike, read) -> object:
    """`read()`'s result, or None when it raised exactly ValueError with `name` in its one-line message."""
    try:
        return read()
    except ValueError as error:
        assert type(error) is ValueError, repr(error)
        assert str(name) in str(error) and "\n" not in str(error), str(error)
        return None


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a valid chunk and txt file, written by `write_chunk` and `write_txt`."""
    folder = tmp_path_factory.mktemp("re10k_bases")
    write_chunk(folder / "000000.torch", [SEQUENCE])
    write_txt(folder / "abc.txt", folder / "abc", SEQUENCE)
    return {"chunk": (folder / "000000.torch").read_bytes(), "txt": (folder / "abc.txt").read_bytes()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("re10k_fuzz")


def test_the_fuzzed_bases_are_valid_files(bases: dict[str, bytes], folder: Path) -> None:
    (folder / "base.torch").write_bytes(bases["chunk"])
    (sequence,) = read_chunk(folder / "base.torch")
    assert sequence.key == "abc" and sequence.image(1, None).shape == (3, 8, 12)
    (folder / "base.txt").write_bytes(bases["txt"])
    assert read_txt(folder / "base.txt", folder / "frames").timestamps.tolist() == [10, 20]


def mutated_pickle(archive: bytes, changes: list[Edit]) -> bytes:
    """A valid torch zip archive whose `data.pkl` (the pickled list of examples) is `mutated`."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(output, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            target.writestr(member.filename, mutated(data, changes) if member.filename.endswith("data.pkl") else data)
    return output.getvalue()


@FUZZ
@given(changes=edits, inside=st.booleans())
def test_mutated_chunks_and_their_frames_read_or_fail_naming_the_chunk(
    bases: dict[str, bytes], folder: Path, changes: list[Edit], inside: bool
) -> None:
    path = folder / "000000.torch"
    path.write_bytes((mutated_pickle if inside else mutated)(bases["chunk"], changes))
    for sequence in fails_naming(path, lambda: read_chunk(path)) or []:
        for index in range(len(sequence)):
            fails_naming(path, lambda index=index, sequence=sequence: sequence.image(index, (4, 6)))


@FUZZ
@given(changes=edits, frame=st.integers(0, FRAMES - 1))
@example(changes=[("flip", 0xA3, b"\x10"), ("flip", 0xA5, b"\x10")], frame=0)  # SOF size 4108 x 4104: over the cap
@example(changes=[("flip", 0xA3, b"\xff"), ("flip", 0xA5, b"\xff")], frame=0)  # 65292 x 65288: a bomb for pillow
def test_mutated_jpegs_decode_or_fail_naming_the_frame(changes: list[Edit], frame: int) -> None:
    name = "chunk.torch (key abc, frame 3)"
    fails_naming(name, lambda: decode_jpeg(mutated(JPEGS[frame], changes), (4, 6), name=name))


@FUZZ
@given(changes=edits)
def test_mutated_txt_files_read_or_fail_naming_the_file(bases: dict[str, bytes], folder: Path, changes) -> None:
    path = folder / "abc.txt"
    path.write_bytes(mutated(bases["txt"], changes))
    fails_naming(path, lambda: read_txt(path, folder / "abc"))


columns = st.one_of(st.floats().map(repr), st.integers(-(10**20), 10**20).map(str), st.just("0.5"))
camera_lines = st.lists(st.lists(columns, min_size=17, max_size=21).map(" ".join), max_size=4)


@FUZZ
@given(text=st.one_of(st.text(max_size=100), camera_lines.map(lambda lines: "\n".join(["url", *lines]))))
@example(text="url\n1 1e999 1 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0")  # an infinite focal length
def test_random_text_is_a_txt_file_or_an_error_naming_it(folder: Path, text: str) -> None:
    path = folder / "random.txt"
    path.write_text(text, encoding="utf-8")
    fails_naming(path, lambda: read_txt(path, folder / "random"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(document=st.one_of(json_values.map(json.dumps), st.text(max_size=40), st.binary(max_size=40)))
@example(document=b'{"a": "\xff"}')
def test_random_index_files_read_or_fail_naming_the_file(folder: Path, document: str | bytes) -> None:
    path = folder / "index.json"
    path.write_bytes(document if isinstance(document, bytes) else document.encode())
    fails_naming(path, lambda: read_index(path))


def test_an_oversized_jpeg_is_refused_before_decoding() -> None:
    buffer = io.BytesIO()
    Image.new("L", (5000, 4000)).save(buffer, format="JPEG", quality=1)
    with pytest.raises(ValueError, match=r"^frame 7: image is 5000x4000 = 20.0 Mpixels, more than the 16.8 Mpixel"):
        decode_jpeg(buffer.getvalue(), name="frame 7")
