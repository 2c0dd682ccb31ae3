"""A training checkpoint's quantized digits model as a QONNX file
(``cimstack export-qonnx``), for FINN, hls4ml and ``cimstack import``.

The file is written by :func:`cimstack.importer.brevitas_export.export_qonnx_file`
(Brevitas ``export_qonnx``). The one change to the trained model: its input quantizer
:class:`~cimstack.quant.model.InputQuant` (a plain torch module, which would export as
Div/Round/Clip/Mul) becomes a Brevitas ``QuantIdentity`` with the same bits and the same
fixed power-of-two scale, so the file starts with a ``Quant`` node; it computes the same
values, bit for bit.

Binary layers (``w_bits = 1``) are refused: Brevitas exports them as ``BipolarQuant``,
which maps a pruned (zero) weight to +1, so the file would not compute what the
bundle computes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..fileio import atomic_file, check_output_file
from ..importer.brevitas_export import export_qonnx_file
from .checkpoint import load_checkpoint
from .model import QuantDigitsNet


def brevitas_input_quant(bits: int, scale: float) -> nn.Module:
    """A Brevitas ``QuantIdentity``: unsigned ``bits``, constant per-tensor ``scale``,
    round half to even (``InputQuant``'s quantization, exported as a QONNX ``Quant``)."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Uint8ActPerTensorFloat
    # Brevitas divides the constant (the largest value) by 2^bits - 1; for a power-of-two
    # scale both steps are exact in float32, so the scale is exactly ``scale``
    top = scale * ((1 << bits) - 1)
    return QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=bits,
                         scaling_impl_type=ScalingImplType.CONST, scaling_const=top,
                         max_val=top, return_quant_tensor=True)


class QonnxDigitsNet(nn.Module):
    """The layers of a :class:`QuantDigitsNet` (shared, not copied) behind a Brevitas
    input quantizer; the same forward pass, exportable to QONNX."""

    def __init__(self, model: QuantDigitsNet):
        super().__init__()
        self.inp = brevitas_input_quant(model.inp.bits, model.inp.scale)
        self.net = model

    def forward(self, x):
        net = self.net
        x = net.pool(net.act1(net.conv1(self.inp(x))))
        x = net.pool(net.act2(net.conv2(x)))
        return net.fc(torch.flatten(x, 1))


def export_model_qonnx(model: QuantDigitsNet, out: str | os.PathLike) -> Path:
    """Write ``model`` as a QONNX file at ``out`` atomically (a folder is refused)."""
    binary = [name for name, bits in zip(("conv1", "conv2", "fc"), model.cfg.w_bits)
              if bits == 1]
    if binary:
        raise ConfigError(f"layer {', '.join(binary)} has binary weights (w_bits = 1), which "
                          "QONNX export does not support yet (BipolarQuant has no zero for "
                          "pruned weights); train with --w-bits 2 or more")
    module = QonnxDigitsNet(model).eval()
    with atomic_file(out) as tmp:
        export_qonnx_file(module, torch.zeros(1, 1, 8, 8), tmp)
    return Path(out)


def export_checkpoint_qonnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``cimstack export-qonnx``: the quantized model of ``checkpoint`` (written by
    ``cimstack train --checkpoint``) as a QONNX file at ``out``. ``out`` is checked
    before the checkpoint is read."""
    check_output_file(out)
    return export_model_qonnx(load_checkpoint(checkpoint).model, out)
