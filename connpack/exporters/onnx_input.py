"""The input end of every ONNX export (all kinds go through ``finish``): the data contract in the graph.

- ``raw`` input (the default when the network records its data contract, connpack.contract): the graph takes
  the raw input (images: pixels / 255, in [0, 1]) and normalises it itself, ``(x - mean[c]) / std[c]``, with
  one Sub and one Div at the input (float32, the same arithmetic as training's preprocessing, bit for bit).
  A deployer needs no constant that is written nowhere.
- ``normalised`` input: the graph takes what the network saw in training (the only choice for a network
  whose contract is unknown).

``metadata_props`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``) always holds ``input``
("raw" or "normalised"), ``connpack_version``, ``arch`` and ``seed``; with a contract also ``dataset``,
``mean``, ``std`` and, when recorded, ``range`` and ``classes`` (JSON lists). ``read_contract`` reads them
back (connpack eval on an .onnx file).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper

from connpack.contract import DataContract
from connpack.errors import InputFileError, SpecError
from connpack.exporters import onnx_file

INPUTS = ("raw", "normalised")
MEAN, STD, CENTRED, NORMALISED = "connpack_input_mean", "connpack_input_std", "connpack_centred", "connpack_normalised"


def choose(data: DataContract | None, input: str | None) -> str:
    """The input handling: ``input`` if given (raw needs a contract), else raw when there is a contract."""
    if input is None:
        return "raw" if data is not None else "normalised"
    if input not in INPUTS:
        raise SpecError(f"unknown input handling '{input}' (choose from {', '.join(INPUTS)})")
    if input == "raw" and data is None:
        raise SpecError(
            "the network records no data contract, so the normalisation of its input is unknown: "
            "export it with --normalised-input, or pack it again with --dataset/--mean/--std"
        )
    return input


def _image_input(graph: onnx.GraphProto) -> onnx.ValueInfoProto:
    inits = {i.name for i in graph.initializer} | {i.values.name for i in graph.sparse_initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise SpecError(f"the graph has {len(inputs)} inputs; input normalisation needs exactly one")
    return inputs[0]


def normalise_at_input(proto: onnx.ModelProto, mean, std) -> None:
    """Make ``proto`` take raw input: Sub(mean) then Div(std) per channel, before every use of the input."""
    graph = proto.graph
    name = _image_input(graph).name
    used = {n for node in graph.node for n in (*node.input, *node.output)} | {i.name for i in graph.initializer}
    clash = used & {MEAN, STD, CENTRED, NORMALISED}
    if clash:
        raise SpecError(f"the graph already has a value named {min(clash)!r}")
    if any(o.name == name for o in graph.output):
        raise SpecError("the graph's input is also an output; cannot normalise it")
    for node in graph.node:
        for i, n in enumerate(node.input):
            if n == name:
                node.input[i] = NORMALISED
    shape = (1, len(mean), 1, 1)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(mean, np.float32).reshape(shape), MEAN),
            numpy_helper.from_array(np.asarray(std, np.float32).reshape(shape), STD),
        ]
    )
    nodes = [
        helper.make_node("Sub", [name, MEAN], [CENTRED], name="connpack_sub_mean"),
        helper.make_node("Div", [CENTRED, STD], [NORMALISED], name="connpack_div_std"),
        *graph.node,
    ]
    del graph.node[:]
    graph.node.extend(nodes)


def finish(proto: onnx.ModelProto, desc, input: str | None = None) -> onnx.ModelProto:
    """``proto`` (any export kind of ``desc``) with the chosen input handling and the metadata (in place)."""
    from connpack import __version__

    data: DataContract | None = desc.data
    kind = choose(data, input)
    if kind == "raw":
        normalise_at_input(proto, data.mean, data.std)
        rng = f" in [{data.range[0]:g}, {data.range[1]:g}]" if data.range else ""
        _image_input(proto.graph).doc_string = f"raw input{rng}; normalised inside the graph ({data.dataset})"
    props = {
        "input": kind,
        "connpack_version": __version__,
        "arch": desc.spec.model.arch,
        "seed": str(desc.spec.rng.seed),
    }
    if data is not None:
        props.update(dataset=data.dataset, mean=json.dumps(list(data.mean)), std=json.dumps(list(data.std)))
        if data.range is not None:
            props["range"] = json.dumps(list(data.range))
        if data.classes is not None:
            props["classes"] = json.dumps(list(data.classes), ensure_ascii=False)
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    helper.set_model_props(proto, {**{p.key: p.value for p in keep}, **props})
    onnx_file.check(proto)
    return proto


def read_contract(proto: onnx.ModelProto, where: str = "the graph") -> tuple[DataContract | None, str]:
    """(data contract, "raw" | "normalised") from an ONNX graph's metadata_props. A graph without them (not
    exported by connpack, or before it recorded them) takes normalised input and has no contract."""
    props = {p.key: p.value for p in proto.metadata_props}
    kind = props.get("input", "normalised")
    if kind not in INPUTS:
        raise InputFileError(f"{where}: metadata 'input' is {kind!r:.40}, not raw or normalised")
    if "dataset" not in props:
        if kind == "raw":
            raise InputFileError(f"{where}: takes raw input but records no dataset (metadata 'dataset')")
        return None, kind
    try:
        load = lambda key: tuple(json.loads(props[key])) if key in props else None  # noqa: E731
        data = DataContract(props["dataset"], load("mean"), load("std"), load("range"), load("classes"))
    except (ValueError, TypeError, SpecError) as e:
        raise InputFileError(f"{where}: malformed data contract in its metadata ({e})"[:300]) from None
    return data, kind
