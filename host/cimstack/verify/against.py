"""Check an imported bundle against the QONNX model it came from (``verify --against``).

qonnx's own executor (``qonnx.core.onnx_exec.execute_onnx``) runs the model once on the
images, keeping every tensor. Each macro layer of the bundle then runs on the reference
(:func:`cimstack.ref.network.reference_engine`) with the very input codes qonnx gave its
ONNX nodes (so one flipped code cannot spread), and its output codes are compared with
qonnx's real values before rounding, in output steps; ``bundle.meta["qonnx"]`` (written
by :mod:`cimstack.importer.qonnx_import`) names those tensors.

qonnx computes in float32: an output *matches* when the bundle's code lies within half a
step plus the float32 error bound of qonnx's value (:class:`~cimstack.ref.codes.LayerCheck`;
the bound is the float32 error of the dot product, bias and batch norm,
``gamma(4*(K+16)) * (sum|x*w|*|M| + |B|) / 2^shift``, plus the requantizer's fixed-point
error ``(sum|x*w| + 1) / 2^(shift+1)``). For hidden layers the bound is about 1e-3 of a
step, so a matching code is an identical code except at an exact rounding tie; the
logits' step (``meta["output_scale"]``, max |logit| about 2^24 steps) is finer than
float32, so there codes differ by a step or two and still match. The check fails when
a layer's matching fraction is below ``min_identical`` or the predictions (argmax of
the logits) agree on fewer than ``min_agreement`` of the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rich.table import Table

from ..bundle import INPUT, Bundle, MacroLayer, TensorFormat
from ..errors import ConfigError
from ..fileio import write_json_atomic
from ..importer.qonnx_import import load_qonnx
from ..ref.codes import LayerCheck, check_codes, float32_bound
from ..ref.lowering import lower_conv
from ..ref.network import quantize_input, reference_engine, run_layer, run_network
from ..report.console import rich_table

MIN_IDENTICAL = 0.999       # default: matching fraction of every layer's codes
MIN_AGREEMENT = 0.99        # default: fraction of images with the same prediction
FILE = "against.json"       # written beside verify.json


@dataclass(frozen=True)
class LayerAgainst:
    """One bundle layer against its ONNX nodes."""

    layer: str
    node: str                 # its first ONNX node (the input check: the input tensor)
    check: LayerCheck

    @property
    def matching(self) -> float:
        """Fraction of codes within half a step plus qonnx's float32 error."""
        return 1.0 - self.check.unexplained / max(self.check.outputs, 1)

    @property
    def identical(self) -> float:
        """Fraction of codes equal to qonnx's rounded value."""
        return 1.0 - self.check.mismatches / max(self.check.outputs, 1)


@dataclass(frozen=True)
class AgainstReport:
    bundle: str
    model: str
    images: int
    layers: list[LayerAgainst]
    prediction_agreement: float
    min_identical: float = MIN_IDENTICAL
    min_agreement: float = MIN_AGREEMENT

    def failures(self) -> list[str]:
        """One line per layer or figure below its threshold."""
        out = [f"layer {a.layer} ({a.node}): {a.matching:.3%} of its codes match qonnx's, "
               f"below {self.min_identical:.3%} ({a.check.unexplained} of {a.check.outputs} "
               f"beyond qonnx's float32 error, up to {a.check.max_steps} step(s) apart)"
               for a in self.layers if a.matching < self.min_identical]
        if self.prediction_agreement < self.min_agreement:
            out.append(f"predictions agree on {self.prediction_agreement:.2%} of the images, "
                       f"below {self.min_agreement:.2%}")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def table(self) -> Table:
        """Per layer: ONNX node, identical and matching codes, largest difference in
        steps; the prediction agreement in the caption."""
        rows = [(a.layer, a.node, f"{a.identical:.2%}", f"{a.matching:.2%}",
                 str(a.check.max_steps)) for a in self.layers]
        return rich_table(f"{self.bundle} against {self.model}", ["layer", "ONNX node",
                          "identical", "matching", "max steps"], rows,
                          caption=f"prediction agreement {self.prediction_agreement:.2%}")

    def write(self, folder: str | Path) -> Path:
        """against.json into the report ``folder`` (claimed by verify.json's writer)."""
        return write_json_atomic(Path(folder) / FILE, self.to_dict())

    def to_dict(self) -> dict:
        layers = [{"layer": a.layer, "node": a.node, "identical": a.identical,
                   "matching": a.matching, "outputs": a.check.outputs,
                   "max_steps": a.check.max_steps, "float32_bound": a.check.max_bound}
                  for a in self.layers]
        return {"bundle": self.bundle, "model": self.model, "images": self.images,
                "layers": layers, "prediction_agreement": self.prediction_agreement,
                "min_identical": self.min_identical, "min_agreement": self.min_agreement,
                "failures": self.failures(), "ok": self.ok}


