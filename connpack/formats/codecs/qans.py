"""qans: integer sections (dtype i4, e.g. quantisation indices) as one order-0 symbol stream (cpk.md 5.1)."""

from __future__ import annotations

import numpy as np

from .._util import check_shape, numel
from . import symbols

NAME = "qans"
DTYPES = ("i4",)


def applies(arr: np.ndarray) -> bool:
    return arr.dtype == np.dtype("<i4") and symbols.fits(arr)


def encode(arr: np.ndarray) -> bytes:
    return symbols.encode(arr.ravel())


def decode(payload: bytes, dtype: np.dtype, shape) -> np.ndarray:
    shp = check_shape(shape)
    return symbols.decode(payload, numel(shp)).astype(dtype).reshape(shp)
