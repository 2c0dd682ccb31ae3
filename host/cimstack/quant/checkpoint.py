"""Training checkpoints: the trained Brevitas model and its settings, so that
``cimstack export`` can produce bundles (for other macro settings) without retraining."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..bundle import Bundle
from ..config import DcimSpec
from ..errors import BundleError
from ..fileio import atomic_file
from .export import export_bundle
from .model import FloatDigitsNet, QuantConfig, QuantDigitsNet

FORMAT = "cimstack-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """A trained quantized model with what its export needs."""

    model: QuantDigitsNet
    name: str
    rows_on: int
    meta: dict

    def export(self, dcim: DcimSpec | None = None) -> Bundle:
        return export_bundle(self.model, name=self.name, dcim=dcim, rows_on=self.rows_on,
                             meta=self.meta)


def save_checkpoint(result, path: str | os.PathLike) -> Path:
    """Write a :class:`~cimstack.quant.train.TrainResult`'s model atomically."""
    path = Path(path)
    doc = {"format": FORMAT, "version": VERSION, "name": result.default_name(),
           "cfg": {"w_bits": list(result.cfg.w_bits), "a_bits": list(result.cfg.a_bits),
                   "in_bits": result.cfg.in_bits},
           "rows_on": result.rows_on, "meta": result.meta(),
           "state": result.quant_model.state_dict()}
    with atomic_file(path) as tmp:
        torch.save(doc, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Rebuild the quantized model of a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no checkpoint at {path}: write one with "
                          "`cimstack train --checkpoint PATH`")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path} is not a readable cimstack checkpoint: {first}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{path} is not a cimstack checkpoint")
    if doc.get("version") != VERSION:
        raise BundleError(f"{path}: checkpoint version {doc.get('version')!r} is not "
                          f"supported (this cimstack reads {VERSION}); retrain")
    cfg = QuantConfig.make(doc["cfg"]["w_bits"], doc["cfg"]["a_bits"], doc["cfg"]["in_bits"])
    model = QuantDigitsNet.from_float(FloatDigitsNet(), cfg)
    model.load_state_dict(doc["state"])
    model.eval()
    return Checkpoint(model, doc["name"], int(doc["rows_on"]), doc["meta"])
