"""The SNN bundle: an integer spiking network for the event core on disk.

Plain ``.npy`` arrays and one JSON file, no torch, no pickle (``allow_pickle=False``)::

    snn_bundle.json        schema, input shape, SnnSpec, layers in order (neuron
                           settings, widths, dataflow), meta
    <layer>.weight.npy     int32 weights, [N, C, k, k] (conv) or [N, K] (fc)

Written into a temporary folder beside the destination and renamed into place, so a
crash never leaves half a bundle. Loading checks every field and array and raises
:class:`~cimstack.errors.BundleError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .bundle import (MAX_JSON_BYTES, check_object, get_field, get_shape, load_array,
                     read_schema_doc)
from .config import SnnSpec
from .errors import BundleError, ConfigError
from .fileio import atomic_folder, jsonable
from .ref.snn import SnnLayer, SnnNet

SCHEMA = "cimstack-snn-bundle"
SCHEMA_VERSION = 1
META_FILE = "snn_bundle.json"
_NEURON = ("theta", "w_bits", "v_bits", "leak_shift", "reset", "overflow", "dataflow")
# neuron options added later: optional on load (absent = SnnLayer's default, the old
# behaviour), so older bundles load and run unchanged
_NEURON_OPTIONS = ("fire", "leak_order", "v_init")
_STR_FIELDS = ("reset", "overflow", "dataflow", "fire", "leak_order")
TOP_KEYS = ("schema", "schema_version", "name", "input_shape", "spec", "layers", "meta")
POOL_KEYS = ("name", "op", "in_shape", "out_shape", "kernel")
SPIKING_KEYS = ("name", "op", "in_shape", "out_shape", *_NEURON, *_NEURON_OPTIONS, "padding",
                "stride", "weight", "weight_shape")


def _layer_json(layer: SnnLayer) -> dict:
    d = {"name": layer.name, "op": layer.op, "in_shape": list(layer.in_shape),
         "out_shape": list(layer.out_shape)}
    if layer.op == "pool":
        d["kernel"] = layer.kernel
    else:
        d.update({k: getattr(layer, k) for k in (*_NEURON, *_NEURON_OPTIONS)})
        d.update(padding=layer.padding, stride=layer.stride, weight=f"{layer.name}.weight.npy",
                 weight_shape=list(layer.weight.shape))
    return d


def save_snn_bundle(net: SnnNet, path: str | os.PathLike, force: bool = False) -> Path:
    """Validate and write ``net`` to the folder ``path`` atomically (a folder that
    cimstack did not write is replaced only with ``force``)."""
    try:
        net.validate()
    except ConfigError as exc:
        raise BundleError(f"cannot save {net.name}: {exc}") from None
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": net.name,
           "input_shape": list(net.input_shape), "spec": net.spec.to_dict(),
           "layers": [_layer_json(l) for l in net.layers], "meta": net.meta}
    with atomic_folder(path, force, kind="snn bundle") as tmp:
        for layer in net.layers:
            if layer.spiking:
                np.save(tmp / f"{layer.name}.weight.npy", layer.weight.astype(np.int32),
                        allow_pickle=False)
        (tmp / META_FILE).write_text(json.dumps(doc, indent=2, default=jsonable) + "\n")
    return Path(path)


def is_snn_bundle(path: str | os.PathLike) -> bool:
    """True when ``path`` holds an SNN bundle (its snn_bundle.json names this schema)."""
    meta = Path(path) / META_FILE
    try:     # a regular file of sane size only: a FIFO would block, a huge file fill memory
        if not meta.is_file() or meta.stat().st_size > MAX_JSON_BYTES:
            return False
        return json.loads(meta.read_text()).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def load_snn_bundle(path: str | os.PathLike) -> SnnNet:
    """Read and validate an SNN bundle folder (or its snn_bundle.json)."""
    folder = Path(path)
    if folder.name == META_FILE:
        folder = folder.parent
    meta = folder / META_FILE
    doc = read_schema_doc(meta, SCHEMA, SCHEMA_VERSION, "cimstack SNN bundle",
                          "write one with `cimstack snn train`")
    check_object(doc, TOP_KEYS, META_FILE)
    try:
        spec = SnnSpec.from_dict(get_field(doc, "spec", "snn_bundle.json", dict), "spec")
    except ConfigError as exc:
        raise BundleError(f"{meta}: {exc}") from None
    layers = []
    for i, d in enumerate(get_field(doc, "layers", "snn_bundle.json", list)):
        where = f"snn_bundle.json layers[{i}]"
        name = get_field(check_object(d, None, where), "name", where, str)
        where = f"layer {name}"
        op = get_field(d, "op", where, str)
        if op not in ("conv", "fc", "pool"):
            raise BundleError(f"{where}: unknown op {op!r}; known: conv, fc, pool")
        check_object(d, POOL_KEYS if op == "pool" else SPIKING_KEYS, where)
        ins, outs = get_shape(d, "in_shape", where), get_shape(d, "out_shape", where)
        if op == "pool":
            layers.append(SnnLayer(name, op, ins, outs, kernel=get_field(d, "kernel", where, int)))
            continue
        kw = {k: get_field(d, k, where, str if k in _STR_FIELDS else int)
              for k in (*_NEURON, *(o for o in _NEURON_OPTIONS if o in d))}
        w = load_array(folder, get_field(d, "weight", where), where, "int32",
                       get_shape(d, "weight_shape", where))
        stride = get_field(d, "stride", where, int) if "stride" in d else 1   # added later
        layers.append(SnnLayer(name, op, ins, outs, w, padding=get_field(d, "padding", where, int),
                               stride=stride, **kw))
    net = SnnNet(get_field(doc, "name", "snn_bundle.json", str),
                 get_shape(doc, "input_shape", "snn_bundle.json"), layers, spec,
                 doc.get("meta", {}))
    try:
        net.validate()
    except ConfigError as exc:
        raise BundleError(f"{meta}: {exc}") from None
    return net
