"""The .cpk container: round trips, determinism, golden vectors, one negative test per validation step,
allocation caps, fuzzing (hypothesis, small budget), atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connpack import errors as E
from connpack.formats import MAGIC, Container, decode, encode, header_size, inspect_sections, read, write
from connpack.formats import container as C

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "formats" / "vectors"
GOLDEN_CODECS = ["auto", "raw", "zstd", "golomb", "ans", "context"]


# --------------------------------------------------------------------------- fixtures
def golden_container() -> Container:
    """Fixed content (no RNG) covering every dtype, 0-size and 0-d arrays, and row-structured bits."""
    i, j = np.indices((12, 20))
    k = np.arange(3 * 4 * 3 * 3).reshape(3, 4, 3, 3)
    r, c = np.indices((16, 40))
    rows = ((c * 7 + r * 13) % 40) < np.array([0, 40, 2, 20, 5, 0, 38, 1, 3, 10, 0, 40, 6, 9, 30, 4])[:, None]
    return Container(
        meta={
            "format_test": "golden-1",
            "pi": 3.25,
            "list": [1, "a", None, True],
            "unicode": "\u03bc-cpk",
            "nested": {"b": 2, "a": [1.5e-07, -0.0]},
        },
        arrays={
            "a.mask": ((i * 7 + j * 3) % 5) == 0,
            "b.flip": (k % 7) == 3,
            "c.rows": rows,
            "d.f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
            "e.f16": np.arange(4, dtype=np.float16) / 3,
            "f.bf16": (np.arange(5, dtype=np.float32) * 1.25).astype(ml_dtypes.bfloat16),
            "g.u8": np.arange(7, dtype=np.uint8) * 37,
            "h.i8": np.arange(-3, 4, dtype=np.int8),
            "i.i32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
            "j.i64": np.array([2**62, -5], dtype=np.int64),
            "k.f64": np.array([np.pi, -1e300, 0.0]),
            "l.empty": np.zeros((0, 5), dtype=bool),
            "m.scalar": np.array(True),
            "n.zeros": np.zeros(64, dtype=np.float32),
        },
    )


def array_sha(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def libzstd_version() -> str:
    import zstandard

    return ".".join(map(str, zstandard.ZSTD_VERSION))


def pieces(data: bytes) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """(the header JSON text, decompressed; [(section name, codec, payload bytes)])."""
    meta, table, start = C._parse_header(data)
    sections, off = [], start
    for e in table:
        sections.append((e[0], e[3], data[off : off + e[4]]))
        off += e[4]
    return C._canonical({"m": meta, "s": table}), sections


def zstd_dependent(data: bytes) -> bool:
    """True when the file's exact bytes depend on the libzstd version (zstd header or a zstd section)."""
    return data[C.PREFIX_SIZE : C.PREFIX_SIZE + 4] == C.ZSTD_MAGIC or any(c == "zstd" for _, c, _ in pieces(data)[1])


def check_pinned(fname: str, info: dict, data: bytes, fresh: bytes, zstd_version: str) -> None:
    """The golden-vector policy (cpk.md 8). Always pinned: the file's sha256 on disk, the header JSON text and
    every section payload of a codec connpack defines bit for bit (all but zstd). The bytes that libzstd
    produces (a compressed header, zstd sections) are pinned when this libzstd is the one that wrote them;
    with another, their decoded content must still be equal."""
    assert hashlib.sha256(data).hexdigest() == info["sha256"], f"{fname} changed on disk"
    assert data[4:6] == struct.pack("<H", C.VERSION)
    assert zstd_dependent(data) == info["zstd"], fname
    msg = f"the writer's bytes for {fname} changed: bump the container version (or the vector on purpose)"
    (h_old, s_old), (h_new, s_new) = pieces(data), pieces(fresh)
    assert [(n, c) for n, c, _ in s_new] == [(n, c) for n, c, _ in s_old], msg
    for (name, codec, old), (_, _, new) in zip(s_old, s_new):
        if codec != "zstd":
            assert new == old, f"{msg} (section {name!r})"
    if all(codec != "zstd" for _, codec, _ in s_old):
        assert h_new == h_old, f"{msg} (header)"
    if zstd_version == libzstd_version():
        assert fresh == data, msg
    else:
        assert decode(fresh) == decode(data), fname
        # a zstd payload's length (in the header) may change with libzstd; everything else in it may not
        strip = lambda h: json.loads(h)["m"]  # noqa: E731
        assert strip(h_new) == strip(h_old), msg