def qonnx_sources(bundle: Bundle) -> dict:
    """``bundle.meta["qonnx"]``; a bundle not written by ``cimstack import`` is a ConfigError."""
    sources = bundle.meta.get("qonnx")
    if not isinstance(sources, dict) or not isinstance(sources.get("layers"), dict):
        raise ConfigError(f"bundle {bundle.name} was not imported from a QONNX model (its "
                          "bundle.json has no meta.qonnx); --against needs a bundle written "
                          "by `cimstack import MODEL.onnx`")
    return sources


def _codes(ctx: dict, tensor: str, fmt: TensorFormat, path: str | Path) -> np.ndarray:
    """Integer codes of qonnx's dequantized ``tensor`` in format ``fmt`` (multiples of
    its scale; a bipolar tensor's -1/+1 become codes 0/1)."""
    value = ctx[tensor].astype(np.float64) / fmt.scale
    codes = np.round(value)
    if codes.size and np.abs(value - codes).max() > 1e-3:
        raise ConfigError(f"{Path(path).name}: tensor {tensor!r} holds values that are not "
                          f"multiples of the bundle's scale {fmt.scale:.6g}: the model is "
                          "not the one the bundle was imported from")
    codes = codes.astype(np.int64)
    return (codes + 1) // 2 if fmt.bipolar else codes


