"""connpack.formats: a safe, versioned container of named numpy arrays plus JSON metadata (no torch).

Spec: formats/cpk.md. Public API: Container, encode, decode, write, read, inspect_sections, header_size, CODECS.
"""
from .codecs import CODECS
from .container import (MAGIC, MAX_HEADER, VERSION, Container, SectionInfo, UnknownCodecNameError, coded_size,
                        decode, encode, header_size, inspect_sections, read, write)
from ._util import CorruptPayloadError, entropy_bits

__all__ = ["Container", "SectionInfo", "coded_size", "encode", "decode", "write", "read", "inspect_sections", "header_size",
           "CODECS", "MAGIC", "VERSION", "MAX_HEADER", "CorruptPayloadError", "UnknownCodecNameError",
           "entropy_bits"]
