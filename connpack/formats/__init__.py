"""connpack.formats: a safe, versioned container of named numpy arrays plus JSON metadata (no torch).

Spec: formats/cpk.md. Public API: Container, encode, decode, write, read, inspect_sections, header_size, CODECS.
"""

from .codecs import CODECS
from .container import (
    DEFAULT_MAX_ELEMENTS,
    MAGIC,
    MAX_HEADER,
    VERSION,
    Container,
    Section,
    SectionInfo,
    UnknownCodecNameError,
    assemble,
    coded_size,
    decode,
    decode_inspect,
    dtype_code,
    encode,
    encode_section,
    header_size,
    inspect_sections,
    read,
    section_table,
    write,
    write_sections,
)
from ._util import CorruptPayloadError, entropy_bits

__all__ = [
    "Container",
    "Section",
    "SectionInfo",
    "coded_size",
    "encode",
    "encode_section",
    "assemble",
    "write_sections",
    "decode",
    "decode_inspect",
    "write",
    "read",
    "inspect_sections",
    "header_size",
    "section_table",
    "dtype_code",
    "DEFAULT_MAX_ELEMENTS",
    "CODECS",
    "MAGIC",
    "VERSION",
    "MAX_HEADER",
    "CorruptPayloadError",
    "UnknownCodecNameError",
    "entropy_bits",
]
