"""ONNX nodes as the QONNX import names them: the supported set, a node's name in the
model file (qonnx's cleanup renames nodes) and the one-line error about a node."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError

SUPPORTED_OPS = ("Quant", "BipolarQuant", "Trunc", "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul",
                 "Div", "BatchNormalization", "Relu", "MaxPool", "AveragePool",
                 "GlobalAveragePool", "ReduceMean", "Concat", "Reshape", "Flatten",
                 "Identity")
SUPPORTED = ("Quant (activations unsigned or signed 1..8 bits, one scale; weights signed "
             "2..8 bits), BipolarQuant, zero point 0; Trunc after AveragePool; Conv (2-D, "
             "groups, dilation, equal strides, symmetric padding), Gemm, MatMul; "
             "Add/Sub/Mul/Div of constants and "
             "BatchNormalization, folded; residual Add of two quantized tensors; Relu; "
             "MaxPool; AveragePool, GlobalAveragePool, ReduceMean over H and W; Concat of "
             "channels; Reshape/Flatten to (C*H*W,) (docs/models.md)")
PLAIN = re.compile(r"[^A-Za-z0-9_.-]")
FILE_NAME = "cimstack.file_name"     # node metadata: the node's name in the model file


def label(node) -> str:
    """The node's name in the model file (qonnx's cleanup renames nodes), quoted."""
    names = [p.value for p in node.metadata_props if p.key == FILE_NAME]
    return repr(names[0] if names else node.name)


def node_error(node, why: str) -> ConfigError:
    """The one-line error about ``node``: its name, op type, the problem, the supported
    set."""
    return ConfigError(f"node {label(node)} ({node.op_type}): {why}; supported: {SUPPORTED}")


def label_of(model, name: str) -> str:
    """:func:`label` of the node called ``name``."""
    for node in model.graph.node:
        if node.name == name:
            return label(node)
    return repr(name)


def plain_name(name: str) -> str:
    """An ONNX node name as a bundle layer name (letters, digits, ``_ . -``)."""
    return (PLAIN.sub("_", name).lstrip(".-") or "layer")[:64]


def model_file(path, what: str) -> Path:
    """``path`` as a Path; a :class:`ConfigError` naming ``what`` to give (a sentence
    tail, e.g. "a QONNX model (.onnx), ...") when it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"{path} {problem}; give {what}")
    return path
