"""The proof of the QONNX graph import: FINN's own networks (TFC, SFC, LFC, CNV at W1A1
and W2A2), a user CNN with a signed input, a stride-2 padded conv, a depthwise conv, a
residual add, average and global average pooling, a ResNet-8, a 2-layer MLP and a
branch-and-concat net with a dilated conv, all exported by Brevitas to QONNX and
imported: every layer's codes against qonnx's own executor, the emulated overlay bit
for bit against the reference, and (trained on the digits) accuracy against Brevitas."""

from __future__ import annotations

import json

import numpy as np
import pytest

import torch

from badcase import run_cli  # noqa: E402
from qonnx_models import BUILDERS, export, mlp, train_digits, user_cnn  # noqa: E402

from cimstack.backends import open_backend  # noqa: E402
from cimstack.bundle import load_bundle  # noqa: E402
from cimstack.config import AcimSpec  # noqa: E402
from cimstack.errors import ConfigError  # noqa: E402
from cimstack.data import random_images  # noqa: E402
from cimstack.importer.qonnx_import import import_qonnx  # noqa: E402
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.ref.network import integer_accuracy, quantize_input, run_network  # noqa: E402
from cimstack.verify.against import MIN_IDENTICAL, check_against  # noqa: E402
from cimstack.verify.compare import verify  # noqa: E402

AGAINST_IMAGES = 24          # random images per network against qonnx's executor
EMU_IMAGES = 3               # images through the emulated overlay


class BranchConcat(torch.nn.Module):
    """Two conv branches (one dilated) of one quantized input, concatenated through a
    shared quantizer, max-pooled, a linear classifier (Concat and dilation in QONNX)."""

    def __init__(self):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int32Bias
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.a = qnn.QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
        self.b = qnn.QuantConv2d(1, 4, 3, padding=2, dilation=2, weight_bit_width=4,
                                 bias=False)
        self.act = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(8 * 4 * 4, 10, weight_bit_width=4, bias=True,
                                  bias_quant=Int32Bias)

    def forward(self, x):
        x = self.inp(x)
        y = torch.cat([self.act(self.a(x)), self.act(self.b(x))], dim=1)
        return self.fc(torch.flatten(self.pool(y), 1))


def branch_concat(seed: int = 0):
    torch.manual_seed(seed)
    model = BranchConcat()
    model(torch.rand(16, 1, 8, 8))              # activation statistics
    return model.eval()


