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

from .bundle import read_schema_doc
from .config import SnnSpec
from .errors import BundleError, ConfigError
from .report.io import atomic_folder, jsonable
from .ref.snn import SnnLayer, SnnNet

SCHEMA = "cimstack-snn-bundle"
SCHEMA_VERSION = 1
META_FILE = "snn_bundle.json"
_NEURON = ("theta", "w_bits", "v_bits", "leak_shift", "reset", "overflow", "dataflow")


def _layer_json(layer: SnnLayer) -> dict:
    d = {"name": layer.name, "op": layer.op, "in_shape": list(layer.in_shape),
         "out_shape": list(layer.out_shape)}
    if layer.op == "pool":
        d["kernel"] = layer.kernel
    else:
        d.update({k: getattr(layer, k) for k in _NEURON})
        d.update(padding=layer.padding, weight=f"{layer.name}.weight.npy",
                 weight_shape=list(layer.weight.shape))
    return d


def save_snn_bundle(net: SnnNet, path: str | os.PathLike) -> Path:
    """Validate and write ``net`` to the folder ``path`` atomically."""
    try:
        net.validate()
    except ConfigError as exc:
        raise BundleError(f"cannot save {net.name}: {exc}") from None
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": net.name,
           "input_shape": list(net.input_shape), "spec": net.spec.to_dict(),
           "layers": [_layer_json(l) for l in net.layers], "meta": net.meta}
    with atomic_folder(path) as tmp:
        for layer in net.layers:
            if layer.spiking:
                np.save(tmp / f"{layer.name}.weight.npy", layer.weight.astype(np.int32),
                        allow_pickle=False)
        (tmp / META_FILE).write_text(json.dumps(doc, indent=2, default=jsonable) + "\n")
    return Path(path)


def _get(d, key, where, kind=object):
    if not isinstance(d, dict) or key not in d:
        raise BundleError(f"{where}: missing field {key!r}")
    v = d[key]
    if kind is not object and (not isinstance(v, kind) or isinstance(v, bool)):
        raise BundleError(f"{where}.{key} = {v!r} has the wrong type")
    return v


def _shape(d, key, where) -> tuple:
    v = _get(d, key, where, list)
    if not v or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
        raise BundleError(f"{where}.{key} = {v!r} must be a list of positive integers")
    return tuple(v)


def _load_weight(folder: Path, name, where: str, shape: tuple) -> np.ndarray:
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise BundleError(f"{where}: array file name {name!r} must be a plain file name")
    file = folder / name
    if not file.is_file():
        raise BundleError(f"{where}: array file {file} is missing; re-export the bundle")
    try:
        arr = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{where}: {file} is not a readable .npy array (truncated or "
                          f"corrupt?): {exc}") from None
    if arr.dtype != np.int32 or tuple(arr.shape) != shape:
        raise BundleError(f"{where}: {file.name} is {arr.dtype} {tuple(arr.shape)}, expected "
                          f"int32 {shape}")
    return arr


def is_snn_bundle(path: str | os.PathLike) -> bool:
    """True when ``path`` holds an SNN bundle (its snn_bundle.json names this schema)."""
    meta = Path(path) / META_FILE
    try:
        return json.loads(meta.read_text()).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def load_snn_bundle(path: str | os.PathLike) -> SnnNet:
    """Read and validate an SNN bundle folder (or its snn_bundle.json)."""
    folder = Path(path)
    if folder.name == META_FILE:
        folder = folder.parent
    meta = folder / META_FILE
    doc = read_schema_doc(meta, SCHEMA, SCHEMA_VERSION, "cimstack SNN bundle",
                          "write one with `cimstack snn train`")
    try:
        spec = SnnSpec.from_dict(_get(doc, "spec", "snn_bundle.json", dict), "spec")
    except ConfigError as exc:
        raise BundleError(f"{meta}: {exc}") from None
    layers = []
    for i, d in enumerate(_get(doc, "layers", "snn_bundle.json", list)):
        where = f"snn_bundle.json layers[{i}]"
        name = _get(d, "name", where, str)
        where = f"layer {name}"
        op = _get(d, "op", where, str)
        ins, outs = _shape(d, "in_shape", where), _shape(d, "out_shape", where)
        if op == "pool":
            layers.append(SnnLayer(name, op, ins, outs, kernel=_get(d, "kernel", where, int)))
            continue
        if op not in ("conv", "fc"):
            raise BundleError(f"{where}: unknown op {op!r}; known: conv, fc, pool")
        kw = {k: _get(d, k, where, str if k in ("reset", "overflow", "dataflow") else int)
              for k in _NEURON}
        w = _load_weight(folder, _get(d, "weight", where), where, _shape(d, "weight_shape", where))
        layers.append(SnnLayer(name, op, ins, outs, w, padding=_get(d, "padding", where, int),
                               **kw))
    net = SnnNet(_get(doc, "name", "snn_bundle.json", str),
                 _shape(doc, "input_shape", "snn_bundle.json"), layers, spec,
                 doc.get("meta") or {})
    try:
        net.validate()
    except ConfigError as exc:
        raise BundleError(f"{meta}: {exc}") from None
    return net
