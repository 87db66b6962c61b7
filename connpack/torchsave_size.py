"""The byte count of ``torch.save(state_dict, buffer)`` computed without torch (for report's size column).

torch.save writes a zip archive whose layout depends only on the tensors' names, shapes, strides and dtypes:
``archive/data.pkl`` (a protocol-2 pickle: the dict, each tensor as ``torch._utils._rebuild_tensor_v2`` of a
persistent storage id), ``.format_version``, ``.storage_alignment``, ``byteorder``, one ``data/<key>`` record
per storage, ``version`` and ``.data/serialization_id``. Every record is stored (no compression) behind a
local header whose extra field pads its data to a 64-byte boundary; records with data carry a data
descriptor; then the central directory and the zip64 end records (always written). The pickle is rebuilt
here opcode by opcode with the pickler's memo, so its length is exact. Checked against the real torch.save
by tests/test_torchsave_size.py (the layout of torch 2.x: a different torch may write different bytes).

From 4 GiB on, a record whose size or local-header offset reaches 0xFFFFFFFF carries a zip64 extra field (8
bytes per such field, in its local and central headers) and a 24-byte data descriptor; the padding counts
them (checked once with a 4 GiB tensor, tests marked slow).
"""

from __future__ import annotations

import struct

import numpy as np

ALIGNMENT = 64  # torch's storage alignment (the .storage_alignment record)
ZIP64_LIMIT = 0xFFFFFFFF  # a size or offset at or above this needs zip64 fields
LOCAL_HEADER, CENTRAL_HEADER, DESCRIPTOR, DESCRIPTOR64 = 30, 46, 16, 24
END_RECORDS = 56 + 20 + 22  # zip64 end of central directory + its locator + end of central directory
FB_EXTRA = 4  # the padding extra field's id and length, before the padding bytes
PREFIX = "archive/"  # the archive name torch uses when writing to a buffer
SMALL_RECORDS = {".format_version": 1, ".storage_alignment": len(str(ALIGNMENT)), "byteorder": len("little")}
TAIL_RECORDS = {"version": 2, ".data/serialization_id": 40}  # b"3\n"; two 20-digit numbers
BATCHSIZE = 1000  # the pickler's SETITEMS batch

_STORAGE = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


class _Pickle:
    """Protocol-2 opcodes as CPython's C pickler writes them, with its memo (objects keyed by identity; the
    objects torch shares between tensors, its "storage" and "cpu" literals and the globals, are keyed here by
    a name). A tensor named "storage" or "cpu" might share the literal's object in torch.save's pickle: the
    size of such a dict is not guaranteed."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo: dict = {}

    def put(self) -> None:
        i = len(self.memo)
        self.memo[object()] = i
        self.out += b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)

    def shared(self, key, write) -> None:
        """An object pickled once and fetched from the memo afterwards."""
        if key in self.memo:
            i = self.memo[key]
            self.out += b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)
            return
        write()
        i = len(self.memo)
        self.memo[key] = i
        self.out += b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)

    def text(self, s: str) -> None:
        """A string object of its own (a tensor name, a storage key made by str(int)): written, memoized."""
        self._unicode(s.encode("utf-8", "surrogatepass"))
        self.put()

    def _unicode(self, b: bytes) -> None:
        self.out += b"X" + struct.pack("<I", len(b)) + b

    def glob(self, module: str, name: str) -> None:
        self.shared(("global", module, name), lambda: self.out.extend(f"c{module}\n{name}\n".encode()))

    def integer(self, n: int) -> None:
        """BININT1 / BININT2 / BININT / LONG1 as the pickler picks them (no memo; written out, not pickled)."""
        if 0 <= n < 0x100:
            self.out += b"K" + bytes([n])
        elif 0 <= n < 0x10000:
            self.out += b"M" + struct.pack("<H", n)
        elif -0x80000000 <= n < 0x80000000:
            self.out += b"J" + struct.pack("<i", n)
        else:  # CPython's encode_long: the shortest little-endian two's complement
            body = n.to_bytes((n.bit_length() >> 3) + 1, "little", signed=True)
            if n < 0 and len(body) > 1 and body[-1] == 0xFF and body[-2] & 0x80:
                body = body[:-1]
            self.out += b"\x8a" + bytes([len(body)]) + body

    def ints(self, values: tuple) -> None:
        if not values:
            self.out += b")"
            return
        if len(values) > 3:
            self.out += b"("
        for v in values:
            self.integer(int(v))
        self.out += b"t" if len(values) > 3 else b"\x85\x86\x87"[len(values) - 1 : len(values)]
        self.put()

    def tensor(self, key: str, a: np.ndarray) -> None:
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # the arguments, then the storage's persistent id
        self.shared(("str", "storage"), lambda: self._unicode(b"storage"))
        self.glob("torch", _STORAGE[a.dtype.name])
        self.text(key)
        self.shared(("str", "cpu"), lambda: self._unicode(b"cpu"))
        self.integer(a.size)
        self.out += b"t"
        self.put()
        self.out += b"Q"  # BINPERSID
        self.integer(0)  # storage offset
        self.ints(a.shape)
        self.ints(tuple(s // a.itemsize for s in a.strides))
        self.out += b"\x89"  # requires_grad False
        self.glob("collections", "OrderedDict")
        self.out += b")R"  # OrderedDict(): the backward hooks
        self.put()
        self.out += b"t"
        self.put()
        self.out += b"R"
        self.put()


def state_dict_pickle(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of ``archive/data.pkl`` that torch.save writes for ``{name: torch.from_numpy(a)}``."""
    p = _Pickle()
    p.out += b"}"
    p.put()
    items = list(arrays.items())
    if len(items) == 1:
        p.text(items[0][0])
        p.tensor("0", items[0][1])
    elif items:
        k = 0
        while True:  # batches of BATCHSIZE, an empty batch after a full last one (as the C pickler does)
            batch = items[k : k + BATCHSIZE]
            p.out += b"("
            for j, (name, a) in enumerate(batch, start=k):
                p.text(name)
                p.tensor(str(j), a)
            p.out += b"u"
            k += len(batch)
            if len(batch) < BATCHSIZE:
                break
    if len(items) == 1:
        p.out += b"s"
    p.out += b"."
    return bytes(p.out)


def torch_save_size(arrays: dict[str, np.ndarray]) -> int:
    """len of what ``torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, io.BytesIO())`` writes
    (a plain dict; the arrays' values are never read). ValueError for a dtype torch has no storage for."""
    for a in arrays.values():
        if a.dtype.name not in _STORAGE:
            raise ValueError(f"torch.save size: no torch storage for dtype {a.dtype}")
    records = [
        ("data.pkl", len(state_dict_pickle(arrays))),
        *SMALL_RECORDS.items(),
        *((f"data/{i}", a.nbytes) for i, a in enumerate(arrays.values())),
        *TAIL_RECORDS.items(),
    ]
    cursor = central = 0
    for name, size in records:
        n = len((PREFIX + name).encode())
        big, far = size >= ZIP64_LIMIT, cursor >= ZIP64_LIMIT  # zip64: 8-byte sizes, an 8-byte offset
        zip64 = (4 + 16 * big + 8 * far) if big or far else 0
        start = cursor + LOCAL_HEADER + n + zip64 + FB_EXTRA
        cursor = start + (-start) % ALIGNMENT + size + (0 if not size else DESCRIPTOR64 if zip64 else DESCRIPTOR)
        central += CENTRAL_HEADER + n + zip64
    return cursor + central + END_RECORDS
