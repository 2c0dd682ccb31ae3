"""Damaged dcim/acim bundles (``bundle.json`` and its ``.npy`` files, edited by hand
after a valid save): each is refused at load with one line naming the problem, never
run. CLI cases run ``cimstack run b --backend reference`` (the bundle loads before any
data is read); API cases call :func:`cimstack.bundle.load_bundle`."""

from __future__ import annotations

import json

import numpy as np

from badcase import Case, move_out_and_link, set_field
from conftest import digits_like_bundle, graph_bundle
from cimstack.bundle import (Bundle, InputSpec, MacroLayer, Requant, load_bundle,
                             save_bundle)

RUN = ["run", "b", "--backend", "reference"]


def _edit(folder, change, bundle=None):
    """Save ``bundle`` (default: the digits-like one) as ``folder/b``, apply
    ``change(doc)`` to its bundle.json and return the folder."""
    path = save_bundle(bundle or digits_like_bundle(), folder / "b")
    doc = json.loads((path / "bundle.json").read_text())
    change(doc)
    (path / "bundle.json").write_text(json.dumps(doc))
    return path


def cli(change, bundle=None):
    """A CLI case: ``cimstack run`` on the bundle edited by ``change(doc)``."""
    def setup(folder):
        _edit(folder, change, bundle)
        return RUN
    return setup


def api(change, bundle=None):
    """An API case: ``load_bundle`` on the bundle edited by ``change(doc)``."""
    def setup(folder):
        path = _edit(folder, change, bundle)
        return lambda: load_bundle(path)
    return setup


