"""torchsave_size predicts torch.save's bytes without torch: compared with the real torch.save."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from connpack.torchsave_size import state_dict_pickle, torch_save_size


def _saved(arrays: dict[str, np.ndarray]) -> tuple[int, bytes]:
    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, buf)
    raw = buf.getvalue()
    return len(raw), zipfile.ZipFile(io.BytesIO(raw)).read("archive/data.pkl")


def _layers(n: int) -> dict[str, np.ndarray]:
    """n tensors, names of growing length, shapes of 0 to 5 dimensions, some empty."""
    g = np.random.default_rng(n)
    out = {}
    for i in range(n):
        shape = tuple(int(d) for d in g.integers(0, 4, g.integers(0, 6)))
        out[f"features.{i}." + "w" * int(g.integers(1, 40))] = np.zeros(shape, np.float32)
    return out


CASES = {
    "empty dict": {},
    "one tensor": {"w": np.zeros((3, 4), np.float32)},
    "scalar, empty, 4-d": {
        "a.weight": np.zeros((3, 4), np.float32),
        "b": np.zeros((0, 3), np.float32),
        "c": np.zeros((), np.float32),
        "d": np.zeros((2, 3, 4, 5)),
    },
    "dtypes": {
        n: np.zeros((5, 1), dt)
        for n, dt in [
            ("b", bool),
            ("u1", np.uint8),
            ("i1", np.int8),
            ("i2", np.int16),
            ("i4", np.int32),
            ("i8", np.int64),
            ("f2", np.float16),
            ("f8", np.float64),
        ]
    },
    "digit and long names": {
        "0": np.zeros(2, np.float32),
        "1": np.zeros(3, np.int64),
        "x" * 300: np.zeros((1, 1, 0, 7), np.uint8),
        "é名": np.zeros(70000, np.float32),
    },
    "counts over 65535": {"n": np.zeros((70000, 3), np.float32), "m": np.zeros((1, 300), np.uint8)},
    **{f"{n} tensors": _layers(n) for n in (2, 300, 1000, 1001)},  # memo indices over 255, SETITEMS batches
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_torch_save(name):
    arrays = CASES[name]
    size, pkl = _saved(arrays)
    assert state_dict_pickle(arrays) == pkl
    assert torch_save_size(arrays) == size


def test_a_changed_shape_changes_the_size():
    a = {"w": np.zeros((3, 4), np.float32)}
    b = {"w": np.zeros((30, 40), np.float32)}
    assert torch_save_size(a) != torch_save_size(b) and torch_save_size(b) == _saved(b)[0]


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="no torch storage for dtype"):
        torch_save_size({"w": np.zeros(3, np.complex64)})


@pytest.mark.slow
def test_zip64_records_past_4_gib():
    """A 4 GiB + 12 B record (zip64 sizes), then records whose offsets pass 4 GiB (zip64 offsets). The
    tensor's pages are never written (torch.empty): torch.save reads zero pages, RSS stays small."""
    n = 2**30 + 3
    size = _CountingSink()
    torch.save({"big": torch.empty(n), "small": torch.empty(5), "tail": torch.empty(0)}, size)
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (n,), (4,))  # 4 GiB of shape, 4 B of memory
    assert torch_save_size({"big": big, "small": np.zeros(5, np.float32), "tail": np.zeros(0, np.float32)}) == size.n


class _CountingSink(io.RawIOBase):
    def __init__(self):
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += len(b)
        return len(b)


@pytest.mark.parametrize("vector", ["net_mask", "net_values", "net_dense", "net_quant"])
def test_report_column_is_torch_save_of_the_state_dict(vector):
    """report's torch.save column (computed without torch) is what torch.save writes for the network."""
    from pathlib import Path

    from connpack import packing, reporting
    from connpack.exporters.module import state_dict

    path = Path(__file__).resolve().parents[1] / "formats" / "vectors" / f"{vector}.cpk"
    buf = io.BytesIO()
    torch.save(state_dict(packing.unpack(path)), buf)
    assert reporting.report(path).torch_save_bytes == len(buf.getvalue())


def test_integers_are_written_as_the_pickler_writes_them():
    """The int opcodes written by hand (connpack imports no pickle) against CPython's protocol-2 pickler."""
    import pickle

    from connpack.torchsave_size import _Pickle

    values = [
        0,
        1,
        255,
        256,
        65535,
        65536,
        2**31 - 1,
        2**31,
        2**32,
        2**40 + 7,
        2**63,
        -1,
        -255,
        -(2**31),
        -(2**31) - 1,
        -(2**40),
    ]
    for n in values:
        p = _Pickle()
        p.integer(n)
        assert bytes(p.out[2:]) == pickle.dumps(n, 2)[2:-1], n  # after the protocol header
