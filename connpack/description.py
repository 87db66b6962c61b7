"""The network description: everything needed to rebuild a network, as plain numpy data.

    Description = NetworkSpec + one TensorCode per connectivity-bearing weight + other dense tensors
                  (+ the data contract: dataset and input preparation, connpack.contract)

A TensorCode says how the effective weight W is obtained from the generated weight G (connpack.rng):

    mask      W = G * mask                                  (free/minimal pruning, edge-popup, IMP tickets)
    flip      W = G * (1 - 2*flip)                          (free/minimal flipping; flip = 1 where the sign changed)
    ternary   W = mask * (c_pos if sign else c_neg)         (ASNI's centroid network; G unused)
    values    W = 0 except W[mask] = values (C order)       (trained sparse weights: IMP finetuned, ASNI A, torch-pruned)
    dense     W = values                                    (baseline training, anything else)

Trainers produce a Description, pack codes it, unpack decodes it, exporters materialise it.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from connpack import rng
from connpack.contract import DataContract
from connpack.errors import SpecError, WeightHashError
from connpack.specs import NetworkSpec

KINDS = ("mask", "flip", "ternary", "values", "dense")
_HASH_CHUNK = 1 << 20  # elements: a regenerated weight is hashed in chunks of this size while the next is made
USES_GENERATED = ("mask", "flip")


@dataclass
class TensorCode:
    kind: str
    shape: tuple[int, ...]
    bits: np.ndarray | None = None  # mask (mask/ternary/values) or flip bits (flip), bool, full shape
    signs: np.ndarray | None = None  # ternary: bool over the kept weights in C order, True = positive
    centroids: tuple[float, float] | None = None  # ternary: (c_neg, c_pos), float32 values
    values: np.ndarray | None = None  # values: kept values (1-D); dense: full array

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if self.kind not in KINDS:
            raise SpecError(f"unknown tensor kind '{self.kind}' (choose from {', '.join(KINDS)})")
        if self.kind in ("mask", "flip", "ternary", "values"):
            if self.bits is None or self.bits.dtype != np.bool_ or self.bits.shape != self.shape:
                raise SpecError(f"{self.kind} tensor needs boolean bits of shape {self.shape}")
        if self.kind == "ternary":
            kept = int(self.bits.sum())
            if self.signs is None or self.signs.dtype != np.bool_ or self.signs.shape != (kept,):
                raise SpecError(f"ternary tensor needs {kept} sign bits")
            if self.centroids is None or len(self.centroids) != 2:
                raise SpecError("ternary tensor needs two centroids (c_neg, c_pos)")
        if self.kind == "values":
            if self.values is None or self.values.shape != (int(self.bits.sum()),):
                raise SpecError("values tensor needs one value per kept weight")
        if self.kind == "dense" and (self.values is None or self.values.shape != self.shape):
            raise SpecError(f"dense tensor needs values of shape {self.shape}")

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def density(self) -> float:
        """Fraction of ones in the bits (kept for masks, flipped for flip bits); 1.0 for dense."""
        if self.bits is None:
            return 1.0
        return float(self.bits.mean()) if self.bits.size else 0.0

    def materialize(self, generated: np.ndarray | None, *, inplace: bool = False) -> np.ndarray:
        """The effective float32 weight (``inplace``: computed in the float32 ``generated`` array itself)."""
        if self.kind in USES_GENERATED:
            if generated is None or generated.shape != self.shape:
                raise SpecError(f"{self.kind} tensor needs the generated weight of shape {self.shape}")
            w = generated if inplace and generated.dtype == np.float32 else generated.astype(np.float32)
            if rng.kernel() is not None and w.flags.c_contiguous:  # one compiled pass, the same bits as below
                rng.kernel().apply(
                    w.reshape(-1), np.ascontiguousarray(self.bits).reshape(-1).view(np.uint8), self.kind == "flip"
                )
                return w
            if self.kind == "mask":  # +0.0 where pruned
                np.copyto(w, np.float32(0), where=~self.bits)
            else:
                np.negative(w, out=w, where=self.bits)
            return w
        out = np.zeros(self.shape, dtype=np.float32)
        if self.kind == "ternary":
            c_neg, c_pos = (np.float32(c) for c in self.centroids)
            out[self.bits] = np.where(self.signs, c_pos, c_neg)
        elif self.kind == "values":
            np.place(out, self.bits, self.values.astype(np.float32, copy=False))  # = out[bits] = values, faster
        else:
            out[...] = self.values.astype(np.float32)
        return out


@dataclass
class Description:
    spec: NetworkSpec
    tensors: dict[str, TensorCode]  # connectivity-bearing weights, in tensor-index order
    dense: dict[str, np.ndarray] = field(default_factory=dict)  # biases, batch-norm statistics, ...
    weight_hashes: dict[str, str] = field(default_factory=dict)  # rng.tensor_hash of each generated weight
    data: DataContract | None = None  # the dataset and input preparation (None: not recorded)
    # the hash-checked state_dict and the hashes it was checked against, kept after the first verified call: a
    # reader checks every weight before it imports anything heavy, and the exporters reuse the checked tensors
    _checked: tuple[dict, dict] | None = field(default=None, init=False, repr=False, compare=False)

    def generated(self) -> dict[str, np.ndarray]:
        """Regenerate the fixed weights the mask/flip tensors refer to (index = position in ``tensors``)."""
        out = {}
        for index, (name, code) in enumerate(self.tensors.items()):
            if code.kind in USES_GENERATED:
                out[name] = rng.generate(self.spec.init_for(name), self.spec.rng.seed, index, code.shape)
        return out

    def record_hashes(self, generated: dict[str, np.ndarray]) -> None:
        self.weight_hashes = {name: rng.tensor_hash(w) for name, w in generated.items()}

    def verify(self, generated: dict[str, np.ndarray]) -> None:
        """Refuse (WeightHashError) a regenerated weight whose hash differs from the recorded one."""
        todo = [(name, w) for name, w in generated.items() if name in self.weight_hashes]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:  # sha256 releases the GIL
            got = list(ex.map(lambda item: rng.tensor_hash(item[1]), todo))
        for (name, _), h in zip(todo, got):
            if h != self.weight_hashes[name]:
                raise WeightHashError(f"regenerated weight '{name}' does not match its recorded hash")

    def _generated_stream(self, verify: bool):
        """(index, name, code, generated weight or None) for every tensor, in order. The generated weights are
        made in chunks of _HASH_CHUNK elements, one chunk ahead on a worker thread (the kernel spreads each
        over the rng threads), while this thread hashes the chunk before, across tensor boundaries: tensor i+1
        is being made while tensor i is hashed. With ``verify`` a weight whose hash differs raises
        WeightHashError before it is yielded (at most one chunk of the next tensor was made by then)."""
        init_of, seed = self.spec.init_for, self.spec.rng.seed
        gen = [
            (index, name, code.shape)
            for index, (name, code) in enumerate(self.tensors.items())
            if code.kind in USES_GENERATED
        ]
        jobs = [
            (index, name, shape, a, min(math.prod(shape), a + _HASH_CHUNK))
            for index, name, shape in gen
            for a in range(0, math.prod(shape), _HASH_CHUNK)
        ]
        bufs: dict[int, np.ndarray] = {}

        def make(job):
            index, name, shape, a, b = job
            if a == 0:  # jobs run one after the other on the one worker: the buffer exists before its chunks
                bufs[index] = np.empty(math.prod(shape), np.float32)
            return rng.generate_range(init_of(name), seed, index, shape, a, b, out=bufs[index][a:b])

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="connpack-gen") as ex:
            pending = deque([ex.submit(make, jobs[0])] if jobs else [])
            ahead = 1
            for index, (name, code) in enumerate(self.tensors.items()):
                if code.kind not in USES_GENERATED:
                    yield index, name, code, None
                    continue
                n = math.prod(code.shape)
                sha = hashlib.sha256() if verify and name in self.weight_hashes else None
                for _a in range(0, n, _HASH_CHUNK):
                    chunk = pending.popleft().result()
                    if ahead < len(jobs):
                        pending.append(ex.submit(make, jobs[ahead]))
                        ahead += 1
                    if sha is not None:
                        sha.update(chunk.astype("<f4", copy=False))  # releases the GIL
                g = bufs.pop(index) if n else np.zeros(0, np.float32)
                if sha is not None and sha.hexdigest()[:16] != self.weight_hashes[name]:
                    raise WeightHashError(f"regenerated weight '{name}' does not match its recorded hash")
                yield index, name, code, g.reshape(code.shape)

    def state_dict(self, verify: bool = True, progress=None) -> dict[str, np.ndarray]:
        """Effective weights + dense tensors: what a plain (materialised) network loads. With ``verify``
        each regenerated weight's hash is checked as soon as it is made (WeightHashError before the next).
        The verified result is kept while the recorded hashes stay the same (the arrays are shared: callers
        must not write into them). ``progress``: called with {"done": i, "total": n, "name": tensor} after each
        connectivity tensor."""
        if verify and self._checked is not None and self._checked[0] == self.weight_hashes:
            return dict(self._checked[1])
        out = {}
        for index, name, code, g in self._generated_stream(verify):
            out[name] = code.materialize(g, inplace=True)
            if progress is not None:
                progress({"done": index + 1, "total": len(self.tensors), "name": name})
        out.update(self.dense)
        if verify:
            self._checked = (dict(self.weight_hashes), out)
            return dict(out)
        return out
