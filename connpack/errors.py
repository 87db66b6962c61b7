"""One exception tree for everything connpack refuses.

Every failure a user can cause is a ``ConnpackError``; the CLI prints ``str(err)`` on one line and exits
with ``err.exit_code`` (one code per class of failure). Anything else is a bug and exits 70.
"""

from __future__ import annotations


class ConnpackError(Exception):
    """Base class: a user-facing error with a one-line message."""

    exit_code = 1


class SpecError(ConnpackError, ValueError):
    """Invalid option or specification: unknown architecture/method/init, value out of range, misfit shapes."""

    exit_code = 2


class InputFileError(ConnpackError):
    """A file that is missing, unreadable, or not what connpack expected (e.g. a .pt that is not ours)."""

    exit_code = 3


class FormatError(ConnpackError):
    """A .cpk container that fails validation. Subclasses name the exact check that failed."""

    exit_code = 4


class TooSmallError(FormatError):
    pass


class BadMagicError(FormatError):
    pass


class UnsupportedVersionError(FormatError):
    pass


class HeaderTooLargeError(FormatError):
    pass


class InvalidHeaderError(FormatError):
    """Header bytes are not valid (canonical) JSON or do not follow the header schema."""


class UnknownFieldError(FormatError):
    pass


class NonContiguousError(FormatError):
    """Sections overlap, leave holes, or leave trailing bytes."""


class SizeOverflowError(FormatError):
    """A declared size or shape exceeds the caps or the file."""


class ChecksumError(FormatError):
    pass


class UnknownCodecError(FormatError):
    pass


class DecodedLengthError(FormatError):
    """A section decoded to a different number of elements than declared."""


class ShapeMismatchError(FormatError):
    pass


class WeightHashError(FormatError):
    """The regenerated weights do not hash to the value recorded at pack time."""


class DataError(ConnpackError):
    """A dataset that is missing, corrupt or does not fit the model."""

    exit_code = 5


INTERNAL_EXIT_CODE = 70
