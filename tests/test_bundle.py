"""Bundle round trip, torch-free loading, and clear errors for every kind of damage."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cimstack.bundle import bundle_digest, load_bundle, save_bundle
from cimstack.errors import BundleError
from cimstack.ref.network import run_network

from conftest import digits_like_bundle


def test_round_trip_keeps_everything(tmp_path, small_bundle):
    path = save_bundle(small_bundle, tmp_path / "b")
    loaded = load_bundle(path)
    assert loaded.dcim == small_bundle.dcim
    assert [l.name for l in loaded.layers] == [l.name for l in small_bundle.layers]
    for a, b in zip(loaded.macro_layers, small_bundle.macro_layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.requant.multiplier, b.requant.multiplier)
        np.testing.assert_array_equal(a.requant.bias, b.requant.bias)
        assert (a.requant.shift, a.requant.lo, a.requant.hi) == \
            (b.requant.shift, b.requant.lo, b.requant.hi)
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 8, 8))
    np.testing.assert_array_equal(run_network(loaded, x).logits,
                                  run_network(small_bundle, x).logits)


def test_save_replaces_atomically(tmp_path, small_bundle):
    path = save_bundle(small_bundle, tmp_path / "b")
    save_bundle(digits_like_bundle(seed=5), path)
    assert load_bundle(path).layers[0].weight.tolist() == \
        digits_like_bundle(seed=5).layers[0].weight.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]     # no temp folders left


def test_loads_and_runs_without_torch(tmp_path, small_bundle):
    path = save_bundle(small_bundle, tmp_path / "b")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        sys.modules["brevitas"] = None
        import numpy as np
        from cimstack.bundle import load_bundle
        from cimstack.ref.network import run_network
        b = load_bundle({str(path)!r})
        out = run_network(b, np.zeros((2, 1, 8, 8), np.uint8)).logits
        assert out.shape == (2, 10), out.shape
        assert "torch" not in [m for m, v in sys.modules.items() if v is not None]
        print("ran without torch")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ran without torch" in run.stdout


def _damage(path, what):
    doc = json.loads((path / "bundle.json").read_text())
    if what == "missing_file":
        (path / "conv1.weight.npy").unlink()
    elif what == "truncated":
        data = (path / "conv2.weight.npy").read_bytes()
        (path / "conv2.weight.npy").write_bytes(data[: len(data) // 2])
    elif what == "wrong_dtype":
        np.save(path / "conv1.weight.npy", np.zeros((16, 1, 3, 3), np.float32))
    elif what == "wrong_shape":
        np.save(path / "fc.bias.npy", np.zeros(11, np.int64))
    elif what == "schema_version":
        doc["schema_version"] = 99
    elif what == "not_json":
        (path / "bundle.json").write_text("{not json")
        return
    elif what == "weight_range":
        w = np.load(path / "conv2.weight.npy")
        w[0, 0, 0, 0] = 100                     # conv2 is 4-bit: range [-8, 7]
        np.save(path / "conv2.weight.npy", w)
    elif what == "w_bits":
        doc["layers"][0]["w_bits"] = 9
    elif what == "shift":
        doc["layers"][0]["requant"]["shift"] = 70
    elif what == "unknown_macro_key":
        doc["macros"]["dcim"]["rows_onn"] = 4
    elif what == "pickle":
        np.save(path / "conv1.weight.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif what == "x_bits_chain":
        doc["layers"][2]["x_bits"] = 2          # conv1 outputs 4-bit values
    elif what == "path_escape":
        doc["layers"][0]["weight"] = "../../etc/passwd"
    (path / "bundle.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("what, match", [
    ("missing_file", "conv1.weight.npy is missing"),
    ("truncated", "truncated or corrupt"),
    ("wrong_dtype", "dtype float32, expected int8"),
    ("wrong_shape", r"shape \(11,\), expected \(10,\)"),
    ("schema_version", "schema_version 99 is not supported"),
    ("not_json", "not valid JSON"),
    ("weight_range", r"holds 100, out of the allowed range \[-8, 7\]"),
    ("w_bits", "w_bits = 9 is out of range"),
    ("shift", "shift = 70 is out of range"),
    ("unknown_macro_key", r"unknown key\(s\) \['rows_onn'\]"),
    ("pickle", "not a readable .npy|dtype object"),
    ("x_bits_chain", "does not fit x_bits=2"),
    ("path_escape", "must be a plain file name"),
])
def test_bad_bundles_get_clear_errors(tmp_path, small_bundle, what, match):
    path = save_bundle(small_bundle, tmp_path / "b")
    _damage(path, what)
    with pytest.raises(BundleError, match=match):
        load_bundle(path)


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(tmp_path / "nothing")


def test_binary_zero_only_in_whole_blocks(tmp_path):
    b = digits_like_bundle(w_bits=(1, 4, 4), x_bits=(8, 4, 4))
    w = b.layers[0].weight
    w[0, 0, 0, 0] = 0                            # a lone zero in a binary block
    with pytest.raises(BundleError, match="binary layer has a 0 inside block"):
        save_bundle(b, tmp_path / "b")
    w[0] = 0                                     # the whole (only) block of channel 0
    save_bundle(b, tmp_path / "b")


def test_binary_zero_refused_when_rows_on_changes_after_load():
    """A bundle valid for rows_on=16, run under rows_on=32 (as a sweep point does): the
    32-row blocks now mix pruned and kept rows. The bit-serial path would read the 0s as
    -1 and the exact path as 0; both refuse instead."""
    import dataclasses

    from cimstack.config import DcimSpec
    from cimstack.errors import ConfigError
    from cimstack.ref.dcim import macro_matmul, macro_matmul_bitserial

    b = digits_like_bundle(w_bits=(4, 4, 1), x_bits=(8, 4, 4))
    b.layers[-1].weight[:, 0:16] = 0
    b.validate()
    x = np.random.default_rng(1).integers(0, 256, (2, 1, 8, 8))
    run_network(b, x)                                     # fine under its own rows_on
    for psum_bits in (None, 3):
        spec = DcimSpec(rows_on=32, psum_bits=psum_bits)
        with pytest.raises(ConfigError, match="binary layer has a 0 inside block"):
            run_network(dataclasses.replace(b, dcim=spec), x)
    w = b.layers[-1].matrix()
    xv = np.ones((1, w.shape[0]), np.int64)
    for fn in (macro_matmul, macro_matmul_bitserial):
        with pytest.raises(ConfigError, match="rows_on=32"):
            fn(xv, w, 1, 4, DcimSpec(rows_on=32))


def test_fifo_in_place_of_an_array_does_not_hang(tmp_path, small_bundle):
    import os
    path = save_bundle(small_bundle, tmp_path / "b")
    (path / "conv1.weight.npy").unlink()
    os.mkfifo(path / "conv1.weight.npy")
    with pytest.raises(BundleError, match="not a regular file"):
        load_bundle(path)


def test_symlink_inside_the_bundle_is_fine(tmp_path, small_bundle):
    import os
    path = save_bundle(small_bundle, tmp_path / "b")
    os.replace(path / "fc.bias.npy", path / "bias-copy.npy")
    os.symlink("bias-copy.npy", path / "fc.bias.npy")
    assert load_bundle(path).layers[-1].requant.bias.tolist() == \
        small_bundle.layers[-1].requant.bias.tolist()


def test_headroom_rule_is_the_exporters():
    """The load-time check and the exporter's shift choice use one formula."""
    from cimstack.bundle import INT64_MAX, requant_peak
    from cimstack.quant.export import choose_shift
    acc_max, m, b = 1 << 40, np.array([0.7]), np.array([3.0])
    s = choose_shift(m, b, acc_max)
    assert requant_peak(acc_max, round(0.7 * 2**s), round(3.0 * 2**s), s) <= INT64_MAX
    assert requant_peak(acc_max, round(0.7 * 2**(s + 1)), round(3.0 * 2**(s + 1)), s + 1) \
        > INT64_MAX


def test_digest_is_the_content_saved_and_changes_with_any_weight(tmp_path):
    """bundle_digest (the design search's resume key): equal for a bundle and its saved
    and reloaded copy, different when one weight or the name changes."""
    from dataclasses import replace
    b = digits_like_bundle(seed=4)
    again = load_bundle(save_bundle(b, tmp_path / "b"))
    assert bundle_digest(again) == bundle_digest(b) == bundle_digest(digits_like_bundle(seed=4))
    layer = b.macro_layers[0]
    w = layer.weight.copy()
    w.flat[0] = w.flat[0] + (1 if w.flat[0] < 0 else -1)
    changed = replace(b, layers=[replace(layer, weight=w) if l is layer else l
                                 for l in b.layers])
    assert bundle_digest(changed) != bundle_digest(b)
    assert bundle_digest(replace(b, name="other")) != bundle_digest(b)
