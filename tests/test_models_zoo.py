"""The model zoo (cimstack.models): every network exports to QONNX and imports into a
valid dcim bundle with its macro layers and MACs; VGG16 and ResNet18 run through the
reference; a digits-trained build classifies the digits in Brevitas and imported; the
`cimstack models` commands refuse bad input with one line."""

from __future__ import annotations

import time

import numpy as np
import pytest

import torch

from badcase import run_cli  # noqa: E402

from cimstack.bundle import MacroLayer  # noqa: E402
from cimstack.data import random_images  # noqa: E402
from cimstack.importer.qonnx_import import import_qonnx  # noqa: E402
from cimstack.models.zoo import (  # noqa: E402
    IMAGINE_CFG,
    MODELS,
    VGG,
    build,
    digits_as,
    export,
    summarize,
    train_digits,
)
from cimstack.quant.data import load_digits_split  # noqa: E402
from cimstack.ref.network import integer_accuracy, quantize_input, run_network  # noqa: E402

# name -> (macro layers, MACs per image) of the full-size W4A4 builds
EXPECTED = {
    "vgg16": (14, 313_201_664),
    "resnet18": (21, 555_422_720),
    "imagine_cnn": (7, 115_016_960),
    "cnv": (9, 59_461_376),
}


def macro_macs(bundle) -> tuple[int, int]:
    """Macro layers of ``bundle`` and their MACs per image (outputs x K)."""
    layers = [layer for layer in bundle.layers if isinstance(layer, MacroLayer)]
    return len(layers), sum(int(np.prod(layer.out_shape)) * layer.weight[0].size
                            for layer in layers)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """name -> (bundle imported from the exported QONNX file, seconds to export+import)."""
    folder = tmp_path_factory.mktemp("zoo")
    out = {}
    for name, entry in MODELS.items():
        start = time.perf_counter()
        path = export(build(name, seed=1), torch.zeros(entry.input_shape),
                      folder / f"{name}.onnx")
        out[name] = (import_qonnx(path), time.perf_counter() - start)
    return out


def test_the_registry_matches_the_papers():
    assert {"vgg16", "resnet18", "imagine_cnn", "cnv"} <= set(MODELS)
    for name, (layers, macs) in EXPECTED.items():
        entry = MODELS[name]
        assert summarize(entry.network(4, 1.0).eval(), entry.input_shape) \
            .layers == layers
    # IMAGINE's analog macro has 1152 rows: every conv's K = C_in * 9 fits
    convs = [m for m in VGG(IMAGINE_CFG).modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(m.weight[0].numel() for m in convs) == 1152


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_model_exports_and_imports(imported, name):
    bundle, seconds = imported[name]
    assert macro_macs(bundle) == EXPECTED[name], seconds
    assert all(layer.w_bits <= 8 for layer in bundle.layers if isinstance(layer, MacroLayer))


@pytest.mark.parametrize("name", ["vgg16", "resnet18"])
def test_mars_networks_run_through_the_reference(imported, name):
    bundle, _ = imported[name]
    start = time.perf_counter()
    result = run_network(bundle, quantize_input(bundle, random_images(bundle, 2)))
    seconds = time.perf_counter() - start
    assert result.logits.shape == (2, 10)
    # the random weights and calibrated statistics give logits that differ per image
    assert not np.array_equal(result.logits[0], result.logits[1]), seconds


def test_random_activations_use_several_codes():
    model = build("imagine_cnn", seed=3, width=1 / 8)
    codes = []
    hooks = [m.register_forward_hook(lambda m, i, o: codes.append(o.int().unique().numel()))
             for m in model.modules() if type(m).__name__ == "QuantReLU"]
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    for hook in hooks:
        hook.remove()
    assert min(codes) >= 8, codes          # of the 16 codes of a 4-bit activation


def test_a_digits_build_classifies_in_brevitas_and_imported(tmp_path):
    entry = MODELS["imagine_cnn"]
    model = build("imagine_cnn", seed=0, width=entry.digits_width)
    accuracy = train_digits(model, epochs=3, lr=1e-2, input_shape=entry.input_shape)
    assert accuracy > 0.8
    bundle = import_qonnx(export(model, torch.zeros(entry.input_shape),
                                 tmp_path / "digits.onnx"))
    data = load_digits_split()
    imported_accuracy = integer_accuracy(bundle, digits_as(data.x_test, entry.input_shape),
                                         data.y_test)
    assert imported_accuracy > 0.8
    assert abs(imported_accuracy - accuracy) < 0.03


def test_digits_images_keep_the_sixteenths():
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8) / 16
    up = digits_as(x, (1, 3, 32, 32))
    assert up.shape == (1, 3, 32, 32)
    assert np.array_equal(up[0, 2, ::4, ::4], x[0, 0])
    assert np.array_equal(up[0, 0, 3, 3], x[0, 0, 0, 0])
    assert np.array_equal(digits_as(x, (1, 1, 8, 8)), x)


def test_the_commands_refuse_bad_input_with_one_line(tmp_path):
    code, out = run_cli(["models", "export", "nope", "--out", "m.onnx"], tmp_path)
    assert code == 2 and "vgg16, resnet18, imagine_cnn, cnv" in out
    assert len(out.strip().splitlines()) == 1
    code, out = run_cli(["models", "export", "cnv", "--out", str(tmp_path)], tmp_path)
    assert code == 2 and "is a folder" in out
    code, _ = run_cli(["models", "export", "cnv", "--bits", "9", "--out", "m.onnx"], tmp_path)
    assert code == 2
    assert not (tmp_path / "m.onnx").exists()
    assert list(tmp_path.iterdir()) == []


def test_export_writes_the_file(tmp_path):
    code, out = run_cli(["models", "export", "cnv", "--bits", "2", "--seed", "5",
                         "--out", "sub/cnv.onnx"], tmp_path)
    assert code == 0, out
    assert macro_macs(import_qonnx(tmp_path / "sub" / "cnv.onnx")) == EXPECTED["cnv"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["cnv.onnx"]


def test_list_shows_every_model(tmp_path):
    code, out = run_cli(["models", "list"], tmp_path)
    assert code == 0, out
    for name in MODELS:
        assert name in out
    assert "313.2 M" in out and "555.4 M" in out     # VGG16's and ResNet18's MACs
