"""Exporters: a Description -> a plain torch module / state_dict (``module``), or an ONNX graph.

ONNX kinds (``to_onnx(desc, kind, input)``; ``connpack unpack --kind``, ``connpack.export_onnx(kind=...)``,
``connpack bench`` builds and times every one), all with the same input end (onnx_input: raw input normalised
in the graph, the data contract in metadata_props):

    dense          the materialised network (onnx_dense, through torch.onnx)            any network
    sparse-init    weights as COO sparse constants where smaller (onnx_sparse)        any network
    compact        dead units/channels removed, identical outputs (compact)           sequential networks
    sparse         compact + COO sparse constants (onnx_sparse)                        any network (COO only if not sequential)
    self-decoding  weights regenerated + coded bits decoded in the graph (onnx_selfdecoding)  mask/flip/ternary

Sequential networks also go through a small op IR (``ops``: Op, ops_from_module, spaces), which the compaction
pass (``compact``) rewrites and the op-list ONNX builder (``onnx_ops.to_onnx``) writes out for the compact,
sparse and self-decoding kinds.

A new kind is one module and one line of ``KINDS``: ``(module under connpack.exporters, make)``, where
``make(module, graphs)`` returns ``(onnx.ModelProto, note)``, the note one line on what the kind did (bench prints
it), and raises SpecError (one line: why) for a network the kind cannot express. ``graphs`` (``Graphs``) holds the
intermediate graphs several kinds start from, built once per Description.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from connpack.errors import SpecError

if TYPE_CHECKING:
    import onnx

    from connpack.description import Description

KINDS = {
    "dense": ("onnx_dense", lambda m, graphs: (graphs.plain(), "torch.onnx export")),
    "sparse-init": ("onnx_sparse", lambda m, graphs: m.build(graphs, compact=False)),
    "compact": ("compact", lambda m, graphs: m.build(graphs)),
    "sparse": ("onnx_sparse", lambda m, graphs: m.build(graphs, compact=True)),
    "self-decoding": ("onnx_selfdecoding", lambda m, graphs: (m.to_onnx(graphs.desc), "decoded at session creation")),
}


class Graphs:
    """The graphs of one Description that several kinds start from, each built on first use and handed out as
    copies (kinds change graphs in place): the torch.onnx export, and the compacted graph with its record."""

    def __init__(self, desc: Description):
        self.desc = desc
        self._plain = self._compacted = self._not_compactable = None

    def plain(self) -> onnx.ModelProto:
        """The materialised network through torch.onnx (onnx_dense.to_onnx)."""
        if self._plain is None:
            from connpack.exporters import onnx_dense

            self._plain = onnx_dense.to_onnx(self.desc)
        return _copy(self._plain)

    def compacted(self):
        """(compacted graph, compact.Compaction); SpecError (every call) for a network that is not a plain chain."""
        if self._not_compactable is not None:
            raise SpecError(self._not_compactable)
        if self._compacted is None:
            from connpack.exporters import compact

            try:
                self._compacted = compact.compact_onnx(self.desc)
            except SpecError as e:
                self._not_compactable = str(e)
                raise
        proto, info = self._compacted
        return _copy(proto), info


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = type(proto)()
    out.CopyFrom(proto)
    return out


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SpecError(f"unknown ONNX export kind '{kind}' (choose from {', '.join(KINDS)})")


def build(
    desc: Description, kind: str = "dense", input: str | None = None, graphs: Graphs | None = None
) -> tuple[onnx.ModelProto, str]:
    """(ONNX graph of ``desc`` of the given kind, one-line note on what the kind did); ``graphs``: the shared
    intermediate graphs when several kinds of one Description are built (connpack bench). ``input``: as in to_onnx."""
    check_kind(kind)
    from connpack.exporters import onnx_input

    onnx_input.choose(desc.data, input)  # refuse a bad choice before the (possibly long) export
    module_name, make = KINDS[kind]
    proto, note = make(importlib.import_module(f"connpack.exporters.{module_name}"), graphs or Graphs(desc))
    return onnx_input.finish(proto, desc, input), note


def to_onnx(desc: Description, kind: str = "dense", input: str | None = None) -> onnx.ModelProto:
    """The ONNX graph (onnx.ModelProto) of ``desc`` of the given kind.

    input: "raw" (the graph normalises its input itself, as the data contract records; the default when
    ``desc`` has one) or "normalised" (the input as the network saw it in training; the default otherwise).
    Every kind gets the same input handling and metadata_props (onnx_input.finish).
    """
    return build(desc, kind, input)[0]
