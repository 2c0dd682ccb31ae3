"""cimstack.quant: BN folding, block pruning, export, and Brevitas vs integer reference."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest

import torch

from cimstack.bundle import load_bundle, save_bundle  # noqa: E402
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.quant.export import compare_layer_codes  # noqa: E402
from cimstack.quant.export import compare_with_reference, make_requant  # noqa: E402
from cimstack.quant.fold import fold_conv_bn, fold_linear_bn  # noqa: E402
from cimstack.quant.prune import (block_mask, blocks_pruned_per_channel,  # noqa: E402
                                  measure_blocks, num_groups)
from cimstack.quant.train import train_digits  # noqa: E402
from cimstack.ref.requant import requantize  # noqa: E402

ROWS_ON = 16
FAST = dict(epochs=6)          # short schedule for the test suite


# ----------------------------------------------------------------------------- data

def test_digits_split_fixed_and_stratified():
    a, b = load_digits_split(), load_digits_split()
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert 0.0 <= a.x_train.min() and a.x_train.max() == 1.0
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_train, b.y_train)
    counts = np.bincount(a.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37          # stratified 20 %


def test_data_module_does_not_import_torch():
    code = ("import sys; import cimstack.quant.data as d; d.load_digits_split(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------ BN folding

def _randomized_bn(bn):
    g = torch.Generator().manual_seed(1)
    n = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.rand(n, generator=g) * 2 + 0.1)
        bn.bias.copy_(torch.randn(n, generator=g))
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) * 3 + 0.05)
    return bn.eval()


def test_fold_conv_bn_matches_to_1e5():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, 3, padding=1, bias=True)
    bn = _randomized_bn(torch.nn.BatchNorm2d(8))
    x = torch.randn(5, 4, 8, 8)
    folded = fold_conv_bn(conv, bn)
    with torch.no_grad():
        ref, got = bn(conv(x)), folded(x)
    assert torch.max(torch.abs(ref - got)).item() < 1e-5
    assert not torch.allclose(folded.weight, conv.weight)     # folding changed something


def test_fold_linear_bn_matches_to_1e5():
    torch.manual_seed(0)
    lin = torch.nn.Linear(12, 6, bias=False)
    bn = _randomized_bn(torch.nn.BatchNorm1d(6))
    x = torch.randn(7, 12)
    with torch.no_grad():
        assert torch.max(torch.abs(bn(lin(x)) - fold_linear_bn(lin, bn)(x))).item() < 1e-5


# --------------------------------------------------------------------------- pruning

@pytest.mark.parametrize("shape,sparsity", [((32, 16, 3, 3), 0.5), ((10, 128), 0.25),
                                            ((10, 128), 0.75), ((7, 40), 0.5)])
def test_block_mask_hits_target_and_is_balanced(shape, sparsity):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    mask = block_mask(w, ROWS_ON, sparsity)
    rep = measure_blocks("w", w * mask, ROWS_ON)
    groups = num_groups(w[0].numel(), ROWS_ON)
    drop = blocks_pruned_per_channel(w[0].numel(), ROWS_ON, sparsity)
    assert rep.per_channel_kept == [groups - drop] * shape[0]
    assert abs(rep.sparsity - sparsity) <= 0.5 / groups + 1e-12
    # the pruned blocks are the weakest of their channel
    w2 = w.reshape(shape[0], -1)
    m2 = mask.reshape(shape[0], -1)
    for n in range(shape[0]):
        norms = [float(w2[n, g * ROWS_ON:(g + 1) * ROWS_ON].norm()) for g in range(groups)]
        kept = [norms[g] for g in range(groups) if m2[n, g * ROWS_ON] == 1]
        gone = [norms[g] for g in range(groups) if m2[n, g * ROWS_ON] == 0]
        assert not gone or max(gone) <= min(kept)


def test_single_group_layer_is_never_emptied():
    w = torch.randn(16, 1, 3, 3)
    assert measure_blocks("c", w * block_mask(w, ROWS_ON, 0.9), ROWS_ON).pruned == 0


# ---------------------------------------------------------------------- requantizer

def test_make_requant_matches_real_arithmetic():
    rng = np.random.default_rng(0)
    m = rng.uniform(1e-4, 5e-2, 32)
    b = rng.normal(0, 20, 32)
    acc_max = 144 * 255 * 127
    rq = make_requant(m, b, acc_max, 0, 255)
    assert np.abs(rq.multiplier).max() < 2**31
    assert np.abs(rq.multiplier).max() >= 2**30                # shift is the largest one
    acc = rng.integers(-acc_max // 8, acc_max // 8, size=(2000, 32))
    got = requantize(acc, rq.multiplier, rq.bias, rq.shift, rq.lo, rq.hi)
    exact = np.clip(np.floor(acc * m + b + 0.5), 0, 255)
    assert np.mean(got == exact) > 0.999


# --------------------------------------------------------------- trained pipelines

CONFIGS = {
    "w8a8": dict(w_bits=8, a_bits=8),
    "w4a4": dict(w_bits=4, a_bits=4),
    "w8a8_s50": dict(w_bits=8, a_bits=8, block_sparsity=0.5),
    "w1a4_s50": dict(w_bits=1, a_bits=4, block_sparsity=0.5),
}


@pytest.fixture(scope="module")
def trained():
    """Trained models by config key, each trained once per module, on the thread count
    tests/conftest.py sets (the trained bits depend on it)."""
    cache = {}

    def get(key):
        if key not in cache:
            cache[key] = train_digits(rows_on=ROWS_ON, seed=0, **CONFIGS[key], **FAST,
                                      threads=torch.get_num_threads())
        return cache[key]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("key", ["w8a8", "w4a4", "w8a8_s50", "w1a4_s50"])
def test_brevitas_matches_integer_reference(trained, key):
    """Every integer code of the bundle equals Brevitas', layer by layer, except one step
    off where torch's float32 value sits on a rounding tie.

    Why the float logits are not compared: torch computes ``relu(conv(x) + b) / scale``
    in float32, with an error of up to ~1e-5 of a step (conv1) whose sign depends on the
    summation order of the oneDNN/MKL kernels, hence on the CPU and the thread count. A
    value just below a tie can come out exactly on it: w8a8_s50 (seed 0, 6 epochs, 2
    threads, default kernels on an AMD AVX2 machine) has conv1 channel 9 with
    accumulator 4541, exact value 171.4999878, torch 171.5 -> code 172, while the exact
    integer requantizer gives 171 (likewise a conv2 code: 53.499996 -> 54 against 53).
    Round half to even vs half up plays no part (171.5 and 53.5 round up both ways);
    the float32 error does. One flipped hidden code moves its image's logits by up to
    ~1e-2, which broke the old check (max |logit gap| < 1e-3 * max|logit|; 0.0095
    against 0.0079 on the issue's machine). :func:`compare_layer_codes` feeds each layer
    torch's own input codes (no flip spreads) and allows one step only where torch's
    value lies within its float32 error bound of a tie; the test below shows it fails
    for a wrong requantizer.
    """
    res = trained(key)
    bundle = res.export()
    data = res.data
    checks = compare_layer_codes(bundle, res.quant_model, data.x_test)
    assert [c.name for c in checks] == ["input", "conv1", "conv2", "fc"]
    for c in checks:
        assert c.ok, f"{key}: {c.summary()}"
    for c in checks[:3]:                    # input and hidden codes: at most one step off
        assert c.max_steps <= 1 and c.max_bound < 0.05, f"{key}: {c.summary()}"
    # end to end: the same predictions (up to an image moved by a tie) and accuracy
    cmp = compare_with_reference(bundle, res.quant_model, data.x_test, data.y_test)
    assert cmp["agreement"] >= 0.99, f"{key}: only {cmp['agreement']:.4f} same predictions"
    assert abs(cmp["ref_acc"] - res.quant_acc) <= 0.005
    assert abs(cmp["torch_acc"] - res.quant_acc) < 1e-12
    assert res.quant_acc > 0.85, f"{key}: brevitas accuracy {res.quant_acc}"
    assert np.abs(cmp["logits"]).max() < 2**30


def _perturbed(bundle, layer_name, field, change):
    """``bundle`` with one requantizer entry (channel 0) of one layer changed."""
    b = copy.deepcopy(bundle)
    rq = next(l for l in b.macro_layers if l.name == layer_name).requant
    values = getattr(rq, field)
    values[0] = change(int(values[0]), rq.shift)
    return b


@pytest.mark.slow
@pytest.mark.parametrize("layer_name,field,change", [
    ("conv1", "bias", lambda v, s: v + (1 << s)),             # one output step
    ("conv2", "multiplier", lambda v, s: v + v // 100),       # 1 % gain
    ("fc", "bias", lambda v, s: v + (1 << s) * 1000),         # 1000 logit steps
], ids=["conv1-bias-one-step", "conv2-multiplier-1pct", "fc-bias-1000-steps"])
def test_layer_comparison_catches_a_wrong_requantizer(trained, layer_name, field, change):
    """One wrong requantizer entry is reported in its layer, and only there."""
    res = trained("w8a8")
    bundle = res.export()
    bad = _perturbed(bundle, layer_name, field, change)
    checks = {c.name: c for c in compare_layer_codes(bad, res.quant_model, res.data.x_test)}
    assert checks[layer_name].unexplained > 0, checks[layer_name].summary()
    others = [c for name, c in checks.items() if name != layer_name]
    assert all(c.ok for c in others), [c.summary() for c in others]


@pytest.mark.slow
@pytest.mark.parametrize("key", ["w8a8_s50", "w1a4_s50"])
def test_pruned_blocks_stay_zero_and_balanced(trained, key):
    res = trained(key)
    assert abs(res.block_sparsity - 0.5) < 0.05, res.block_sparsity
    for name, layer in (("conv2", res.quant_model.conv2), ("fc", res.quant_model.fc)):
        rep = measure_blocks(name, layer.weight, ROWS_ON)
        assert rep.balanced, (name, rep.per_channel_kept)
        assert abs(rep.sparsity - 0.5) <= 0.5 / num_groups(layer.weight[0].numel(), ROWS_ON) + 1e-9
    bundle = res.export()
    for layer in bundle.macro_layers:
        exported = measure_blocks(layer.name, layer.weight, ROWS_ON)
        assert exported.pruned == res.sparsity[layer.name].pruned
        assert exported.balanced
    assert bundle.meta["block_sparsity"] == pytest.approx(res.block_sparsity)


@pytest.mark.slow
def test_binary_export_values(trained):
    res = trained("w1a4_s50")
    bundle = res.export()
    for layer in bundle.macro_layers:
        assert layer.w_bits == 1
        w2 = layer.weight.reshape(layer.channels, -1)
        assert set(np.unique(w2).tolist()) <= {-1, 0, 1}
        k = w2.shape[1]
        for g in range(num_groups(k, ROWS_ON)):
            blk = w2[:, g * ROWS_ON:(g + 1) * ROWS_ON]
            zero_rows = (blk == 0).all(axis=1)
            # a 0 appears only as a whole pruned block; kept blocks are exactly {-1,+1}
            assert np.all(zero_rows | (blk != 0).all(axis=1))
    assert sum(measure_blocks(l.name, l.weight, ROWS_ON).pruned
               for l in bundle.macro_layers) > 0


@pytest.mark.slow
def test_bundle_round_trip_and_runs_without_torch(trained, tmp_path):
    res = trained("w4a4")
    path = save_bundle(res.export(), tmp_path / "digits")
    back = load_bundle(path)
    meta = back.meta
    assert meta["bits"]["w_bits"] == [4, 4, 4] and meta["bits"]["a_bits"] == [4, 4]
    assert meta["brevitas_acc"] == pytest.approx(res.quant_acc)
    assert meta["float_acc"] == pytest.approx(res.float_acc)
    assert "block_sparsity" in meta and meta["output_scale"] > 0
    np.save(tmp_path / "x.npy", res.data.x_test[:50])
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from cimstack.bundle import load_bundle\n"
        "from cimstack.ref.network import quantize_input, run_network\n"
        f"b = load_bundle({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "print(' '.join(map(str, run_network(b, quantize_input(b, x)).predictions)))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.split()
    assert np.array_equal(np.array(out, dtype=np.int64), res.quant_pred[:50])


@pytest.mark.slow
def test_training_is_deterministic(trained):
    a = trained("w4a4")
    b = train_digits(rows_on=ROWS_ON, seed=0, threads=torch.get_num_threads(),
                     **CONFIGS["w4a4"], **FAST)
    assert np.array_equal(a.quant_pred, b.quant_pred)
    for pa, pb in zip(a.quant_model.parameters(), b.quant_model.parameters()):
        assert torch.equal(pa, pb)


# ------------------------------------------------------- whole network, emulated overlay

@pytest.mark.slow
@pytest.mark.parametrize("key", ["w8a8_s50", "w1a4_s50"])
def test_trained_digits_on_emulated_overlay_bit_exact(trained, key):
    from cimstack.backends import open_backend
    from cimstack.ref.network import quantize_input
    from cimstack.verify.compare import verify

    res = trained(key)
    bundle = res.export()
    backend = open_backend("emu")
    x_int = quantize_input(bundle, res.data.x_test)
    rep = verify(bundle, x_int, backend.engine, "emu", labels=res.data.y_test)
    assert rep.ok, rep.summary()
    assert rep.images == len(res.data.x_test) == 360
    assert rep.accuracy_backend == rep.accuracy_reference


@pytest.mark.slow
def test_checkpoint_exports_the_same_bundle(trained, tmp_path):
    from cimstack.quant.checkpoint import load_checkpoint, save_checkpoint
    from cimstack.errors import BundleError

    res = trained("w4a4")
    ck = load_checkpoint(save_checkpoint(res, tmp_path / "model.pt"))
    for a, b in zip(res.export().macro_layers, ck.export().macro_layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.requant.multiplier, b.requant.multiplier)
        np.testing.assert_array_equal(a.requant.bias, b.requant.bias)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="not a readable cimstack checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
