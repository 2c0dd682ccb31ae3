"""QONNX import (cimstack.importer): Brevitas models exported with export_qonnx become
bundles whose integer codes match qonnx's own executor layer by layer, run bit-exact
on the emulated overlay, and anything outside the supported set is one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

import torch
import brevitas.nn as qnn

from badcase import run_cli  # noqa: E402
from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat  # noqa: E402
from hypothesis import example, given, settings, strategies as st  # noqa: E402

import cimstack  # noqa: E402
from cimstack.backends import open_backend  # noqa: E402
from cimstack.bundle import load_bundle  # noqa: E402
from cimstack.errors import ConfigError  # noqa: E402
from cimstack.importer.brevitas_export import export_qonnx_file  # noqa: E402
from cimstack.importer.qonnx_import import import_qonnx  # noqa: E402
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.ref.network import quantize_input, run_network  # noqa: E402
from cimstack.verify import against  # noqa: E402
from cimstack.verify.compare import verify  # noqa: E402

IMAGES = 120                    # test images compared with qonnx's executor


class Act(Uint8ActPerTensorFloat):
    collect_stats_steps = 8     # scales from a few training batches


def mlp():
    """Unsigned 8-bit input, 64 -> 32 (4-bit weights, 4-bit ReLU) -> 10 (8-bit weights)."""
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        qnn.QuantIdentity(act_quant=Act, bit_width=8, return_quant_tensor=True),
        qnn.QuantLinear(64, 32, bias=True, weight_bit_width=4),
        qnn.QuantReLU(act_quant=Act, bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(32, 10, bias=True, weight_bit_width=8))


def cnn():
    """conv3x3(1->8, per-channel 6-bit weights, bias) + BN + 4-bit ReLU + maxpool -> fc(128->10)."""
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Act, bit_width=8, return_quant_tensor=True),
        qnn.QuantConv2d(1, 8, 3, padding=1, bias=True, weight_bit_width=6,
                        weight_quant=Int8WeightPerChannelFloat),
        torch.nn.BatchNorm2d(8),
        qnn.QuantReLU(act_quant=Act, bit_width=4, return_quant_tensor=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(8 * 4 * 4, 10, bias=True, weight_bit_width=8))


def train(model, epochs=3):
    """A few epochs of Adam on the digits: realistic weights, scales and BN statistics."""
    data = load_digits_split()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """kind -> (trained Brevitas model, its QONNX file), each trained once."""
    folder, out = tmp_path_factory.mktemp("qonnx"), {}
    for seed, (kind, make) in enumerate((("mlp", mlp), ("cnn", cnn))):
        torch.manual_seed(seed)          # the same models whichever test builds them
        model = train(make())
        out[kind] = model, export_qonnx_file(model, torch.zeros(1, 1, 8, 8),
                                             folder / f"{kind}.onnx")
    return out


@pytest.fixture(params=["mlp", "cnn"])
def exported(request, models):
    return (request.param, *models[request.param])


def compare_with_qonnx(bundle, path, images):
    """The macro layers' :class:`LayerCheck` of :func:`cimstack.verify.against.
    compare_with_qonnx` (its input entry checked here) and qonnx's logits."""
    layers, logits = against.compare_with_qonnx(bundle, path, images)
    assert layers[0].layer == "input" and layers[0].check.ok, layers[0].check.summary()
    return [a.check for a in layers[1:]], logits


# ------------------------------------------------------------------ (a) vs qonnx

def test_import_matches_qonnx_executor(exported):
    kind, model, path = exported
    bundle = import_qonnx(path)
    ops = [layer.op for layer in bundle.layers]
    assert ops == (["flatten", "linear", "linear"] if kind == "mlp" else
                   ["conv2d", "maxpool2d", "flatten", "linear"])
    images = load_digits_split().x_test[:IMAGES]
    checks, logits = compare_with_qonnx(bundle, path, images)
    for check in checks:
        assert check.ok, check.summary()
        assert check.max_steps <= (1 if check.max_bound < 0.5 else check.max_bound + 1)
    hidden = checks[0]
    assert hidden.max_bound < 1e-2 and hidden.mismatches <= 2, hidden.summary()
    ref = run_network(bundle, quantize_input(bundle, images))
    assert np.array_equal(ref.predictions, logits.argmax(1))
    with torch.no_grad():                                     # and Brevitas itself
        assert np.array_equal(ref.predictions, model(torch.from_numpy(images)).argmax(1).numpy())
    assert (ref.predictions == load_digits_split().y_test[:IMAGES]).mean() > 0.7


def test_a_wrong_requantizer_is_caught(exported):
    """The comparison can fail: one multiplier off by 1 % moves codes beyond the bound."""
    _, _, path = exported
    bundle = import_qonnx(path)
    layer = bundle.macro_layers[0]
    layer.requant.multiplier = layer.requant.multiplier * 101 // 100
    checks, _ = compare_with_qonnx(bundle, path, load_digits_split().x_test[:IMAGES])
    assert not checks[0].ok


# ------------------------------------------------------------------ (b) emulated overlay

def test_imported_bundle_bit_exact_on_emulated_overlay(exported, tmp_path):
    kind, model, path = exported
    bundle = cimstack.compile(model, torch.zeros(1, 1, 8, 8), out=tmp_path / "b", name=kind)
    assert load_bundle(tmp_path / "b").name == kind
    images = load_digits_split().x_test[:40]
    rep = verify(bundle, quantize_input(bundle, images), open_backend("emu").engine, "emu")
    assert rep.ok, rep.summary()
    assert rep.prediction_agreement == 1.0


# ------------------------------------------------------------------ (c) unsupported

class Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Act, return_quant_tensor=False)
        self.fc = qnn.QuantLinear(64, 64, bias=True, weight_bit_width=4)

    def forward(self, x):
        x = self.inp(torch.flatten(x, 1))
        return self.fc(x) + x


def _unsupported(case):
    inp = qnn.QuantIdentity(act_quant=Act, return_quant_tensor=True)
    if case == "sigmoid":
        return torch.nn.Sequential(torch.nn.Flatten(), inp, qnn.QuantLinear(64, 10),
                                   torch.nn.Sigmoid())
    if case == "add":
        return Residual()
    if case == "relu-signed":
        return torch.nn.Sequential(torch.nn.Flatten(), qnn.QuantIdentity(
            return_quant_tensor=False), torch.nn.ReLU(), qnn.QuantLinear(64, 10))
    if case == "asymmetric":
        return torch.nn.Sequential(inp, qnn.QuantConv2d(1, 4, 3, padding=(1, 0),
                                                        weight_bit_width=4))
    if case == "float-weights":
        return torch.nn.Sequential(torch.nn.Flatten(), inp, torch.nn.Linear(64, 10))
    raise AssertionError(case)


@pytest.mark.parametrize("case, message", [
    ("sigmoid", "node '/3/Sigmoid': op type Sigmoid is not supported; supported: Quant"),
    ("add", "node '/Add' (Add): it reads the real output of '/fc/Gemm' before any "
     "activation Quant: put one in between"),
    ("relu-signed", "node '/2/Relu' (Relu): a Relu on signed or bipolar codes"),
    ("asymmetric", "node '/1/Conv' (Conv): strides [1, 1], dilations [1, 1] and pads "
     "[1, 0, 1, 0] must be equal"),
    ("float-weights", "node '/2/Gemm' (Gemm): its weights are float constants without a "
     "Quant node"),
])
def test_unsupported_graph_is_one_clear_error(case, message, tmp_path):
    model = _unsupported(case)
    model(torch.rand(4, 1, 8, 8))                  # collect activation statistics
    path = export_qonnx_file(model, torch.zeros(1, 1, 8, 8), tmp_path / f"{case}.onnx")
    with pytest.raises(ConfigError) as err:
        import_qonnx(path)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert "Reshape/Flatten" in text             # names the supported set


# ------------------------------------------------------------------ (d) command line

def test_cli_import_then_verify(models, tmp_path):
    _, path = models["cnn"]
    code, out = run_cli(["import", str(path), "--out", "b", "--set", "rows_on=8"], tmp_path)
    assert code == 0, out
    assert "Conv_0" in out and "bundle: b" in out
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["macros"]["dcim"]["rows_on"] == 8 and doc["meta"]["source"] == "qonnx"
    code, out = run_cli(["import", str(path), "--out", "b"], tmp_path)       # ours: replaced
    assert code == 0, out
    code, out = run_cli(["verify", "b", "--backend", "emu", "--limit", "20",
                         "--report", "v"], tmp_path)
    assert code == 0, out
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["ok"]


@pytest.mark.parametrize("setup, args, message", [
    (None, ["import", "missing.onnx", "--out", "b"], "missing.onnx does not exist"),
    ("folder", ["import", "model.onnx", "--out", "b"], "model.onnx is not a file"),
    ("text", ["import", "model.onnx", "--out", "b"], "model.onnx is not an ONNX model"),
    ("empty", ["import", "model.onnx", "--out", "b"], "model.onnx is not an ONNX model"),
    (None, ["import", "m.onnx", "--out", "b", "--macro", "snn"], "--macro snn: the QONNX "
     "import maps layers onto dcim or acim"),
    (None, ["import", "m.onnx", "--out", "b", "--set", "rows_on"], "write KNOB=VALUE"),
    (None, ["import", "m.onnx", "--out", "b", "--set", "rows_on=8,16"], "give one value"),
    (None, ["import", "m.onnx", "--out", "b", "--set", "adc_bits=4"], "adc_bits"),
])
def test_cli_refuses_bad_input_with_one_line(tmp_path, setup, args, message):
    if setup == "text":
        (tmp_path / "model.onnx").write_text("not a model\n" * 10)
    elif setup == "folder":
        (tmp_path / "model.onnx").mkdir()
    elif setup == "empty":
        (tmp_path / "model.onnx").write_bytes(b"")
    code, out = run_cli(args, tmp_path)
    assert code == 2, out
    assert message in " ".join(out.split())
    assert out.strip().startswith("error:") and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ hand-built graphs

QONNX_DOMAIN = "qonnx.custom_op.general"


def _quant(helper, inits, name, x, scale, bits, signed, narrow=0):
    inits += [helper.make_tensor(f"{name}_scale", 1, np.shape(scale), np.ravel(scale)),
              helper.make_tensor(f"{name}_zero", 1, [], [0.0]),
              helper.make_tensor(f"{name}_bits", 1, [], [float(bits)])]
    return helper.make_node("Quant", [x, f"{name}_scale", f"{name}_zero", f"{name}_bits"],
                            [f"{name}_out"], name=name, domain=QONNX_DOMAIN,
                            signed=signed, narrow=narrow, rounding_mode="ROUND")


def _bipolar(helper, inits, name, x, scale):
    inits.append(helper.make_tensor(f"{name}_scale", 1, np.shape(scale), np.ravel(scale)))
    return helper.make_node("BipolarQuant", [x, f"{name}_scale"], [f"{name}_out"], name=name,
                            domain=QONNX_DOMAIN)


def chain_model(path, seed, k, n1, n2, in_bits, w_bits, a_bits, kind, bn, per_channel,
                in_signed=False, act="unsigned", relu=True, binary_w2=False):
    """input [1, k] -> Quant(in_bits, unsigned or ``in_signed``) -> (Gemm transB=1 | Gemm
    transB=0 | MatMul + Add) of n1 with w_bits weights -> [BatchNormalization] -> [Relu]
    -> activation (``act``: Quant(a_bits) unsigned, signed or narrow signed, or
    BipolarQuant) -> Gemm of n2 with w_bits (or BipolarQuant) weights (the logits);
    written as ONNX to ``path``."""
    import onnx
    from onnx import TensorProto, helper
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    nodes.append(_quant(helper, inits, "q_in", "x", np.float32(1 / 2**in_bits), in_bits,
                        int(in_signed)))
    w1 = rng.normal(size=(n1, k)).astype(np.float32)
    s1 = (np.abs(w1).max(axis=1, keepdims=True) / (2 ** (w_bits - 1) - 1)).astype(np.float32)
    if not per_channel:
        s1 = np.float32(s1.max())
    b1 = rng.normal(size=n1).astype(np.float32)
    if kind == "gemm":
        w_const, s_const = w1, s1
    else:                                            # [K, N] weights, scale per column
        w_const, s_const = w1.T.copy(), (s1 if not per_channel else s1.T.copy())
    inits.append(helper.make_tensor("w1", 1, w_const.shape, w_const.ravel()))
    nodes.append(_quant(helper, inits, "q_w1", "w1", s_const, w_bits, 1, narrow=1))
    inits.append(helper.make_tensor("b1", 1, [n1], b1))
    if kind == "matmul":
        nodes += [helper.make_node("MatMul", ["q_in_out", "q_w1_out"], ["mm"], name="mm"),
                  helper.make_node("Add", ["mm", "b1"], ["fc1"], name="bias1")]
    else:
        nodes.append(helper.make_node("Gemm", ["q_in_out", "q_w1_out", "b1"], ["fc1"],
                                      name="fc1", transB=int(kind == "gemm")))
    y = "fc1"
    if bn:
        for name, value in (("gamma", rng.uniform(-2, 2, n1)), ("beta", rng.normal(size=n1)),
                            ("mean", rng.normal(size=n1)), ("var", rng.uniform(0.1, 3, n1))):
            inits.append(helper.make_tensor(name, 1, [n1], value.astype(np.float32)))
        nodes.append(helper.make_node("BatchNormalization", ["fc1", "gamma", "beta", "mean",
                                                              "var"], ["bn"], name="bn"))
        y = "bn"
    if relu:
        nodes.append(helper.make_node("Relu", [y], ["relu"], name="relu"))
        y = "relu"
    a_scale = np.float32(rng.uniform(0.05, 0.5))
    if act == "bipolar":
        nodes.append(_bipolar(helper, inits, "q_act", y, a_scale))
    else:
        nodes.append(_quant(helper, inits, "q_act", y, a_scale,
                            min(8, a_bits + (act != "unsigned")),
                            int(act != "unsigned"), narrow=int(act == "narrow")))
    w2 = rng.normal(size=(n2, n1)).astype(np.float32)
    inits.append(helper.make_tensor("w2", 1, w2.shape, w2.ravel()))
    if binary_w2:
        nodes.append(_bipolar(helper, inits, "q_w2", "w2", np.float32(np.abs(w2).mean())))
    else:
        nodes.append(_quant(helper, inits, "q_w2", "w2",
                            np.float32(np.abs(w2).max() / (2 ** (w_bits - 1) - 1)), w_bits, 1))
    nodes.append(helper.make_node("Gemm", ["q_act_out", "q_w2_out"], ["y"], name="fc2",
                                  transB=1))
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n2])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(QONNX_DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


CHAIN = dict(seed=st.integers(0, 2**16), k=st.integers(1, 40), n1=st.integers(1, 16),
             n2=st.integers(1, 10), in_bits=st.integers(1, 8), w_bits=st.integers(2, 8),
             a_bits=st.integers(1, 8), kind=st.sampled_from(["gemm", "gemm-transposed",
                                                             "matmul"]),
             bn=st.booleans(), per_channel=st.booleans(), in_signed=st.booleans(),
             act=st.sampled_from(["unsigned", "signed", "narrow", "bipolar"]),
             relu=st.booleans(), binary_w2=st.booleans())


@settings(max_examples=30, deadline=None)
@given(**CHAIN)
@example(seed=0, k=1, n1=1, n2=1, in_bits=1, w_bits=2, a_bits=1, kind="gemm", bn=False,
         per_channel=False, in_signed=False, act="unsigned", relu=True, binary_w2=False)
@example(seed=1, k=40, n1=16, n2=10, in_bits=8, w_bits=8, a_bits=7, kind="matmul", bn=True,
         per_channel=True, in_signed=True, act="signed", relu=False, binary_w2=False)
@example(seed=2, k=40, n1=16, n2=10, in_bits=2, w_bits=2, a_bits=1, kind="gemm", bn=True,
         per_channel=False, in_signed=True, act="bipolar", relu=False, binary_w2=True)
@example(seed=3, k=7, n1=5, n2=3, in_bits=1, w_bits=3, a_bits=3, kind="gemm-transposed",
         bn=False, per_channel=True, in_signed=True, act="narrow", relu=False,
         binary_w2=False)
def test_hand_built_chains_match_qonnx(tmp_path_factory, seed, k, n1, n2, in_bits, w_bits,
                                       a_bits, kind, bn, per_channel, in_signed, act, relu,
                                       binary_w2):
    """Unsigned, signed and bipolar inputs and activations, narrow ranges, binary
    weights: the offset folding and the bipolar thresholds against qonnx's executor."""
    in_bits += in_signed and in_bits == 1        # a signed 1-bit Quant is bipolar
    path = chain_model(tmp_path_factory.mktemp("chain") / "m.onnx", seed, k, n1, n2, in_bits,
                       w_bits, a_bits, kind, bn, per_channel, in_signed, act, relu, binary_w2)
    bundle = import_qonnx(path)
    assert [layer.op for layer in bundle.macro_layers] == ["linear", "linear"]
    fmt = bundle.formats()[bundle.macro_layers[0].name]
    assert (fmt.signed, fmt.bipolar) == (act in ("signed", "narrow"), act == "bipolar")
    assert bundle.macro_layers[1].w_bits == (1 if binary_w2 else w_bits)
    rng = np.random.default_rng(seed)
    low = -(1 << in_bits) // 2 if in_signed else 0
    images = (rng.integers(low, low + (1 << in_bits), (64, k)) / 2**in_bits).astype(np.float32)
    checks, _ = compare_with_qonnx(bundle, path, images)
    for check in checks:
        assert check.ok, check.summary()


@pytest.mark.parametrize("change, message", [
    (("q_w1_bits", 9.0), "node 'q_w1' (Quant): bit width 9.0 is not an integer in 1..8"),
    (("q_act_zero", 1.0), "node 'q_act' (Quant): zero points other than 0"),
    (("q_in_scale", -1.0), "node 'q_in' (Quant): its scale must be positive and finite"),
    (("q_act_scale", [0.1, 0.2]), "node 'q_act' (Quant): activations need one scale per "
     "tensor"),
    (("relu", "Sigmoid"), "node 'relu': op type Sigmoid is not supported"),
])
def test_hand_built_bad_quantizers_are_one_clear_error(tmp_path, change, message):
    import onnx
    from onnx import numpy_helper
    path = chain_model(tmp_path / "m.onnx", 0, 8, 4, 3, 8, 4, 4, "gemm", False, True)
    model = onnx.load(str(path))
    name, value = change
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(np.array(value, np.float32), name))
    for node in model.graph.node:
        if node.name == name and value == "narrow":
            next(a for a in node.attribute if a.name == "narrow").i = 1
        elif node.name == name:
            node.op_type = value
    onnx.save(model, str(path))
    with pytest.raises(ConfigError) as err:
        import_qonnx(path)
    assert message in str(err.value) and "supported: Quant" in str(err.value)
