"""Byte-level mutations for fuzzing file readers (the .ply loader here, the dataset readers in the apps): a valid
file with random byte flips, insertions, deletions and truncations must either read or fail with the reader's
one-line error. `byte_edits` is given hypothesis's `strategies` module by the test (hypothesis is a test
dependency, not one of splat-render's)."""

Edit = tuple[str, int, bytes]
"""One change: ("flip" | "insert" | "delete" | "truncate", position, payload)."""

EDIT_KINDS = ("flip", "insert", "delete", "truncate")


def byte_edits(st, structure_end: int = 160, max_edits: int = 4):
    """A hypothesis strategy (built from `st` = `hypothesis.strategies`) of 1..`max_edits` edits; half the positions
    fall before `structure_end`, where the headers (and so most of the structure a reader parses) are."""
    return st.lists(
        st.tuples(
            st.sampled_from(EDIT_KINDS),
            st.integers(0, structure_end) | st.integers(0, 2**16),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=max_edits,
    )


def mutated(base: bytes, changes: list[Edit]) -> bytes:
    """`base` after each edit: xor a byte, insert bytes, delete up to 8 bytes, or truncate, at the position modulo
    the current length."""
    data = bytearray(base)
    for kind, at, payload in changes:
        at %= len(data) + 1
        if kind == "flip" and at < len(data):
            data[at] ^= payload[0] or 1
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at : at + len(payload)]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)
