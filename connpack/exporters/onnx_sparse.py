"""Sparse ONNX: weights stored as COO sparse tensors where that is smaller than dense.

Each float initializer whose COO form (float values + linear indices) is smaller than its dense bytes
becomes a ``Constant`` node with a ``sparse_value`` attribute (a SparseTensorProto: values, ascending
linear indices, dims). We use the Constant form rather than ``graph.sparse_initializer``: the bytes are the
same, but onnx shape inference understands it, so ``check_model(full_check=True)`` passes.

Index type: ONNX requires INT64 sparse indices (onnx.checker rejects anything else; onnxruntime 1.32 would
also load int8/16/32, but the file would not be valid ONNX). So COO costs 12 bytes per non-zero against 4
bytes per weight dense: it pays only below 1/3 density.

What it saves: disk only. onnxruntime densifies sparse constants when it creates the session, so memory
and speed are those of the dense graph (onnxruntime issue #5578). The speed comes from compaction
(connpack.exporters.compact). ``kind="sparse"`` is both: compacted, then COO where smaller.

onnx.reference.ReferenceEvaluator (onnx 1.23) cannot run a Constant with sparse_value (its Constant returns
a SparseTensor object and then rejects it); ``reference_evaluator`` adds a Constant that densifies it.
"""

from __future__ import annotations


import numpy as np
import onnx
from onnx import helper, numpy_helper

from connpack.description import Description
from connpack.errors import SpecError
from connpack.exporters import onnx_file

INDEX_BYTES = 8  # int64, the only index type onnx.checker accepts
MIN_SIZE = 64  # leave small tensors (biases, BN statistics) dense


def coo_bytes(nnz: int, itemsize: int = 4) -> int:
    return nnz * (itemsize + INDEX_BYTES)


def sparsify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` with every float32 initializer stored as COO where that is smaller."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    keep, constants = [], []
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            keep.append(init)
            continue
        arr = numpy_helper.to_array(init)
        flat = arr.reshape(-1)
        idx = np.flatnonzero(flat)
        if arr.size < MIN_SIZE or coo_bytes(len(idx)) >= arr.nbytes:
            keep.append(init)
            continue
        values = numpy_helper.from_array(flat[idx], init.name)
        indices = numpy_helper.from_array(idx.astype(np.int64), f"{init.name}:indices")
        sparse = helper.make_sparse_tensor(values, indices, list(arr.shape))
        constants.append(helper.make_node("Constant", [], [init.name], name=f"{init.name}/sparse", sparse_value=sparse))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(constants + nodes)
    return out


def to_onnx(desc: Description, compact: bool = True) -> onnx.ModelProto:
    """Compacted (sequential networks) then COO where smaller; dense torch export for other networks."""
    from connpack.exporters import Graphs

    return build(Graphs(desc), compact)[0]


def build(graphs, compact: bool = True) -> tuple[onnx.ModelProto, str]:
    """(COO graph, note) from a connpack.exporters.Graphs: the compacted graph when ``compact`` and the network
    is a plain chain, else the torch.onnx graph; checked with full_check."""
    base, note = None, ""
    if compact:
        try:
            base, info = graphs.compacted()
            note = f"compacted ({info.units_removed:.1%} hidden units removed); "
        except SpecError:  # not a plain chain (e.g. residual blocks): sparse initializers on the dense graph
            note = "not compacted (not a plain chain); "
    if base is None:
        base = graphs.plain()
    proto = sparsify(base)
    onnx_file.check(proto, full_check=True)
    n_coo = sum(1 for n in proto.graph.node if n.op_type == "Constant" and n.attribute[0].name == "sparse_value")
    return proto, f"{note}{n_coo} tensors as COO (densified at load)"


def reference_evaluator(proto: onnx.ModelProto):
    """onnx.reference.ReferenceEvaluator with a Constant that densifies sparse_value (see module docstring)."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class Constant(OpRun):
        op_domain = ""

        def _run(self, **_):
            sp = getattr(self, "sparse_value", None)
            if sp is not None:
                dense = np.zeros(int(np.prod(sp.shape)), dtype=sp.values.dtype)
                dense[np.asarray(sp.indices, dtype=np.int64).reshape(-1)] = sp.values
                return (dense.reshape(sp.shape),)
            for attr, dtype in (
                ("value", None),
                ("value_float", np.float32),
                ("value_floats", np.float32),
                ("value_int", np.int64),
                ("value_ints", np.int64),
            ):
                v = getattr(self, attr, None)
                if v is not None:
                    return (np.asarray(v, dtype=dtype),)
            raise ValueError("Constant without a value")

    return ReferenceEvaluator(proto, new_ops=[Constant])