NETWORKS = {**BUILDERS, "branch_concat": (branch_concat, (1, 1, 8, 8))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> its QONNX file, exported once per module on first use."""
    folder, files = tmp_path_factory.mktemp("graphs"), {}

    def get(name):
        if name not in files:
            build, shape = NETWORKS[name]
            files[name] = export(build(), torch.zeros(*shape), folder / f"{name}.onnx")
        return files[name]
    return get


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_imported_graph_matches_qonnx_and_runs_bit_exact_on_the_emulated_overlay(
        exported, name):
    path = exported(name)
    bundle = import_qonnx(path)
    images = random_images(bundle, AGAINST_IMAGES, seed=1)
    report = check_against(bundle, path, images)
    assert report.ok, report.failures()
    assert all(a.matching >= MIN_IDENTICAL for a in report.layers)
    # every hidden code identical to qonnx's rounded value (the logits' step is finer
    # than float32, so there codes differ by a step and still match)
    assert all(a.identical >= MIN_IDENTICAL for a in report.layers[:-1]), \
        [(a.layer, a.identical) for a in report.layers]
    assert len(report.layers) == 1 + sum(hasattr(layer, "requant") for layer in bundle.layers)
    x = quantize_input(bundle, images[:EMU_IMAGES])
    rep = verify(bundle, x, open_backend("emu").engine, "emu")
    assert rep.ok, rep.summary()


def test_the_networks_hold_what_the_issue_names(exported):
    """The graphs really contain the ops under test (so the test above proves them)."""
    ops = {name: {type(layer).__name__ for layer in import_qonnx(exported(name)).layers}
           for name in ("user_cnn", "resnet8", "branch_concat")}
    assert {"AddLayer", "AvgPoolLayer"} <= ops["user_cnn"] and "AddLayer" in ops["resnet8"]
    assert "ConcatLayer" in ops["branch_concat"]
    user = import_qonnx(exported("user_cnn"))
    assert user.input.signed
    assert any(getattr(layer, "groups", 1) == layer.channels > 1 for layer in user.macro_layers)
    assert any(getattr(layer, "dilation", 1) == 2
               for layer in import_qonnx(exported("branch_concat")).macro_layers)
    cnv = import_qonnx(exported("cnv_w1a1"))
    assert max(layer.k for layer in cnv.macro_layers) == 2304        # > the kernel's MAX_K
    assert cnv.input.offset != 0                                     # FINN's 2x - 1
    tfc = import_qonnx(exported("tfc_w1a1"))
    assert tfc.input.bipolar and all(layer.w_bits == 1 for layer in tfc.macro_layers)
    formats = tfc.formats()
    assert all(formats[layer.name].bipolar for layer in tfc.macro_layers[:-1])


@pytest.fixture(scope="module")
def trained_user_cnn(tmp_path_factory):
    """The user CNN trained on the digits, its QONNX file and Brevitas's accuracy."""
    torch.manual_seed(0)
    model = user_cnn()
    accuracy = train_digits(model, epochs=12)
    path = export(model, torch.zeros(1, 1, 8, 8), tmp_path_factory.mktemp("user") / "user.onnx")
    return model, path, accuracy


def test_trained_user_cnn_keeps_its_accuracy(trained_user_cnn):
    model, path, accuracy = trained_user_cnn
    data = load_digits_split()
    bundle = import_qonnx(path)
    ours = run_network(bundle, quantize_input(bundle, data.x_test)).predictions
    with torch.no_grad():
        theirs = model(torch.from_numpy(data.x_test))
    theirs = getattr(theirs, "value", theirs).argmax(1).numpy()
    assert accuracy > 0.85
    assert abs(np.mean(ours == data.y_test) - accuracy) <= 0.005
    assert np.mean(ours == theirs) >= 0.99
    rep = verify(bundle, quantize_input(bundle, data.x_test[:20]), open_backend("emu").engine,
                 "emu")
    assert rep.ok, rep.summary()


def test_fine_tuning_the_imported_cnn_without_its_source(trained_user_cnn):
    """The logits layer moved to a 5-bit analog ADC loses accuracy; fine-tuning the
    bundle itself (no Brevitas source: cimstack.quant.graph_model) wins some back, and
    the tuned graph (signed input, depthwise conv, residual add, pools) runs bit-exactly
    on the emulated overlay."""
    from cimstack.study.finetune import finetune_bundle
    from cimstack.study.sensitivity import to_acim
    _, path, _ = trained_user_cnn
    data = load_digits_split()
    bundle = to_acim(import_qonnx(path), "Gemm_0", AcimSpec(sigma=0.25), 5)
    res = finetune_bundle(bundle, data.x_train, data.y_train, images=data.x_test,
                          labels=data.y_test, epochs=2)
    assert res.accuracy_after >= res.accuracy_before + 0.04, (res.accuracy_before,
                                                              res.accuracy_after)
    rep = verify(res.after, quantize_input(res.after, data.x_test[:8]),
                 open_backend("emu", timeout_s=5.0).engine, "emu")
    assert rep.ok, rep.summary()


def test_the_whole_flow_through_the_cli(trained_user_cnn, tmp_path):
    """Brevitas -> QONNX -> cimstack import -> verify --backend emu -> verify --against ->
    cost, as a user runs it."""
    _, path, _ = trained_user_cnn
    code, out = run_cli(["import", str(path), "--out", "b"], tmp_path)
    assert code == 0, out
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["schema_version"] == 2
    assert load_bundle(tmp_path / "b").input.signed
    code, out = run_cli(["verify", "b", "--backend", "emu", "--limit", "16"], tmp_path)
    assert code == 0, out
    code, out = run_cli(["verify", "b", "--against", str(path), "--limit", "64",
                         "--report", "v"], tmp_path)
    assert code == 0, out
    against = json.loads((tmp_path / "v" / "against.json").read_text())
    assert against["ok"] and min(layer["matching"] for layer in against["layers"]) >= 0.999
    assert {layer["layer"] for layer in against["layers"]} >= {"Add_0", "AveragePool_0"}
    code, out = run_cli(["cost", "b"], tmp_path)
    assert code == 0, out
    assert "Conv_1" in out                                     # the depthwise conv


def test_a_trained_mlp_on_the_analog_macro(tmp_path):
    """--macro acim: the layers on the analog macro (ABN gains and offsets from the
    model's scales); ideal ADC keeps the accuracy, ADC noise costs a little, and the
    emulated overlay agrees with the reference bit for bit, noise included."""
    torch.manual_seed(0)
    model = mlp()
    accuracy = train_digits(model, epochs=6)
    path = export(model, torch.zeros(1, 64), tmp_path / "mlp.onnx")
    data = load_digits_split()
    x, y = data.x_test.reshape(-1, 64), data.y_test
    ideal = import_qonnx(path, macro="acim", acim=AcimSpec(adc_bits=8))
    assert {layer.macro for layer in ideal.macro_layers} == {"acim"}
    assert abs(integer_accuracy(ideal, x, y) - accuracy) <= 0.01
    noisy = import_qonnx(path, macro="acim", acim=AcimSpec(adc_bits=6, sigma=1.0, seed=3))
    assert 0.85 <= integer_accuracy(noisy, x, y) < integer_accuracy(ideal, x, y) + 0.005
    rep = verify(noisy, quantize_input(noisy, x[:24]), open_backend("emu").engine, "emu")
    assert rep.ok, rep.summary()
    with pytest.raises(ConfigError, match="ABN gain would be .* outside the acim format"):
        import_qonnx(path, macro="acim", acim=AcimSpec(adc_bits=4))   # too fine a step
    with pytest.raises(ConfigError, match="activation has 4 bits but the ADC gives 3-bit"):
        import_qonnx(path, macro="acim", acim=AcimSpec(adc_bits=3))