def _as_vectors(t: np.ndarray) -> np.ndarray:
    """[B, N, H, W] -> [B*H*W, N] (lower_conv's order); [B, N] unchanged."""
    return t.transpose(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.ndim == 4 else t


def run_qonnx(bundle: Bundle, path: str | Path, images: np.ndarray) -> dict:
    """Every tensor of qonnx's executor on ``images``, by name; the tensors that
    ``meta["qonnx"]`` names must exist (else the model is not the bundle's)."""
    from qonnx.core.onnx_exec import execute_onnx

    sources = qonnx_sources(bundle)
    model = load_qonnx(path, batch=len(images))
    graph = model.graph
    names = {t.name for t in (*graph.value_info, *graph.input, *graph.output)}
    wanted = [sources["output"], sources.get("input_codes")]
    for src in sources["layers"].values():
        wanted += [t for t in src.get("inputs", []) if isinstance(t, str)]
        wanted += [src["value"]] if isinstance(src.get("value"), str) else []
    missing = [t for t in wanted if t not in names]
    shape = tuple(model.get_tensor_shape(graph.input[0].name)[1:])
    if missing or shape != tuple(bundle.input.shape):
        why = (f"takes inputs of shape {shape}, the bundle {tuple(bundle.input.shape)}"
               if shape != tuple(bundle.input.shape) else f"has no tensor {missing[0]!r}")
        raise ConfigError(f"{Path(path).name} {why}: it is not the model bundle "
                          f"{bundle.name} was imported from ({bundle.meta.get('model')})")
    return execute_onnx(model, {graph.input[0].name: np.asarray(images, np.float32)},
                        return_full_exec_context=True)


def _macro_check(layer: MacroLayer, bundle: Bundle, codes: np.ndarray, offset: int,
                 value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference codes, qonnx's value in steps, error bound) of a macro layer fed
    qonnx's input ``codes``, as [vectors, N]."""
    u = codes + offset
    x_mat = lower_conv(u, layer, offset) if layer.op == "conv2d" else u.reshape(len(u), -1)
    ref = reference_engine(layer, x_mat, bundle)
    rq = layer.requant
    abs_acc = np.abs(x_mat) @ np.abs(layer.matrix().astype(np.int64))
    magnitude = (abs_acc * np.abs(rq.multiplier) + np.abs(rq.bias)) / 2.0**rq.shift
    bound = (float32_bound(4 * (layer.k + 16)) * magnitude
             + (abs_acc + 1) / 2.0 ** (rq.shift + 1))
    return ref, _as_vectors(value), bound


def compare_with_qonnx(bundle: Bundle, path: str | Path,
                       images: np.ndarray) -> tuple[list[LayerAgainst], np.ndarray]:
    """Per layer that makes new codes (macro layers, average pools, residual adds; after
    an ``input`` entry: the input codes, exact) the :class:`LayerAgainst` of the bundle
    fed qonnx's own input codes against qonnx's values, and qonnx's logits
    ``[B, classes]``."""
    ctx = run_qonnx(bundle, path, images)
    meta = qonnx_sources(bundle)
    sources, formats = meta["layers"], bundle.formats()
    # the input codes in the model's domain (after its own preprocessing, InputSpec.offset)
    formats[INPUT] = replace(formats[INPUT], scale=meta.get("input_codes_scale",
                                                            bundle.input.scale))
    x_ref = quantize_input(bundle, images).reshape(len(images), -1).astype(np.int64)
    x_qonnx = _codes(ctx, meta["input_codes"], formats[INPUT], path)
    lo, hi = formats[INPUT].codes
    out = [LayerAgainst("input", meta["input_codes"], check_codes(
        "input", x_ref, x_qonnx.reshape(len(images), -1).astype(np.float64),
        np.zeros(x_ref.shape), lo, hi, source="qonnx"))]
    for layer in bundle.layers:
        rq = getattr(layer, "requant", None)
        if rq is None:
            continue
        src = sources[layer.name]
        xs = [_codes(ctx, t, formats[name], path).reshape(len(images), *layer.in_shape)
              for t, name in zip(src["inputs"], layer.inputs)]
        value = ctx[src["value"]].astype(np.float64) / src["output_scale"]
        value = value.reshape(len(images), *layer.out_shape)
        if isinstance(layer, MacroLayer):
            ref, value, bound = _macro_check(layer, bundle, xs[0], formats[layer.inputs[0]].offset,
                                             value)
        else:
            ref = run_layer(layer, xs, bundle, reference_engine).astype(np.int64)
            window = math.prod(getattr(layer, "kernel", (1, 1)))
            acc_max = window * sum(int(np.abs(x).max(initial=0)) for x in xs)
            bound = (float32_bound(4 * (window + 16)) * np.abs(value)
                     + (acc_max + 1) / 2.0 ** (rq.shift + 1))
        if formats[layer.name].bipolar:          # qonnx's sign: y >= 0 is +1 (code 1)
            near = np.abs(value) <= bound
            value, bound = (value >= 0).astype(np.float64), np.where(near, 1.0, 0.0)
        out.append(LayerAgainst(layer.name, src["nodes"][0],
                                check_codes(layer.name, ref, value, bound, rq.lo, rq.hi,
                                            source="qonnx")))
    logits = np.asarray(ctx[meta["output"]]).reshape(len(images), -1)
    return out, logits


def check_against(bundle: Bundle, path: str | Path, images: np.ndarray,
                  min_identical: float = MIN_IDENTICAL,
                  min_agreement: float = MIN_AGREEMENT) -> AgainstReport:
    """The bundle against the QONNX model at ``path`` on ``images`` (real values in the
    range of the bundle's input quantizer): every macro layer, and the predictions of
    the whole bundle (the reference) against qonnx's."""
    layers, logits = compare_with_qonnx(bundle, path, images)
    ours = run_network(bundle, quantize_input(bundle, images)).predictions
    return AgainstReport(bundle.name, Path(path).name, int(len(images)), layers,
                         float(np.mean(ours == logits.argmax(1))), min_identical,
                         min_agreement)
