"""`cimstack export-qonnx`: a checkpoint's quantized model as QONNX. Round trip: the
bundle `cimstack import` makes of the file equals the bundle `cimstack export` makes of
the checkpoint (integer weights, requantizers, input quantizer), so predictions and
every layer's codes are equal; bad input is one clear line."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from badcase import run_cli  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from cimstack.bundle import MacroLayer, load_bundle  # noqa: E402
from cimstack.quant.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.quant.model import FloatDigitsNet, QuantConfig, QuantDigitsNet  # noqa: E402
from cimstack.quant.prune import block_mask  # noqa: E402
from cimstack.quant.qonnx_export import export_checkpoint_qonnx  # noqa: E402
from cimstack.ref.network import quantize_input, run_network  # noqa: E402

ROWS_ON = 16


class _Trained:
    """What save_checkpoint reads of a TrainResult."""

    def __init__(self, model, cfg):
        self.quant_model, self.cfg, self.rows_on = model, cfg, ROWS_ON

    def default_name(self):
        return "tiny"

    def meta(self):
        return {}


def tiny_checkpoint(path, w_bits, a_bits, in_bits, seed=0):
    """One epoch of QAT from a seeded float net (realistic scales in ~5 s), then half of
    the 16-row blocks of conv2 and fc zeroed (the pruned blocks must survive the trip)."""
    torch.manual_seed(seed)
    cfg = QuantConfig.make(w_bits, a_bits, in_bits)
    model = QuantDigitsNet.from_float(FloatDigitsNet(), cfg)
    data = load_digits_split()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for i in range(0, len(x), 32):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
        opt.step()
    with torch.no_grad():
        for layer in (model.conv2, model.fc):
            layer.weight.mul_(block_mask(layer.weight, ROWS_ON, 0.5))
    model.eval()
    return save_checkpoint(_Trained(model, cfg), path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", [4, 6, 8], [4, 3], 6)


def _layer_codes(bundle, x_int):
    """The integer output of every layer of ``bundle`` on ``x_int``."""
    acts = run_network(bundle, x_int, keep_activations=True).activations
    return [acts[layer.name] for layer in bundle.layers]


def test_round_trip_through_qonnx_gives_the_same_bundle(checkpoint, tmp_path):
    code, out = run_cli(["export", str(checkpoint), "--out", "direct"], tmp_path)
    assert code == 0, out
    code, out = run_cli(["export-qonnx", str(checkpoint), "--out", "m.onnx"], tmp_path)
    assert code == 0, out
    model = ModelWrapper(str(tmp_path / "m.onnx"))         # a valid QONNX model
    ops = [n.op_type for n in model.graph.node]
    assert ops[0] == "Quant" and ops.count("Quant") == 6   # input, 3 weights, 2 activations
    assert not list(tmp_path.glob(".m.onnx.*"))             # no temporary file left
    code, out = run_cli(["import", "m.onnx", "--out", "imported"], tmp_path)
    assert code == 0, out

    direct, imported = load_bundle(tmp_path / "direct"), load_bundle(tmp_path / "imported")
    assert direct.input == imported.input
    assert [layer.op for layer in direct.layers] == [layer.op for layer in imported.layers]
    for a, b in zip(direct.layers, imported.layers):
        assert a.in_shape == b.in_shape and a.out_shape == b.out_shape
        if isinstance(a, MacroLayer):
            assert (a.w_bits, a.x_bits, a.stride, a.padding) == (b.w_bits, b.x_bits,
                                                                 b.stride, b.padding)
            np.testing.assert_array_equal(a.weight, b.weight)
            if a.name in ("conv2", "fc"):                  # pruned blocks kept as zeros
                assert (a.weight == 0).mean() >= 0.4
            np.testing.assert_array_equal(a.requant.multiplier, b.requant.multiplier)
            np.testing.assert_array_equal(a.requant.bias, b.requant.bias)
            assert (a.requant.shift, a.requant.lo, a.requant.hi) == (
                b.requant.shift, b.requant.lo, b.requant.hi)
    assert direct.meta["output_scale"] == imported.meta["output_scale"]

    x_int = quantize_input(direct, load_digits_split().x_test)
    for a, b in zip(_layer_codes(direct, x_int), _layer_codes(imported, x_int)):
        np.testing.assert_array_equal(a, b)


def test_qonnx_file_computes_what_the_torch_model_computes(checkpoint, tmp_path):
    """qonnx's own executor on the file gives the checkpoint model's logits."""
    path = export_checkpoint_qonnx(checkpoint, tmp_path / "m.onnx")
    model = cleanup_model(ModelWrapper(str(path)))          # shapes inferred
    x = load_digits_split().x_test[:16]
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    got = np.concatenate([execute_onnx(model, {name_in: image[None]})[name_out]
                          for image in x])
    want = load_checkpoint(checkpoint).model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("setup, args, message", [
    (None, ["export-qonnx", "missing.pt", "--out", "m.onnx"], "no checkpoint at missing.pt"),
    ("folder", ["export-qonnx", "CK", "--out", "taken"],
     "taken is a folder; cimstack writes a file there"),
    ("binary", ["export-qonnx", "CK", "--out", "m.onnx"],
     "layer conv2 has binary weights (w_bits = 1)"),
])
def test_bad_input_is_one_clear_line(checkpoint, tmp_path, setup, args, message):
    if setup == "folder":
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "keep.txt").write_text("mine\n")
    ck = checkpoint
    if setup == "binary":
        ck = tiny_checkpoint(tmp_path / "bin.pt", [4, 1, 8], 4, 8)
    code, out = run_cli([str(ck) if a == "CK" else a for a in args], tmp_path)
    assert code == 2, out
    assert message in " ".join(out.split())
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
    if setup == "folder":
        assert (tmp_path / "taken" / "keep.txt").read_text() == "mine\n"