def _write_npy_header(file, descr: str, shape: tuple, data: bytes = b"") -> None:
    """An .npy file whose header declares ``descr``/``shape`` followed by ``data``."""
    with open(file, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(data)


def _huge_header(folder):
    """conv1.multiplier.npy claims 2^37 int64 values (1 TiB) but holds 16."""
    path = _edit(folder, lambda doc: None)
    _write_npy_header(path / "conv1.multiplier.npy", "<i8", (1 << 37,), bytes(8 * 16))
    return RUN


def _trailing_bytes(folder):
    """fc.bias.npy: a correct header and data, then 5 stray bytes."""
    path = _edit(folder, lambda doc: None)
    raw = (path / "fc.bias.npy").read_bytes()
    (path / "fc.bias.npy").write_bytes(raw + b"extra")
    return lambda: load_bundle(path)


def _symlink_out(folder):
    """conv1.weight.npy is a symlink to an (identical) file outside the bundle."""
    path = _edit(folder, lambda doc: None)
    move_out_and_link(path / "conv1.weight.npy", folder / "elsewhere.npy")
    return RUN


def _lone_binary_zero(folder):
    """A binary conv1 whose weight file gets a single 0 inside a kept block."""
    path = save_bundle(digits_like_bundle(w_bits=(1, 4, 4), x_bits=(8, 4, 4)), folder / "b")
    w = np.load(path / "conv1.weight.npy")
    w[3, 0, 1, 1] = 0
    np.save(path / "conv1.weight.npy", w)
    return RUN


def _binary_rows_on_changed(folder):
    """Binary fc with whole 16-row blocks pruned, then rows_on edited to 32: each
    32-row block now mixes a pruned half with kept weights."""
    b = digits_like_bundle(w_bits=(4, 4, 1), x_bits=(8, 4, 4))
    b.layers[-1].weight[:, 0:16] = 0
    path = _edit(folder, set_field("macros", "dcim", "rows_on", 32), b)
    return lambda: load_bundle(path)


def _binary_run_under_other_rows_on(folder):
    """The same binary fc, valid and loaded under rows_on=16, run by the reference under
    rows_on=32 (a sweep point's spec): refused, not read as -1 by one path, 0 by another."""
    import dataclasses

    from cimstack.config import DcimSpec
    from cimstack.ref.network import run_network
    b = digits_like_bundle(w_bits=(4, 4, 1), x_bits=(8, 4, 4))
    b.layers[-1].weight[:, 0:16] = 0
    b = load_bundle(save_bundle(b, folder / "b"))
    other = dataclasses.replace(b, dcim=DcimSpec(rows_on=32, psum_bits=3))
    return lambda: run_network(other, np.zeros((1, 1, 8, 8), np.uint8))


def _requant_overflow(folder):
    """One linear layer, K = 150000 8-bit inputs of 8-bit weights -128: |acc| can reach
    4.9e9, and the multiplier edited to 2^31 - 1 makes acc*M pass 2^63."""
    k = 150_000
    layer = MacroLayer("fc", "linear", np.full((1, k), -128, np.int8), 8, 8,
                       Requant(np.array([1], np.int64), np.array([0], np.int64), 0,
                               -(2**31), 2**31 - 1), (k,), (1,))
    path = save_bundle(Bundle("wide", InputSpec((k,), 8, 1 / 255), [layer]), folder / "b")
    np.save(path / "fc.multiplier.npy", np.array([2**31 - 1], np.int64))
    return RUN


def _duplicate_key(folder):
    """bundle.json names conv1's stride twice (JSON parsers keep the last silently)."""
    path = _edit(folder, lambda doc: None)
    text = (path / "bundle.json").read_text()
    (path / "bundle.json").write_text(text.replace('"stride": 1,', '"stride": 1, "stride": 2,', 1))
    return RUN


def _deep_json(folder):
    """bundle.json nested 100000 lists deep (the JSON parser's recursion limit)."""
    (folder / "b").mkdir()
    (folder / "b" / "bundle.json").write_text("[" * 100_000 + "]" * 100_000)
    return RUN


def _pool_on_vector(doc):
    doc["input"]["shape"] = [64]
    doc["layers"] = [{"name": "p", "op": "maxpool2d", "inputs": ["input"], "in_shape": [64],
                      "out_shape": [32], "kernel": 2, "stride": 2}]


CASES = [
    # file names, symlinks, names
    Case("bundle-abs-path", cli(set_field("layers", 0, "weight", "/etc/hostname")),
         r"layer conv1: array file name '/etc/hostname' must be a plain file name"),
    Case("bundle-subfolder-path", api(set_field("layers", 2, "requant", "bias", "sub/conv2.bias.npy")),
         r"'sub/conv2.bias.npy' must be a plain file name"),
    Case("bundle-symlink-out", _symlink_out, r"conv1.weight.npy is a symbolic link to .* "
         r"outside the bundle folder"),
    Case("bundle-name-separator", cli(set_field("name", "../../bundles/x")),
         r"bundle name = '\.\./\.\./bundles/x' is not a plain name"),
    Case("bundle-layer-name-separator", api(set_field("layers", 4, "name", "a/b")),
         r"layers\[4\]\.name = 'a/b' is not a plain name"),
    # unknown keys
    Case("bundle-layer-strid", cli(lambda d: d["layers"][0].update(strid=2)),
         r"layer conv1: unknown key\(s\) \['strid'\].*did you mean 'stride'"),
    Case("bundle-top-unknown", api(lambda d: d.update(metadata={})),
         r"bundle.json: unknown key\(s\) \['metadata'\].*did you mean 'meta'"),
    Case("bundle-input-unknown", api(lambda d: d["input"].update(scales=0.5)),
         r"input: unknown key\(s\) \['scales'\].*did you mean 'scale'"),
    Case("bundle-requant-unknown", api(lambda d: d["layers"][5]["requant"].update(shfit=3)),
         r"layer fc.requant: unknown key\(s\) \['shfit'\].*did you mean 'shift'"),
    Case("bundle-pool-unknown", api(lambda d: d["layers"][1].update(padding=1)),
         r"layer pool1: unknown key\(s\) \['padding'\]"),
    Case("bundle-macros-unknown", api(lambda d: d["macros"].update(dcimm={})),
         r"macros: unknown key\(s\) \['dcimm'\].*did you mean 'dcim'"),
    Case("bundle-duplicate-key", _duplicate_key, r"key 'stride' is given twice"),
    # floats
    Case("bundle-scale-subnormal", cli(set_field("input", "scale", 5e-324)),
         r"input.scale = 5e-324 must be a positive normal float32"),
    Case("bundle-scale-nan", api(set_field("input", "scale", float("nan"))),
         r"input.scale = nan must be a positive normal float32"),
    Case("bundle-scale-inf", api(set_field("input", "scale", float("inf"))),
         r"input.scale = inf must be"),
    Case("bundle-scale-zero", api(set_field("input", "scale", 0)), r"input.scale = 0 must be"),
    Case("bundle-acim-sigma-nan", api(set_field("macros", "acim", {"sigma": float("nan")})),
         r"AcimSpec.sigma = nan is not a finite number"),
    # .npy files
    Case("bundle-npy-huge-header", _huge_header,
         r"conv1.multiplier.npy has shape \(137438953472,\), expected \(16,\)"),
    Case("bundle-npy-trailing-bytes", _trailing_bytes,
         r"fc.bias.npy holds 85 data bytes but its header declares 80"),
    # pooling, strides, padding, types
    Case("bundle-pool-kernel-0", cli(set_field("layers", 1, "kernel", 0)),
         r"layer pool1.kernel = 0 is out of range"),
    Case("bundle-pool-stride-0", api(set_field("layers", 3, "stride", 0)),
         r"layer pool2.stride = 0 is out of range"),
    Case("bundle-pool-on-vector", api(_pool_on_vector),
         r"layer p: max pooling needs a \(C, H, W\) input"),
    Case("bundle-padding-negative", cli(set_field("layers", 0, "padding", -1)),
         r"layer conv1.padding = -1 is out of range"),
    Case("bundle-stride-65", api(set_field("layers", 2, "stride", 65)),
         r"layer conv2.stride = 65 is out of range"),
    Case("bundle-stride-string", cli(set_field("layers", 0, "stride", "1")),
         r"layer conv1.stride = '1' has the wrong type: expected an integer"),
    Case("bundle-stride-bool", api(set_field("layers", 2, "stride", True)),
         r"layer conv2.stride = True has the wrong type"),
    Case("bundle-w-bits-float", api(set_field("layers", 5, "w_bits", 4.0)),
         r"layer fc.w_bits = 4.0 has the wrong type"),
    # structure
    Case("bundle-layers-missing", api(lambda d: d.pop("layers")),
         r"bundle.json: missing field 'layers'"),
    Case("bundle-layers-dict", cli(set_field("layers", {})),
         r"bundle.json.layers = \{\} has the wrong type: expected a list"),
    Case("bundle-layer-is-list", api(set_field("layers", 0, ["conv1"])),
         r"layers\[0\] must be a JSON object"),
    Case("bundle-requant-is-list", api(set_field("layers", 0, "requant", [])),
         r"layer conv1.requant must be a JSON object"),
    Case("bundle-duplicate-layer-name", api(set_field("layers", 2, "name", "conv1")),
         r"layer name 'conv1' is used twice"),
    Case("bundle-shape-mismatch", api(set_field("layers", 2, "in_shape", [16, 5, 5])),
         r"layer conv2 \(#2\) expects input \(16, 5, 5\) but receives \(16, 4, 4\)"),
    Case("bundle-huge-shape", cli(set_field("input", "shape", [1, 100000, 100000])),
         r"input.shape = \[1, 100000, 100000\] declares 10000000000 elements"),
    Case("bundle-meta-list", api(set_field("meta", [1, 2])),
         r"bundle meta must be a JSON object"),
    Case("bundle-deep-json", _deep_json, r"bundle.json is not valid JSON"),
    # what the macro or the requantizer cannot represent
    Case("bundle-binary-lone-zero", _lone_binary_zero,
         r"layer conv1.weight: binary layer has a 0 inside block"),
    Case("bundle-binary-rows-on-changed", _binary_rows_on_changed,
         r"layer fc.weight: binary layer has a 0 inside block .*rows_on=32"),
    Case("bundle-binary-run-under-other-rows-on", _binary_run_under_other_rows_on,
         r"binary layer has a 0 inside block .*rows_on=32"),
    Case("bundle-requant-overflow", _requant_overflow,
         r"layer fc: the int64 requantizer overflows on channel 0: K = 150000 inputs"),
]

# ------------------------------------------------------------------ graph bundles
# Layers of conftest.graph_bundle(): 0 dw, 1 pw, 2 res (add dw, pw), 3 mp, 4 ap,
# 5 cat (concat mp, ap), 6 gap, 7 flat, 8 fc.
GRAPH = graph_bundle()


def _graph_with_dw(**changes):
    """An API case: validate the graph bundle with its dw conv changed."""
    def setup(folder):
        b = graph_bundle()
        dw = b.layers[0]
        for key, value in changes.items():
            setattr(dw, key, value)
        return b.validate
    return setup


_BINARY_DW = np.where(np.arange(36).reshape(4, 1, 3, 3) % 2, 1, -1).astype(np.int8)
_FORMAT = {"bits": 4, "signed": False, "bipolar": False, "scale": None}

CASES += [
    # wiring
    Case("graph-reads-later-layer", api(set_field("layers", 1, "inputs", ["res"]), GRAPH),
         r"layer pw \(#1\) reads 'res', which is neither 'input' nor an earlier layer"),
    Case("graph-reads-unknown-tensor", cli(set_field("layers", 3, "inputs", ["nope"]), GRAPH),
         r"layer mp \(#3\) reads 'nope', which is neither 'input' nor an earlier layer"),
    Case("graph-add-one-input", api(set_field("layers", 2, "inputs", ["dw"]), GRAPH),
         r"layer res: an 'add' node reads 2 tensor name\(s\), got inputs \('dw',\)"),
    Case("graph-add-three-inputs", api(set_field("layers", 2, "inputs", ["dw", "pw", "dw"]),
                                       GRAPH),
         r"layer res: an 'add' node reads 2 tensor name\(s\), got inputs \('dw', 'pw', 'dw'\)"),
    Case("graph-concat-hw-differ",
         api(lambda d: d["layers"][5].update(inputs=["mp", "res"],
                                             in_shapes=[[4, 4, 3], [4, 9, 7]]), GRAPH),
         r"layer cat: a concat takes two or more inputs that differ only in channels, "
         r"got \[\[4, 4, 3\], \[4, 9, 7\]\]"),
    Case("graph-output-unread", cli(set_field("layers", 5, "inputs", ["mp", "mp"]), GRAPH),
         r"the output of layer ap is read by no layer; only the last layer's output is the "
         r"network's output"),
    Case("graph-layer-named-input", api(set_field("layers", 0, "name", "input"), GRAPH),
         r"layers\[0\]: 'input' names the network's input; rename the layer"),
    # average pooling
    Case("graph-avgpool-kernel-not-pair", api(set_field("layers", 4, "kernel", [3, 3, 3]), GRAPH),
         r"layer ap.kernel = \[3, 3, 3\] must be a pair of integers \[h, w\]"),
    Case("graph-avgpool-kernel-too-large", cli(set_field("layers", 6, "kernel", [5, 3]), GRAPH),
         r"layer gap: pooling window \[5, 3\] is larger than the input \(8, 4, 3\)"),
    # tensor formats
    Case("graph-format-too-narrow",
         api(set_field("tensors", "conv1", "bits", 4), digits_like_bundle(x_bits=(8, 8, 4))),
         r"layer conv1: its codes span \[0, 255\], outside its tensor format's \[0, 15\]"),
    Case("graph-format-unknown-tensor", api(lambda d: d["tensors"].update(nope=_FORMAT), GRAPH),
         r"tensors: 'nope' is not the output of a layer \(the input's format is in 'input'\)"),
    Case("graph-format-of-input", api(lambda d: d["tensors"].update(input=_FORMAT), GRAPH),
         r"tensors: 'input' is not the output of a layer \(the input's format is in 'input'\)"),
    Case("graph-concat-formats-differ", api(set_field("tensors", "ap", "bits", 5), GRAPH),
         r"layer cat: its inputs and output must share one integer format"),
    Case("graph-bipolar-input-padded-conv",
         cli(lambda d: d["input"].update(signed=False, bipolar=True, bits=1), GRAPH),
         r"layer dw: zero padding of bipolar inputs has no code .*use padding 0 or a signed "
         r"input"),
    Case("bundle-input-offset-nan", api(set_field("input", "offset", float("nan"))),
         r"input.offset = nan must be a finite number"),
    Case("bundle-input-narrow-unsigned", api(set_field("input", "narrow", True)),
         r"input.narrow applies to a signed input quantizer only"),
    # grouped convolutions
    Case("graph-groups-not-dividing-input", api(set_field("layers", 0, "groups", 3), GRAPH),
         r"layer dw: weight \(4, 1, 3, 3\) with groups = 3 does not fit input shape "
         r"\(2, 9, 7\) \(weight \[N, C/groups, kh, kw\], N a multiple of groups\)"),
    Case("graph-groups-not-dividing-output",
         _graph_with_dw(weight=np.ones((3, 1, 3, 3), np.int8)),
         r"layer dw: weight \(3, 1, 3, 3\) with groups = 2 does not fit input shape"),
    Case("graph-grouped-binary-conv", _graph_with_dw(weight=_BINARY_DW, w_bits=1),
         r"layer dw: a grouped binary conv has no encoding.*use w_bits >= 2 or groups = 1"),
]
