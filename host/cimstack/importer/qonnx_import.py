"""QONNX model -> integer :class:`~cimstack.bundle.Bundle` graph (no torch, no Brevitas).

The model is read with ``qonnx``'s ``ModelWrapper`` and cleaned up with
``qonnx.util.cleanup.cleanup_model`` (shape inference, constant folding that keeps the
``Quant`` nodes, unique node and readable tensor names). The walk then visits the nodes
in their topological order and tracks what every ONNX tensor holds:

- integer *codes* (after the input ``Quant`` or an activation ``Quant`` /
  ``BipolarQuant``), each with its :class:`~cimstack.bundle.TensorFormat`;
- *pending* real values ``acc*m[n] + c[n]`` of an integer ``acc`` that a bundle node
  computes (a Conv/Gemm/MatMul's dot product, an average pool's window sum, a residual
  add of two code tensors), into which constant Add/Sub/Mul/Div, BatchNormalization
  and TensorNorm's scalings fold, until an activation ``Quant`` turns them into codes:
  there the node's integer requantizer is made (:func:`cimstack.ref.requant.
  make_requant` of ``m / s_o`` and ``c / s_o``, the Brevitas exporter's rule); at the
  graph's output it is wide (int32 codes, scale :func:`cimstack.ref.requant.logit_scale`,
  kept in ``meta["output_scale"]``).

Max pooling, concatenation and flattening act on codes. The macros take unsigned bits:
a macro layer reading signed or bipolar codes gets the offset folded exactly into its
requantizer (:func:`.integers.fold_offset`); a bipolar ``Quant`` becomes exact integer
thresholds (:func:`.integers.sign_requant`). The walk is :mod:`.walk`, node names and
errors :mod:`.nodes`. docs/models.md has the op table, docs/macros.md the integer
semantics.

Anything else stops the import with one :class:`ConfigError` naming the node (by its
name in the file: the cleanup renames nodes, bundle layers take the new names), its op
type and the supported set. ``meta["qonnx"]`` records, per bundle layer, the ONNX nodes
it came from and the tensors that hold its inputs and its real output values.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import INPUT, Bundle, MacroLayer
from ..config import AcimSpec, DcimSpec
from ..errors import BundleError, ConfigError
from .nodes import FILE_NAME, SUPPORTED, SUPPORTED_OPS, label, model_file, plain_name
from .walk import Coded, GraphWalk, Pending

IMPORT_MACROS = ("dcim", "acim")


def load_qonnx(path: str | Path, batch: int | None = None):
    """The cleaned-up ``ModelWrapper`` of the QONNX file ``path`` (with its batch size
    changed to ``batch`` when given); a missing or non-ONNX file is a ConfigError."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = model_file(path, "a QONNX model (.onnx), e.g. written by "
                            "brevitas.export.export_qonnx")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:               # protobuf's DecodeError and friends
        raise ConfigError(f"{path} is not an ONNX model ({type(exc).__name__}); export one "
                          "with brevitas.export.export_qonnx") from None
    if not proto.graph.node:
        raise ConfigError(f"{path} is not an ONNX model: its graph has no nodes; export "
                          "one with brevitas.export.export_qonnx")
    for node in proto.graph.node:
        if node.name:
            tag = node.metadata_props.add()
            tag.key, tag.value = FILE_NAME, node.name
    try:
        model = cleanup_model(ModelWrapper(proto), override_inpsize=batch)
    except Exception as exc:               # qonnx's shape inference on a broken graph
        raise ConfigError(f"{path}: qonnx could not clean up the model (shape inference, "
                          f"constant folding): {type(exc).__name__}: {exc}") from None
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ConfigError(f"{path}: the model has {len(graph.input)} inputs and "
                          f"{len(graph.output)} outputs; the import takes one of each")
    return model


def check_macro(macro: str) -> None:
    """The macro family the import can map layers onto."""
    if macro not in IMPORT_MACROS:
        raise ConfigError(f"--macro {macro}: the QONNX import maps layers onto "
                          f"{' or '.join(IMPORT_MACROS)}")


def import_qonnx(path: str | Path, macro: str = "dcim", dcim: DcimSpec | None = None,
                 name: str | None = None, acim: AcimSpec | None = None) -> Bundle:
    """Build (and validate) the bundle of the QONNX model at ``path`` (see the module
    doc); ``name`` defaults to the file's stem. ``macro="acim"`` puts the macro layers
    on the analog macro ``acim`` (default ``AcimSpec()``; :mod:`.analog_map`)."""
    check_macro(macro)
    model = load_qonnx(path)
    graph = model.graph
    acim = (acim or AcimSpec()) if macro == "acim" else None
    walk = GraphWalk(model, acim)
    for node in graph.node:
        handler = getattr(walk, f"op_{node.op_type}", None) \
            if node.op_type in SUPPORTED_OPS else None
        if handler is None:
            raise ConfigError(f"node {label(node)}: op type {node.op_type} is not supported; "
                              f"supported: {SUPPORTED}")
        handler(node)
    if walk.input is None:
        raise ConfigError(f"{path}: the model has no input Quant node; quantize the input "
                          "with a Quant (Brevitas QuantIdentity)")
    output = graph.output[0].name
    final = walk.states.get(output)
    if isinstance(final, Pending):
        final = walk.finish(final, None, None)
        walk.sources[final.node]["value"] = output
    if not isinstance(final, Coded) or final.node == INPUT:
        raise ConfigError(f"{path}: the graph's output {output!r} is not computed by a "
                          f"layer the import supports; supported: {SUPPORTED}")
    if walk.output_scale is None:
        walk.output_scale = final.fmt.scale
    if not any(isinstance(layer, MacroLayer) for layer in walk.layers):
        raise ConfigError(f"{path}: the model has no Conv, Gemm or MatMul layer")
    if walk.layers[-1].name != final.node:
        raise ConfigError(f"{path}: layer {walk.layers[-1].name} comes after the output's "
                          f"layer {final.node} but does not feed it; supported: {SUPPORTED}")
    bundle = Bundle(name=plain_name(name or Path(path).stem), input=walk.input,
                    layers=walk.layers, dcim=dcim or DcimSpec(), tensors=walk.tensors,
                    acim=acim,
                    meta={"source": "qonnx", "model": Path(path).name,
                          "output_scale": walk.output_scale,
                          "input_scale": walk.input.scale,
                          "qonnx": {"input": graph.input[0].name,
                                    "input_codes": walk.input_codes,
                                    "input_codes_scale": walk.states[walk.input_codes].fmt.scale,
                                    "output": output,
                                    "layers": walk.sources}})
    try:
        bundle.validate()
    except (BundleError, ConfigError) as exc:
        raise ConfigError(f"{path}: the imported model is not a valid bundle: {exc}") from None
    return bundle
