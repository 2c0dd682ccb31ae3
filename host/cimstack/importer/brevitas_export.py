"""A Brevitas module -> QONNX (``brevitas.export.export_qonnx``) -> bundle.

This is the only part of :mod:`cimstack.importer` that needs torch and Brevitas; the
import itself is :func:`cimstack.importer.qonnx_import.import_qonnx`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..bundle import Bundle, save_bundle
from ..config import AcimSpec, DcimSpec
from .qonnx_import import import_qonnx


def export_qonnx_file(module, example_input, path: str | Path) -> Path:
    """Write ``module`` (in eval mode; its training flag is restored) as a QONNX file,
    traced on ``example_input`` with torch's TorchScript ONNX exporter (the default
    dynamo exporter takes seconds more for the same graph)."""
    from brevitas.export import export_qonnx
    was_training = module.training
    module.eval()
    try:
        export_qonnx(module, example_input, export_path=str(path), dynamo=False)
    finally:
        module.train(was_training)
    return Path(path)


def compile(module, example_input, macro: str = "dcim", out: str | Path | None = None,
            name: str = "model", dcim: DcimSpec | None = None, force: bool = False,
            acim: AcimSpec | None = None) -> Bundle:
    """The bundle of a Brevitas ``module``: exported to QONNX in a temporary folder and
    imported (docs/models.md lists what it may hold) onto ``macro`` (dcim, or acim with
    the analog macro ``acim``); written to ``out`` when given (a folder cimstack did not
    write is replaced only with ``force``)."""
    with tempfile.TemporaryDirectory(prefix="cimstack-qonnx-") as tmp:
        bundle = import_qonnx(export_qonnx_file(module, example_input, Path(tmp) / "model.onnx"),
                              macro=macro, dcim=dcim, name=name, acim=acim)
    if out is not None:
        save_bundle(bundle, out, force)
    return bundle
