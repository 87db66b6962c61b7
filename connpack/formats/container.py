"""The .cpk container: magic, version, length-prefixed canonical JSON header, sections end to end.

Normative spec: ``formats/cpk.md`` in the repository. This module knows nothing about neural networks.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from connpack.errors import (
    BadMagicError,
    ChecksumError,
    ConnpackError,
    DecodedLengthError,
    HeaderTooLargeError,
    InputFileError,
    InvalidHeaderError,
    NonContiguousError,
    ShapeMismatchError,
    SizeOverflowError,
    SpecError,
    TooSmallError,
    UnknownCodecError,
    UnknownFieldError,
    UnsupportedVersionError,
)

from ._util import MAX_NDIM, CorruptPayloadError, entropy_bits, zstd_compress, zstd_decompress_exact
from .codecs import CODECS, VALUE_CODECS, applicable

MAGIC = b"CPK\x00"
VERSION = 1
PREFIX = struct.Struct("<4sHII")  # magic, version, header length, crc32 of the header bytes
PREFIX_SIZE = PREFIX.size  # 14
MAX_HEADER = 1 << 20  # bytes, both as stored and after zstd decompression
MAX_NAME = 1024  # bytes of UTF-8
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_MAX_ELEMENTS = 2**31
TOP_KEYS = ("m", "s")
ENTRY_FIELDS = 6  # name, dtype, shape, codec, length, crc32
NUMERIC_CODECS = ("raw", "zstd")


class UnknownCodecNameError(UnknownCodecError, SpecError):
    """A codec name given by the caller (not read from a file) that connpack does not know."""

    exit_code = SpecError.exit_code


def _bf16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


# dtype code in the header -> numpy dtype (little-endian); bf16 is resolved lazily
_DTYPES = {
    "b1": np.dtype(bool),
    "u1": np.dtype("u1"),
    "i1": np.dtype("i1"),
    "i4": np.dtype("<i4"),
    "i8": np.dtype("<i8"),
    "f2": np.dtype("<f2"),
    "f4": np.dtype("<f4"),
    "f8": np.dtype("<f8"),
    "bf16": None,
}


def _np_dtype(code: str) -> np.dtype:
    dt = _DTYPES[code]
    return _bf16() if dt is None else dt


def dtype_code(dt: np.dtype) -> str:
    """The header dtype code of a numpy dtype (cpk.md 2)."""
    for code, d in _DTYPES.items():
        if d is not None and dt == d:
            return code
    if dt.name == "bfloat16":
        return "bf16"
    raise SpecError(f"dtype {dt} is not supported by the container (bool, u1, i1, i4, i8, f2, f4, f8, bfloat16)")


@dataclass(frozen=True, eq=False)
class Container:
    """A JSON metadata object plus named numpy arrays (bool arrays are bit sections).

    ``codecs`` (writer hint, not content): section name -> names of VALUE_CODECS the writer may also try on that
    numeric section; it keeps the smallest payload (ties: raw, zstd, then the order given).
    """

    meta: dict
    arrays: dict
    codecs: dict = field(default_factory=dict)

    def __eq__(self, other):
        if not isinstance(other, Container):
            return NotImplemented
        if _canonical(self.meta) != _canonical(other.meta) or set(self.arrays) != set(other.arrays):
            return False
        for k, a in self.arrays.items():
            b = other.arrays[k]
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                return False
        return True

    __hash__ = None


@dataclass(frozen=True)
class SectionInfo:
    name: str
    dtype: str  # header dtype code
    shape: tuple
    codec: str
    offset: int  # byte offset of the section in the file
    coded_bytes: int
    ones: int | None  # bool sections only
    bound_bits: float | None  # order-0 bound n*H(ones/n), bool sections only

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# --------------------------------------------------------------------------- canonical JSON
def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _check_meta(x, path="meta", depth=0):
    if depth > 64:
        raise SpecError(f"{path}: nested deeper than 64 levels")
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise SpecError(f"{path}: key {k!r} is not a string")
            _check_meta(v, f"{path}.{k}", depth + 1)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _check_meta(v, f"{path}[{i}]", depth + 1)
    elif isinstance(x, float):
        if not math.isfinite(x):
            raise SpecError(f"{path}: {x} is not a finite number")
    elif x is None or isinstance(x, (str, bool, int)):
        pass
    else:
        raise SpecError(f"{path}: {type(x).__name__} is not JSON (use dict, list, str, int, float, bool, None)")


# --------------------------------------------------------------------------- encode
def _encode_numeric(arr: np.ndarray, codec: str, zstd_level: int, extra=()) -> tuple[str, bytes]:
    """raw or zstd; auto keeps the smaller, with zstd at ``zstd_level`` up to 16 * SMALL_SECTION bytes and at
    level 3 above (level 19 costs seconds per 10 MB and gains ~1% on float weights). ``extra``: VALUE_CODECS
    names also tried where they apply (auto only); the smallest payload wins (ties: raw, zstd, ``extra`` order)."""
    raw = arr.tobytes()
    if codec == "raw":
        return "raw", raw
    if codec == "zstd":
        return "zstd", zstd_compress(raw, zstd_level)
    got = {"raw": raw}
    for name in extra:
        mod = VALUE_CODECS.get(name)
        if mod is None:
            raise UnknownCodecNameError(f"unknown value codec {name!r}; known: {', '.join(VALUE_CODECS)}")
        if mod.applies(arr):
            got[name] = mod.encode(arr)
    small = len(raw) <= (16 if not got.keys() - {"raw"} else 1) * SMALL_SECTION  # a value codec: zstd-3 above 64 KiB
    got["zstd"] = zstd_compress(raw, zstd_level if small else ZSTD_PROBE_LEVEL)
    order = ["raw", "zstd", *extra]
    name = min(got, key=lambda k: (len(got[k]), order.index(k)))
    return name, got[name]


ZSTD_PROBE_LEVEL = 3  # a fast zstd pass that tells whether the full-strength one can pay off
SMALL_SECTION = 1 << 16  # packed bytes up to which auto builds every codec at full strength


def _encode_bits(arr: np.ndarray, codec: str, zstd_level: int) -> tuple[str, bytes]:
    names = applicable(arr.shape)
    if codec != "auto" and codec in names:
        mod = CODECS[codec]
        return codec, (mod.encode(arr, arr.shape, level=zstd_level) if codec == "zstd" else mod.encode(arr, arr.shape))
    return _auto_bits(arr, zstd_level)


def _auto_bits(arr: np.ndarray, zstd_level: int) -> tuple[str, bytes]:
    """The smallest of the payloads the applicable codecs offer; ties go to the first codec in CODECS order.

    Codecs are asked stage by stage (``AUTO_STAGE``; CODECS order within a stage), each with the smallest
    payload so far: on sections of more than SMALL_SECTION packed bytes the slow ones offer only when a cheap
    test says they can win (each codec's ``offer``). Deterministic: the choice depends only on the bits.
    """
    shape = arr.shape
    small = (arr.size + 7) // 8 <= SMALL_SECTION
    got: dict[str, bytes] = {}
    for name in sorted(applicable(shape), key=lambda n: CODECS[n].AUTO_STAGE):
        best = min((len(p) for p in got.values()), default=None)
        payload = CODECS[name].offer(arr, shape, best=best, small=small, level=zstd_level)
        if payload is not None:
            got[name] = payload
    order = list(CODECS)
    name = min(got, key=lambda k: (len(got[k]), order.index(k)))
    return name, got[name]


def coded_size(bits: np.ndarray, codec: str = "auto", zstd_level: int = 19) -> int:
    """Bytes of the payload ``encode`` would write for the bool array ``bits`` with ``codec``."""
    _check_codec_name(codec)
    return len(_encode_bits(np.require(np.asarray(bits, dtype=bool), requirements="C"), codec, zstd_level)[1])


@dataclass(frozen=True)
class Section:
    """One coded section (``encode_section``): its header fields and payload, ready for ``assemble``."""

    name: str
    dtype: str  # header dtype code
    shape: tuple
    codec: str
    payload: bytes


def _check_codec_name(codec: str) -> None:
    if codec != "auto" and codec not in CODECS:
        raise UnknownCodecNameError(f"unknown codec {codec!r}; known: auto, {', '.join(CODECS)}")


def encode_section(name: str, arr: np.ndarray, codec: str = "auto", zstd_level: int = 19, extra: tuple = ()) -> Section:
    """Code one array as ``encode`` codes it (see there for ``codec``): a writer can code a network's
    sections one at a time, dropping each array before the next, and ``assemble`` the payloads. ``extra``:
    VALUE_CODECS also tried on a numeric section (Container.codecs)."""
    _check_codec_name(codec)
    if not isinstance(name, str) or not name:
        raise SpecError(f"array name {name!r} must be a non-empty string")
    try:
        if len(name.encode("utf-8")) > MAX_NAME:
            raise SpecError(f"array name longer than {MAX_NAME} bytes")
    except UnicodeEncodeError:
        raise SpecError(f"array name {name!r} is not valid Unicode") from None
    if not isinstance(arr, np.ndarray):
        raise SpecError(f"array {name!r} is a {type(arr).__name__}, not a numpy array")
    if arr.ndim > MAX_NDIM:
        raise SpecError(f"array {name!r} has more than {MAX_NDIM} dimensions")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    code = dtype_code(arr.dtype)
    arr = np.require(arr, requirements="C")
    if code == "b1":
        cname, payload = _encode_bits(arr, codec, zstd_level)
    else:
        cname, payload = _encode_numeric(arr, codec if codec in NUMERIC_CODECS else "auto", zstd_level, extra)
    return Section(name, code, tuple(arr.shape), cname, payload)


def encode(c: Container, codec: str = "auto", zstd_level: int = 19) -> bytes:
    """Serialise a Container to .cpk bytes; the same content gives the same bytes whatever the dict order.

    ``codec="auto"`` tries every applicable codec per section and keeps the smallest (ties: the first in
    ``CODECS`` order); a codec name forces it for every section it applies to (bit codecs for bool sections,
    "raw"/"zstd" for numeric ones); the other sections are coded as with "auto".
    """
    if not isinstance(c, Container):
        raise SpecError("encode() takes a Container")
    _check_codec_name(codec)
    if not isinstance(c.meta, dict):
        raise SpecError("Container.meta must be a dict")
    _check_meta(c.meta)
    if not isinstance(c.arrays, dict):
        raise SpecError("Container.arrays must be a dict")
    return assemble(
        c.meta,
        [
            encode_section(name, c.arrays[name], codec, zstd_level, tuple(c.codecs.get(name, ())))
            for name in sorted(c.arrays)
        ],
    )


def assemble(meta: dict, sections: list[Section]) -> bytes:
    """The .cpk bytes of ``meta`` and coded ``sections`` (any order: they are laid out sorted by name)."""
    if not isinstance(meta, dict):
        raise SpecError("Container.meta must be a dict")
    _check_meta(meta)
    sections = sorted(sections, key=lambda sec: sec.name)
    for a, b in zip(sections, sections[1:]):
        if a.name == b.name:
            raise SpecError(f"two sections named {a.name!r}")
    entries = [
        [sec.name, sec.dtype, list(sec.shape), sec.codec, len(sec.payload), zlib.crc32(sec.payload)] for sec in sections
    ]
    payloads = [sec.payload for sec in sections]
    try:
        header = _canonical({"m": meta, "s": entries})
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise SpecError(f"metadata is not serialisable as canonical JSON: {e}") from None
    if len(header) > MAX_HEADER:
        raise SpecError(f"header of {len(header)} bytes exceeds the {MAX_HEADER}-byte cap")
    z = zstd_compress(header, 19)
    if len(z) < len(header):
        header = z
    return PREFIX.pack(MAGIC, VERSION, len(header), zlib.crc32(header)) + header + b"".join(payloads)


# --------------------------------------------------------------------------- decode
def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise InvalidHeaderError(f"duplicate key {k!r} in header")
        d[k] = v
    return d


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_header(data: bytes):
    """Steps 1-7 of the validation order; returns (meta, entries, start of the first section)."""
    if len(data) < PREFIX_SIZE:
        raise TooSmallError(f"file of {len(data)} bytes is shorter than the {PREFIX_SIZE}-byte prefix")
    magic, version, hlen, hcrc = PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BadMagicError(f"not a .cpk file (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise UnsupportedVersionError(f".cpk version {version} is not supported (this reader reads {VERSION})")
    if hlen > MAX_HEADER:
        raise HeaderTooLargeError(f"header of {hlen} bytes exceeds the {MAX_HEADER}-byte cap")
    if PREFIX_SIZE + hlen > len(data):
        raise TooSmallError(f"file of {len(data)} bytes is shorter than its {hlen}-byte header")
    hbytes = bytes(data[PREFIX_SIZE : PREFIX_SIZE + hlen])
    if zlib.crc32(hbytes) != hcrc:
        raise ChecksumError("header checksum mismatch")
    if hbytes[:4] == ZSTD_MAGIC:
        try:
            hbytes = zstd_decompress_exact_header(hbytes)
        except ConnpackError as e:
            if isinstance(e, HeaderTooLargeError):
                raise
            raise InvalidHeaderError(f"compressed header does not decompress: {e}") from None
    try:
        text = hbytes.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_dupes)
    except InvalidHeaderError:
        raise
    except (ValueError, RecursionError) as e:
        raise InvalidHeaderError(f"header is not valid UTF-8 JSON: {e}") from None
    try:
        canon = _canonical(obj)
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        canon = None
    if canon != hbytes:
        raise InvalidHeaderError("header JSON is not canonical (sorted keys, no spaces, UTF-8)")
    if not isinstance(obj, dict):
        raise InvalidHeaderError("header is not a JSON object")
    extra = sorted(set(obj) - set(TOP_KEYS))
    if extra:
        raise UnknownFieldError(f"unknown header field(s) {extra}")
    for k in TOP_KEYS:
        if k not in obj:
            raise InvalidHeaderError(f"header lacks the field {k!r}")
    meta, table = obj["m"], obj["s"]
    if not isinstance(meta, dict):
        raise InvalidHeaderError("header field 'm' (meta) is not an object")
    if not isinstance(table, list):
        raise InvalidHeaderError("header field 's' (sections) is not a list")
    prev = None
    for e in table:
        if not isinstance(e, list) or len(e) < ENTRY_FIELDS:
            raise InvalidHeaderError(f"section entry {e!r:.80} is not a list of {ENTRY_FIELDS} fields")
        if len(e) > ENTRY_FIELDS:
            raise UnknownFieldError(f"section entry has {len(e)} fields, this version knows {ENTRY_FIELDS}")
        name, code, shape, cname, length, crc = e
        if not isinstance(name, str) or not name or len(name.encode("utf-8")) > MAX_NAME:
            raise InvalidHeaderError(f"section name {name!r:.80} invalid")
        if prev is not None and not prev < name:
            raise InvalidHeaderError(f"section names not strictly increasing at {name!r:.80}")
        prev = name
        if code not in _DTYPES:
            raise InvalidHeaderError(f"section {name!r}: unknown dtype {code!r:.20}")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_int(d) and d >= 0 for d in shape):
            raise InvalidHeaderError(f"section {name!r}: shape {shape!r:.80} invalid")
        if not isinstance(cname, str):
            raise InvalidHeaderError(f"section {name!r}: codec is not a string")
        if not _is_int(length) or length < 0:
            raise InvalidHeaderError(f"section {name!r}: length {length!r:.40} invalid")
        if not _is_int(crc) or not 0 <= crc < 2**32:
            raise InvalidHeaderError(f"section {name!r}: crc32 {crc!r:.40} invalid")
    return meta, table, PREFIX_SIZE + hlen


def zstd_decompress_exact_header(z: bytes) -> bytes:
    import zstandard

    try:
        size = zstandard.get_frame_parameters(z).content_size
    except Exception as e:
        raise InvalidHeaderError(f"compressed header is not a zstd frame: {e}") from None
    if size > MAX_HEADER:  # also catches an undeclared size (reported as 2**64-1)
        raise HeaderTooLargeError(f"decompressed header of {size} bytes exceeds the {MAX_HEADER}-byte cap")
    return zstd_decompress_exact(z, size)


def _validate_layout(data: bytes, table, start: int, max_elements: int) -> list[int]:
    """Steps 8-9: contiguity and size caps; returns the section offsets."""
    total = sum(e[4] for e in table)
    remaining = len(data) - start
    if total > remaining:
        raise SizeOverflowError(f"sections declare {total} bytes, only {remaining} follow the header")
    if total < remaining:
        raise NonContiguousError(f"{remaining - total} trailing bytes after the last section")
    elems = 0
    for name, code, shape, _c, length, _crc in table:
        n = math.prod(shape)
        elems += n
        if n > max_elements or elems > max_elements:
            raise SizeOverflowError(f"section {name!r}: {n} elements exceed the cap of {max_elements} (in total)")
    offsets, off = [], start
    for e in table:
        offsets.append(off)
        off += e[4]
    return offsets


def _decode_section(payload: bytes, code: str, shape: tuple, cname: str) -> np.ndarray:
    n = math.prod(shape)
    if code == "b1":
        try:
            arr = CODECS[cname].decode(payload, shape)
        except (ConnpackError, MemoryError):
            raise
        except Exception as e:  # a codec bug or library error on crafted input: still a format error
            raise CorruptPayloadError(f"{cname} payload does not decode: {type(e).__name__}: {e}") from None
    else:
        dt = _np_dtype(code)
        need = n * dt.itemsize
        if cname in VALUE_CODECS:
            try:
                arr = VALUE_CODECS[cname].decode(payload, dt, shape)
            except (ConnpackError, MemoryError):
                raise
            except Exception as e:
                raise CorruptPayloadError(f"{cname} payload does not decode: {type(e).__name__}: {e}") from None
            return arr
        raw = payload if cname == "raw" else zstd_decompress_exact(payload, need)
        if len(raw) != need:
            raise DecodedLengthError(f"{len(raw)} bytes for {n} elements of {code}")
        arr = np.frombuffer(raw, dtype=dt).copy()
    if arr.size != n:
        raise DecodedLengthError(f"decoded {arr.size} elements, declared {n}")
    if arr.shape != shape:
        try:
            arr = arr.reshape(shape)
        except ValueError:
            raise ShapeMismatchError(f"decoded shape {arr.shape}, declared {shape}") from None
    return arr


def _sections(data: bytes, max_elements: int):
    meta, table, start = _parse_header(data)
    offsets = _validate_layout(data, table, start, max_elements)
    mv = memoryview(data)
    for e, off in zip(table, offsets):
        if zlib.crc32(mv[off : off + e[4]]) != e[5]:
            raise ChecksumError(f"section {e[0]!r}: checksum mismatch")
    for e in table:
        allowed = CODECS if e[1] == "b1" else NUMERIC_CODECS
        if e[3] not in allowed and not (e[3] in VALUE_CODECS and e[1] in VALUE_CODECS[e[3]].DTYPES):
            raise UnknownCodecError(f"section {e[0]!r}: unknown codec {e[3]!r:.40} for dtype {e[1]}")
    return meta, table, offsets


def section_table(table) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{name: (dtype code, shape)} of a validated section table."""
    return {e[0]: (e[1], tuple(e[2])) for e in table}


def decode(data: bytes, *, max_elements: int = DEFAULT_MAX_ELEMENTS, validate=None) -> Container:
    """Parse and fully validate .cpk bytes. Raises only FormatError subclasses on bad input.

    ``validate(meta, sections)``, if given, runs after the checks of steps 1-13 of cpk.md 3 and before any
    payload is decoded (``sections``: ``section_table``): a layer above refuses bad metadata there, before
    paying for decoding.
    """
    return decode_inspect(data, max_elements=max_elements, validate=validate)[0]


def decode_inspect(
    data: bytes, *, max_elements: int = DEFAULT_MAX_ELEMENTS, validate=None
) -> tuple[Container, list[SectionInfo]]:
    """``decode`` and ``inspect_sections`` in one pass (every section decoded once)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SpecError("decode() takes bytes")
    data = bytes(data)
    meta, table, offsets = _sections(data, max_elements)
    if validate is not None:
        validate(meta, section_table(table))
    arrays, infos = {}, []
    for (name, code, shape, cname, length, _crc), off in zip(table, offsets):
        arr = arrays[name] = _decode_section(data[off : off + length], code, tuple(shape), cname)
        ones = bound = None
        if code == "b1":
            ones = int(np.count_nonzero(arr))
            bound = entropy_bits(arr.size, ones)
        infos.append(SectionInfo(name, code, tuple(shape), cname, off, length, ones, bound))
    return Container(meta=meta, arrays=arrays), infos


def header_size(data: bytes) -> int:
    """Bytes before the first section (prefix + stored header), after validating the header."""
    _meta, _table, start = _parse_header(bytes(data))
    return start


def inspect_sections(data: bytes, *, max_elements: int = DEFAULT_MAX_ELEMENTS) -> list[SectionInfo]:
    """Per-section facts (decodes bool sections to count ones). Validates like decode()."""
    data = bytes(data)
    _meta, table, offsets = _sections(data, max_elements)
    out = []
    for (name, code, shape, cname, length, _crc), off in zip(table, offsets):
        ones = bound = None
        if code == "b1":
            arr = _decode_section(data[off : off + length], code, tuple(shape), cname)
            ones = int(np.count_nonzero(arr))
            bound = entropy_bits(arr.size, ones)
        out.append(SectionInfo(name, code, tuple(shape), cname, off, length, ones, bound))
    return out


# --------------------------------------------------------------------------- files
def write(path, c: Container, codec: str = "auto", zstd_level: int = 19) -> int:
    """Atomically write ``c`` to ``path``: the bytes go to a hidden temp file ``.<name>.<random>.tmp`` in the
    same directory, which is fsynced and renamed over ``path`` (os.replace), then the directory is fsynced.
    ``path`` is therefore either absent, its old content, or the complete new file; on an error the temp file
    is removed; only a killed process (SIGKILL, power loss) can leave a ``.<name>.*.tmp`` behind."""
    from connpack.atomic import write_bytes  # pure Python, no torch

    return write_bytes(path, encode(c, codec=codec, zstd_level=zstd_level))


def write_sections(path, meta: dict, sections: list[Section]) -> int:
    """``write`` for sections coded one at a time (``encode_section``); the same bytes as ``write`` of
    the Container they came from."""
    from connpack.atomic import write_bytes  # pure Python, no torch

    return write_bytes(path, assemble(meta, sections))


def read(path, *, max_elements: int = DEFAULT_MAX_ELEMENTS, validate=None) -> Container:
    """Read and validate a .cpk file. Missing/unreadable -> InputFileError; invalid -> FormatError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputFileError(f"cannot read {os.fspath(path)}: {e.strerror or e}") from None
    return decode(data, max_elements=max_elements, validate=validate)
