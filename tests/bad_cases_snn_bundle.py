"""Damaged SNN bundles (``snn_bundle.json`` and its ``.npy`` files, edited by hand
after a valid save): each is refused at load with one line naming the problem. CLI
cases run ``cimstack snn verify b`` (the bundle loads before any data is read); API
cases call :func:`cimstack.snn_bundle.load_snn_bundle`."""

from __future__ import annotations

import json

import numpy as np

from badcase import Case, move_out_and_link, set_field
from cimstack.ref.snn import SnnLayer, SnnNet
from cimstack.snn_bundle import META_FILE, load_snn_bundle, save_snn_bundle

VERIFY = ["snn", "verify", "b", "--backend", "emu"]


def tiny_net() -> SnnNet:
    """conv 3x3 (1x6x6 -> 4x6x6), OR-pool 2, fc 36 -> 10, 8-bit weights."""
    rng = np.random.default_rng(0)
    return SnnNet("tiny", (1, 6, 6), [
        SnnLayer("conv1", "conv", (1, 6, 6), (4, 6, 6),
                 rng.integers(-8, 8, (4, 1, 3, 3)).astype(np.int32), padding=1, theta=20),
        SnnLayer("pool1", "pool", (4, 6, 6), (4, 3, 3), kernel=2),
        SnnLayer("fc", "fc", (4, 3, 3), (10,),
                 rng.integers(-8, 8, (10, 36)).astype(np.int32), theta=20),
    ], meta={"n_steps": 4})


def _edit(folder, change):
    path = save_snn_bundle(tiny_net(), folder / "b")
    doc = json.loads((path / META_FILE).read_text())
    change(doc)
    (path / META_FILE).write_text(json.dumps(doc))
    return path


def cli(change):
    def setup(folder):
        _edit(folder, change)
        return VERIFY
    return setup


def api(change):
    def setup(folder):
        path = _edit(folder, change)
        return lambda: load_snn_bundle(path)
    return setup


def _symlink_out(folder):
    path = _edit(folder, lambda doc: None)
    move_out_and_link(path / "fc.weight.npy", folder / "w.npy")
    return VERIFY


def _huge_header(folder):
    """conv1.weight.npy claims (4, 1, 30000, 30000) int32 values but holds 36."""
    path = _edit(folder, lambda doc: None)
    with open(path / "conv1.weight.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<i4", "fortran_order": False, "shape": (4, 1, 30000, 30000)})
        fh.write(bytes(4 * 36))
    return lambda: load_snn_bundle(path)


def _conv_weight_2d(folder):
    """conv1's weight stored flat as [4, 9] (weight_shape edited to match)."""
    path = _edit(folder, set_field("layers", 0, "weight_shape", [4, 9]))
    np.save(path / "conv1.weight.npy", np.ones((4, 9), np.int32))
    return lambda: load_snn_bundle(path)


def _binary_zero(folder):
    path = _edit(folder, set_field("layers", 2, "w_bits", 1))
    w = np.ones((10, 36), np.int32)
    w[2, 5] = 0
    np.save(path / "fc.weight.npy", w)
    return lambda: load_snn_bundle(path)


CASES = [
    Case("snnbundle-layer-v-bits-1", cli(set_field("layers", 0, "v_bits", 1)),
         r"layer conv1.v_bits = 1: a 1-bit signed membrane spans \[-1, 0\], so no threshold"),
    Case("snnbundle-spec-v-bits-1", api(set_field("spec", "v_bits", 1)),
         r"SnnSpec.v_bits = 1 is out of range: allowed \[2, 16\]"),
    Case("snnbundle-pool-kernel-0", cli(set_field("layers", 1, "kernel", 0)),
         r"layer pool1.kernel = 0 is out of range"),
    Case("snnbundle-layer-unknown-key", cli(lambda d: d["layers"][2].update(thetta=3)),
         r"layer fc: unknown key\(s\) \['thetta'\].*did you mean 'theta'"),
    Case("snnbundle-pool-unknown-key", api(lambda d: d["layers"][1].update(stride=2)),
         r"layer pool1: unknown key\(s\) \['stride'\]"),
    Case("snnbundle-top-unknown-key", api(lambda d: d.update(input_shapes=[1, 6, 6])),
         r"snn_bundle.json: unknown key\(s\) \['input_shapes'\].*did you mean 'input_shape'"),
    Case("snnbundle-spec-unknown-key", api(lambda d: d["spec"].update(clock_mh=50.0)),
         r"spec: unknown key\(s\) \['clock_mh'\].*did you mean 'clock_mhz'"),
    Case("snnbundle-name-separator", cli(set_field("name", "a/../../b")),
         r"network name = 'a/\.\./\.\./b' is not a plain name"),
    Case("snnbundle-clock-nan", api(set_field("spec", "clock_mhz", float("nan"))),
         r"SnnSpec.clock_mhz = nan is not a finite number"),
    Case("snnbundle-padding-negative", api(set_field("layers", 0, "padding", -1)),
         r"layer conv1.padding = -1 is out of range"),
    Case("snnbundle-stride-zero", cli(set_field("layers", 0, "stride", 0)),
         r"layer conv1.stride = 0 is out of range: allowed \[1, 7\]"),
    Case("snnbundle-stride-shape", api(set_field("layers", 0, "stride", 2)),
         r"layer conv1: weight \(4, 1, 3, 3\) on input .* with stride 2 gives"),
    Case("snnbundle-theta-float", api(set_field("layers", 0, "theta", 1.5)),
         r"layer conv1.theta = 1.5 has the wrong type: expected an integer"),
    Case("snnbundle-weight-path", api(set_field("layers", 0, "weight", "../conv1.weight.npy")),
         r"'\.\./conv1.weight.npy' must be a plain file name"),
    Case("snnbundle-symlink-out", _symlink_out,
         r"fc.weight.npy is a symbolic link to .* outside the bundle folder"),
    Case("snnbundle-npy-huge-header", _huge_header,
         r"conv1.weight.npy has shape \(4, 1, 30000, 30000\), expected \(4, 1, 3, 3\)"),
    Case("snnbundle-conv-weight-2d", _conv_weight_2d,
         r"layer conv1.weight must be an integer array of 4 dimensions"),
    Case("snnbundle-binary-zero", _binary_zero, r"layer fc.weight: binary weights are -1 or \+1"),
    Case("snnbundle-n-steps-huge", cli(set_field("meta", "n_steps", 10**9)),
         r"meta.n_steps = 1000000000 is out of range"),
    Case("snnbundle-layers-not-list", api(set_field("layers", {"conv1": {}})),
         r"snn_bundle.json.layers = .* has the wrong type: expected a list"),
    Case("snnbundle-duplicate-name", api(set_field("layers", 2, "name", "conv1")),
         r"layer name 'conv1' is used twice"),
    Case("snnbundle-fire-unknown", cli(set_field("layers", 0, "fire", "gte")),
         r"layer conv1.fire = 'gte': use one of ge, gt"),
    Case("snnbundle-v-init-out-of-range", api(set_field("layers", 0, "v_init", 1 << 20)),
         r"layer conv1.v_init = 1048576 is out of range"),
]