def regenerate_vectors():  # run by hand: CPK_REGEN=1 pytest tests/test_formats.py -k golden
    VECTORS.mkdir(parents=True, exist_ok=True)
    c = golden_container()
    manifest = {
        "arrays": {
            n: {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": array_sha(a)}
            for n, a in sorted(c.arrays.items())
        },
        "meta": c.meta,
        "files": {},
        "zstd": libzstd_version(),
    }
    for codec in GOLDEN_CODECS:
        data = encode(c, codec=codec)
        (VECTORS / f"golden_{codec}.cpk").write_bytes(data)
        manifest["files"][f"golden_{codec}.cpk"] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "zstd": zstd_dependent(data),
        }
    (VECTORS / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def small_file(codec="auto") -> bytes:
    rng = np.random.default_rng(5)
    return encode(
        Container({"k": "v"}, {"m": rng.random((20, 30)) < 0.2, "w": np.arange(4, dtype=np.float32)}), codec=codec
    )


def craft(header_obj=None, sections=b"", *, header_bytes=None, magic=MAGIC, version=1, hlen=None, hcrc=None):
    hb = header_bytes if header_bytes is not None else C._canonical(header_obj)
    return (
        struct.pack(
            "<4sHII", magic, version, len(hb) if hlen is None else hlen, zlib.crc32(hb) if hcrc is None else hcrc
        )
        + hb
        + sections
    )


def entry(name, payload, shape, codec="raw", dtype="b1"):
    return [name, dtype, list(shape), codec, len(payload), zlib.crc32(payload)]


# --------------------------------------------------------------------------- round trips and determinism
@pytest.mark.parametrize("codec", GOLDEN_CODECS)
def test_round_trip_every_codec(codec):
    c = golden_container()
    data = encode(c, codec=codec)
    assert decode(data) == c
    for n, a in decode(data).arrays.items():
        assert a.dtype == c.arrays[n].dtype and a.shape == c.arrays[n].shape
        assert a.flags.writeable


def test_dict_order_invariance():
    c = golden_container()
    rev = Container(
        meta=json.loads(json.dumps(c.meta))[::1] if False else dict(reversed(list(c.meta.items()))),
        arrays=dict(reversed(list(c.arrays.items()))),
    )
    assert encode(rev) == encode(c)
    assert encode(c) == encode(c)


def test_golden_vectors_pinned():
    if os.environ.get("CPK_REGEN"):
        regenerate_vectors()
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    c = golden_container()
    assert set(manifest["files"]) == {f"golden_{k}.cpk" for k in GOLDEN_CODECS}
    for fname, info in manifest["files"].items():
        data = (VECTORS / fname).read_bytes()
        codec = fname[len("golden_") : -len(".cpk")]
        check_pinned(fname, info, data, encode(c, codec=codec), manifest["zstd"])
        got = decode(data)
        assert got.meta == manifest["meta"]
        for n, info in manifest["arrays"].items():
            assert array_sha(got.arrays[n]) == info["sha256"], n
            assert list(got.arrays[n].shape) == info["shape"]


def test_independent_reader_agrees():
    from tests import independent_reader as ir

    for path in sorted(VECTORS.glob("golden_*.cpk")):
        meta, arrays = ir.read_cpk(path.read_bytes())
        ref = decode(path.read_bytes())
        assert meta == ref.meta
        assert set(arrays) == set(ref.arrays)
        for n, a in arrays.items():
            assert a.dtype == ref.arrays[n].dtype and a.shape == ref.arrays[n].shape, n
            assert a.tobytes() == ref.arrays[n].tobytes(), (path.name, n)


def test_inspect_and_header_size():
    rng = np.random.default_rng(0)
    meta = {
        "arch": "lenet300",
        "rng": {"alg": "philox4x32-10", "seed": 1234},
        "init": {"dist": "signed_constant", "scale": "kaiming_uniform", "gain": 1.0},
        "method": "minimal_flipping",
        "hparams": {"density": 0.08, "epochs": 10},
        "hashes": {"fc1": "0123456789abcdef", "fc2": "fedcba9876543210", "fc3": "0011223344556677"},
    }
    arrays = {
        n: rng.random(s) < 0.08
        for n, s in [("fc1.mask", (300, 784)), ("fc2.mask", (100, 300)), ("fc3.mask", (10, 100))]
    }
    data = encode(Container(meta, arrays))
    infos = inspect_sections(data)
    hs = header_size(data)
    assert hs == infos[0].offset
    assert hs + sum(i.coded_bytes for i in infos) == len(data)
    assert hs <= 0.03 * len(data), (hs, len(data))
    for i in infos:
        assert i.ones == int(arrays[i.name].sum())
        assert i.coded_bytes * 8 <= 1.01 * i.bound_bits + 64 * 8


def test_forced_codec_and_unknown_name():
    data = small_file("golomb")
    assert {i.codec for i in inspect_sections(data) if i.dtype == "b1"} == {"golomb"}
    with pytest.raises(E.UnknownCodecError):
        small_file("lzma")
    with pytest.raises(E.SpecError):
        small_file("lzma")


def test_encode_rejects_bad_content():
    with pytest.raises(E.SpecError):
        encode(Container({"x": float("nan")}, {}))
    with pytest.raises(E.SpecError):
        encode(Container({"x": object()}, {}))
    with pytest.raises(E.SpecError):
        encode(Container({1: 2}, {}))
    with pytest.raises(E.SpecError):
        encode(Container({}, {"a": np.zeros(3, dtype=np.complex64)}))
    with pytest.raises(E.SpecError):
        encode(Container({}, {"": np.zeros(3)}))
    with pytest.raises(E.SpecError):
        encode(Container({}, {"a": [1, 2]}))


# --------------------------------------------------------------------------- one negative test per step
def test_too_small():
    with pytest.raises(E.TooSmallError):
        decode(b"CPK\x00\x01\x00")
    good = small_file()
    with pytest.raises(E.TooSmallError):  # header declared longer than the file
        decode(good[:20])


def test_bad_magic():
    good = small_file()
    with pytest.raises(E.BadMagicError):
        decode(b"PK\x03\x04" + good[4:])


def test_unsupported_version():
    good = bytearray(small_file())
    good[4:6] = struct.pack("<H", 2)
    with pytest.raises(E.UnsupportedVersionError):
        decode(bytes(good))


def test_header_too_large():
    with pytest.raises(E.HeaderTooLargeError):
        decode(craft(header_bytes=b"{}", hlen=C.MAX_HEADER + 1))
    import zstandard  # a compressed header that inflates beyond the cap

    z = zstandard.ZstdCompressor(level=3).compress(b'{"m":{"x":"' + b"a" * (C.MAX_HEADER + 10) + b'"},"s":[]}')
    with pytest.raises(E.HeaderTooLargeError):
        decode(craft(header_bytes=z))


def test_header_checksum():
    good = bytearray(small_file())
    good[16] ^= 1
    with pytest.raises(E.ChecksumError):
        decode(bytes(good))


@pytest.mark.parametrize(
    "hb",
    [
        b"{not json",
        b'{"m":{}, "s":[]}',
        b'{"s":[],"m":{}}',
        b"\xff\xfe",
        b'{"m":{},"m":{},"s":[]}',
        b"[1]",
        b'{"m":{}}',
        b'{"m":[],"s":[]}',
        b'{"m":{},"s":[["a","b1",[2],"raw",1]]}',
        b'{"m":{},"s":[["a","c8",[2],"raw",1,0]]}',
        b'{"m":{},"s":[["a","b1",[-2],"raw",1,0]]}',
        b'{"m":{},"s":[["a","b1",[2],"raw",1,true]]}',
        b'{"m":{},"s":[["b","b1",[],"raw",0,0],["a","b1",[],"raw",0,0]]}',
        b'{"m":{"x":NaN},"s":[]}',
        b"[" * 100000,
    ],
)
def test_invalid_header(hb):
    with pytest.raises(E.InvalidHeaderError):
        decode(craft(header_bytes=hb))


def test_unknown_field():
    with pytest.raises(E.UnknownFieldError):
        decode(craft({"m": {}, "s": [], "x": 1}))
    p = b"\x80"
    with pytest.raises(E.UnknownFieldError):
        decode(craft({"m": {}, "s": [entry("a", p, (1,)) + ["extra"]]}, p))


def test_non_contiguous_trailing_bytes():
    with pytest.raises(E.NonContiguousError):
        decode(small_file() + b"\x00")


def test_size_overflow_length_beyond_file():
    p = b"\x80"
    with pytest.raises(E.SizeOverflowError):
        decode(craft({"m": {}, "s": [["a", "b1", [1], "raw", 5, zlib.crc32(p)]]}, p))


def test_size_overflow_huge_shape_is_cheap():
    payload = b"\x00"  # an "all zeros" ans payload: a valid 1-byte encoding of any shape
    data = craft({"m": {"pad": "x" * 900}, "s": [entry("a", payload, (2**20, 2**20), "ans")]}, payload)
    assert len(data) < 1100
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(E.SizeOverflowError):
        decode(data)
    with pytest.raises(E.SizeOverflowError):  # total over all sections is capped too
        decode(
            craft(
                {"m": {}, "s": [entry("a", payload, (2**30 + 1,), "ans"), entry("b", payload, (2**30,), "ans")]},
                payload * 2,
            )
        )
    with pytest.raises(E.SizeOverflowError):  # and the caller can lower the cap
        decode(craft({"m": {}, "s": [entry("a", payload, (1000, 1000), "ans")]}, payload), max_elements=10**5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20 and time.perf_counter() - t < 1.0


def test_checksum_mismatch_in_section():
    good = bytearray(small_file("ans"))
    good[-20] ^= 0x10  # inside the last section
    with pytest.raises(E.ChecksumError):
        decode(bytes(good))


def test_unknown_codec():
    p = b"\x80"
    with pytest.raises(E.UnknownCodecError):
        decode(craft({"m": {}, "s": [entry("a", p, (1,), "lz4")]}, p))
    with pytest.raises(E.UnknownCodecError):  # a bit codec on a float section
        decode(craft({"m": {}, "s": [entry("a", b"\0\0\0\0", (1,), "ans", "f4")]}, b"\0\0\0\0"))


def test_decoded_length():
    p = b"\x80\x00"  # raw bits: 2 bytes for a 3-bit shape
    with pytest.raises(E.DecodedLengthError):
        decode(craft({"m": {}, "s": [entry("a", p, (3,))]}, p))
    p = b"\0" * 8  # 2 float32 for a 3-element shape
    with pytest.raises(E.DecodedLengthError):
        decode(craft({"m": {}, "s": [entry("a", p, (3,), "raw", "f4")]}, p))
    from connpack.formats.codecs import ans

    p = ans.encode(np.ones(64, bool) & (np.arange(64) % 3 == 0), (64,))  # coded for 64 bits, declared 640
    with pytest.raises(E.DecodedLengthError):
        decode(craft({"m": {}, "s": [entry("a", p, (640,), "ans")]}, p))


def test_shape_mismatch():
    from connpack.formats.codecs import context

    bits = np.arange(12).reshape(3, 4) % 2 == 0
    p = context.encode(bits, bits.shape, (1, 0, 0))
    with pytest.raises(E.ShapeMismatchError):  # a context payload needs >= 2 dimensions
        decode(craft({"m": {}, "s": [entry("a", p, (12,), "context")]}, p))


def test_validation_order():
    """A file broken in two ways reports the earlier check."""
    good = bytearray(small_file())
    bad = bytearray(good)
    bad[4:6] = struct.pack("<H", 9)
    bad += b"junk"
    with pytest.raises(E.UnsupportedVersionError):
        decode(bytes(bad))
    p = b"\x80"
    with pytest.raises(E.NonContiguousError):  # trailing bytes are found before the unknown codec
        decode(craft({"m": {}, "s": [entry("a", p, (1,), "lz4")]}, p + b"x"))


# --------------------------------------------------------------------------- fuzzing (small budget)
_SEEDS = [small_file(c) for c in ("auto", "raw", "zstd", "golomb", "ans", "context")]


def _fix_crcs(data: bytes) -> bytes:
    """Recompute every checksum so that mutations reach the decoders behind them."""
    try:
        meta, table, start = C._parse_header(data)
    except E.ConnpackError:
        return data
    off, out = start, bytearray(data)
    for e in table:
        if off + e[4] > len(data):
            return data
        e[5] = zlib.crc32(data[off : off + e[4]])
        off += e[4]
    hb = C._canonical({"m": meta, "s": table})
    return struct.pack("<4sHII", MAGIC, 1, len(hb), zlib.crc32(hb)) + hb + bytes(out[start:])


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutations_raise_only_connpack_errors(data):
    buf = bytearray(data.draw(st.sampled_from(_SEEDS)))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "byte", "trunc", "extend", "insert", "delete"]))
        if op == "flip" and buf:
            i = data.draw(st.integers(0, len(buf) * 8 - 1))
            buf[i // 8] ^= 1 << (i % 8)
        elif op == "byte" and buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        elif op == "trunc":
            del buf[data.draw(st.integers(0, len(buf))) :]
        elif op == "extend":
            buf += data.draw(st.binary(min_size=1, max_size=16))
        elif op == "insert":
            i = data.draw(st.integers(0, len(buf)))
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            del buf[i : i + data.draw(st.integers(1, 4))]
    blob = bytes(buf)
    if data.draw(st.booleans()):
        blob = _fix_crcs(blob)
    try:
        decode(blob)
    except E.FormatError:
        pass


# --------------------------------------------------------------------------- files
def test_write_read_atomic(tmp_path):
    c = golden_container()
    target = tmp_path / "m.cpk"
    n = write(target, c)
    assert n == target.stat().st_size and read(target) == c
    assert sorted(os.listdir(tmp_path)) == ["m.cpk"]


def test_write_failure_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "m.cpk"
    with pytest.raises(E.SpecError):  # encoding fails: no file at all
        write(target, Container({"x": float("inf")}, {}))
    assert os.listdir(tmp_path) == []

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(E.InputFileError):
        write(target, golden_container())
    assert os.listdir(tmp_path) == []


def test_write_failure_keeps_old_target(tmp_path, monkeypatch):
    target = tmp_path / "m.cpk"
    write(target, golden_container())
    old = target.read_bytes()
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(E.InputFileError):
        write(target, Container({}, {}))
    assert target.read_bytes() == old and os.listdir(tmp_path) == ["m.cpk"]


def test_read_errors(tmp_path):
    with pytest.raises(E.InputFileError):
        read(tmp_path / "missing.cpk")
    with pytest.raises(E.InputFileError):
        read(tmp_path)
    (tmp_path / "bad.cpk").write_bytes(b"hello world, not a cpk")
    with pytest.raises(E.BadMagicError):
        read(tmp_path / "bad.cpk")


def test_ans_known_answers():
    """cpk.md 4's known answers, for connpack's tables and coder and for the independent reader's."""
    import constriction

    from connpack.formats._util import byte_freqs, entropy_model, quantise
    from tests import independent_reader as ir

    for freqs in (byte_freqs, ir._byte_freqs):
        f = list(freqs(9000))
        assert (f[0], f[1], f[255], sum(f)) == (5146215, 819204, 3, 2**24)
        assert tuple(freqs(1)[i] for i in (0, 1, 255)) == (16774921, 256, 1)
    assert list(quantise([3, 0, 1], 4)) == ir._quantise([3, 0, 1], 4) == [12582911, 1, 4194304]
    stream = bytes.fromhex("94140CDF82BCA23C")
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.array([0, 1, 255, 7, 128, 0], dtype=np.int32), entropy_model(byte_freqs(9000)))
    assert np.asarray(coder.get_compressed(), dtype="<u4").tobytes() == stream
    c = ir._Ans(stream)
    assert list(c.decode(ir._byte_freqs(9000), 6)) == [0, 1, 255, 7, 128, 0] and c.empty()
