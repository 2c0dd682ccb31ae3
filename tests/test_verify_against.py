"""``cimstack verify BUNDLE --against MODEL.onnx`` (cimstack.verify.against): an imported
bundle matches qonnx's executor layer by layer; a wrong requantizer, a bundle that was
not imported, a wrong model file or a bad threshold each fail with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import torch
import brevitas.nn as qnn

from badcase import run_cli  # noqa: E402
from brevitas.quant import Uint8ActPerTensorFloat  # noqa: E402
from conftest import digits_like_bundle  # noqa: E402

from cimstack.bundle import load_bundle, save_bundle  # noqa: E402
from cimstack.errors import ConfigError  # noqa: E402
from cimstack.importer.brevitas_export import export_qonnx_file  # noqa: E402
from cimstack.importer.qonnx_import import import_qonnx  # noqa: E402
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.verify.against import check_against  # noqa: E402


class Act(Uint8ActPerTensorFloat):
    collect_stats_steps = 4     # scales from a few batches


def collected(model):
    """``model`` in eval mode after its activation quantizers saw 4 batches of digits
    (untrained weights: the check compares integer arithmetic, not accuracy)."""
    x = torch.from_numpy(load_digits_split().x_train)
    with torch.no_grad():
        for i in range(4):
            model(x[64 * i:64 * (i + 1)])
    return model.eval()


def mlp_file(path, seed=0):
    """64 -> 24 (4-bit weights, 4-bit ReLU) -> 10 (8-bit weights) as QONNX at ``path``."""
    torch.manual_seed(seed)
    model = collected(torch.nn.Sequential(
        torch.nn.Flatten(),
        qnn.QuantIdentity(act_quant=Act, bit_width=8, return_quant_tensor=True),
        qnn.QuantLinear(64, 24, bias=True, weight_bit_width=4),
        qnn.QuantReLU(act_quant=Act, bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(24, 10, bias=True, weight_bit_width=8)).train())
    return export_qonnx_file(model, torch.zeros(1, 1, 8, 8), path)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return mlp_file(tmp_path_factory.mktemp("m") / "mlp.onnx")


def perturbed(bundle):
    """The bundle with its first requantizer's multipliers 1 % too large."""
    rq = bundle.macro_layers[0].requant
    rq.multiplier = rq.multiplier * 101 // 100
    return bundle


def test_imported_bundle_matches_qonnx(onnx_path):
    bundle = import_qonnx(onnx_path)
    rep = check_against(bundle, onnx_path, load_digits_split().x_test)
    assert rep.ok, rep.failures()
    assert [a.layer for a in rep.layers] == ["input", "Gemm_0", "Gemm_1"]
    assert rep.layers[1].identical >= 0.999 and rep.layers[1].matching == 1.0
    assert rep.layers[2].matching == 1.0            # logits: within float32 error
    assert rep.prediction_agreement == 1.0
    doc = rep.to_dict()
    assert doc["ok"] and doc["images"] == 360 and doc["layers"][1]["node"] == "Gemm_0"


def test_a_perturbed_requantizer_fails_naming_the_layer(onnx_path):
    bundle = perturbed(import_qonnx(onnx_path))
    rep = check_against(bundle, onnx_path, load_digits_split().x_test)
    assert not rep.ok
    assert rep.failures()[0].startswith("layer Gemm_0 (Gemm_0): ")
    assert rep.layers[1].matching < 0.999 and rep.layers[2].matching == 1.0
    # the thresholds decide: a loose one lets the same bundle pass
    loose = check_against(bundle, onnx_path, load_digits_split().x_test, 0.9, 0.9)
    assert loose.ok, loose.failures()


def test_cli_verify_against_end_to_end(onnx_path, tmp_path):
    code, out = run_cli(["import", str(onnx_path), "--out", "b"], tmp_path)
    assert code == 0, out
    code, out = run_cli(["verify", "b", "--limit", "30", "--report", "v", "--against",
                         str(onnx_path)], tmp_path)
    assert code == 0, out
    assert "against mlp.onnx" in out and "prediction agreement 100.00%" in out
    doc = json.loads((tmp_path / "v" / "against.json").read_text())
    assert doc["ok"] and doc["images"] == 30 and doc["failures"] == []
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["ok"]

    save_bundle(perturbed(load_bundle(tmp_path / "b")), tmp_path / "bad")
    code, out = run_cli(["verify", "bad", "--limit", "30", "--report", "v2", "--against",
                         str(onnx_path)], tmp_path)
    assert code == 1, out
    assert "below threshold: layer Gemm_0 (Gemm_0)" in " ".join(out.split())
    assert not json.loads((tmp_path / "v2" / "against.json").read_text())["ok"]


@pytest.mark.parametrize("case, message", [
    ("demo", "bundle random-digits was not imported from a QONNX model"),
    ("other", "other.onnx has no tensor"),
    ("seed", "other.onnx: tensor 'Quant_3_out0' holds values that are not multiples of"),
    ("flat", "other.onnx takes inputs of shape (64,), the bundle (1, 8, 8): it is not"),
])
def test_cli_refuses_with_one_line(onnx_path, tmp_path, case, message):
    """(The thresholds' own checks are cases of tests/bad_cases_flags.py.)"""
    if case == "demo":
        save_bundle(digits_like_bundle(), tmp_path / "b")
    else:
        save_bundle(import_qonnx(onnx_path), tmp_path / "b")
    model = onnx_path
    if case == "seed":                    # same graph, other weights and hidden scale
        model = mlp_file(tmp_path / "other.onnx", seed=1)
    if case in ("other", "flat"):         # other tensor names; (64,) instead of (1, 8, 8)
        model = export_qonnx_file(collected(torch.nn.Sequential(
            torch.nn.Flatten(), qnn.QuantIdentity(act_quant=Act, return_quant_tensor=True),
            qnn.QuantLinear(64, 10, bias=True, weight_bit_width=4)).train()),
            torch.zeros(1, 1, 8, 8) if case == "other" else torch.zeros(1, 64),
            tmp_path / "other.onnx")
    code, out = run_cli(["verify", "b", "--report", "v", "--against", str(model)],
                        tmp_path)
    assert code == 2, out
    assert message in " ".join(out.split()), out
    assert out.strip().startswith("error:") and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "v").exists()


def test_checker_refuses_a_bundle_without_qonnx_meta(onnx_path):
    with pytest.raises(ConfigError, match="needs a bundle written by `cimstack import"):
        check_against(digits_like_bundle(), onnx_path, np.zeros((2, 1, 8, 8), np.float32))
