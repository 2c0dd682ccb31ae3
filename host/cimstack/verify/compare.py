"""Compare a backend with the reference, every layer, bit for bit.

Both runs go through the same network executor; the backend's run gets each layer's
input from the backend itself, so a mismatch shows where it first appears and how it
propagates. The report lists per layer the number of mismatching elements and the
first mismatching indices, and the accuracy of both runs when labels are given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..bundle import Bundle
from ..errors import OutputError
from ..ref.network import Engine, NetworkResult, reference_engine, run_network
from ..fileio import check_output_folder, claim_folder, write_json_atomic, write_text_atomic

FIRST = 5          # how many mismatching indices a layer report lists


@dataclass
class LayerReport:
    name: str
    shape: list
    elements: int
    mismatches: int
    first_mismatches: list = field(default_factory=list)   # [index tuple, ref, backend]

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


@dataclass
class VerifyReport:
    bundle: str
    backend: str
    images: int
    layers: list
    accuracy_reference: Optional[float] = None
    accuracy_backend: Optional[float] = None
    prediction_agreement: float = 1.0
    stages: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(layer.ok for layer in self.layers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def summary(self) -> str:
        lines = [f"verify {self.bundle} on {self.backend}: {self.images} images, "
                 f"{'BIT-EXACT' if self.ok else 'MISMATCH'}"]
        for layer in self.layers:
            lines.append(f"  {layer.name:<10} {layer.mismatches:>8} / {layer.elements:<9} "
                         "mismatching" + ("" if layer.ok else
                                          f"; first at {layer.first_mismatches[0][0]}"))
        if self.accuracy_reference is not None:
            lines.append(f"  accuracy reference {self.accuracy_reference:.4f}, "
                         f"{self.backend} {self.accuracy_backend:.4f}")
        lines.append(f"  prediction agreement {self.prediction_agreement:.4f}")
        return "\n".join(lines)

    def write(self, folder: str | Path, force: bool = False) -> Path:
        """Write verify.json and verify.txt into ``folder`` (atomically)."""
        return write_verify_files(folder, self.to_dict(), self.summary(), force)


def check_report_folder(folder: str | Path, force: bool = False) -> Path:
    """``folder`` can hold verify.json and verify.txt: it does not exist yet, or is a
    folder cimstack wrote (or empty, or ``force``). Checked before a verification
    starts, so no work is lost."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--report {folder} is a file; verify writes verify.json and "
                          "verify.txt into a folder: give a folder name")
    return check_output_folder(folder, force, replace=False)


def write_verify_files(folder: str | Path, doc: dict, summary: str,
                       force: bool = False) -> Path:
    """verify.json (``doc``) and verify.txt (``summary``) into the report ``folder``,
    each atomically; the folder is marked as cimstack's."""
    folder = claim_folder(folder, force, kind="verification")
    write_json_atomic(folder / "verify.json", doc)
    write_text_atomic(folder / "verify.txt", summary + "\n")
    return folder


def compare_layer(name: str, ref: np.ndarray, got: np.ndarray) -> LayerReport:
    """Element-wise comparison of one layer's outputs."""
    if ref.shape != got.shape:
        return LayerReport(name, list(ref.shape), int(ref.size), int(ref.size),
                           [[f"shape {got.shape} != {ref.shape}", None, None]])
    bad = np.argwhere(ref != got)
    first = [[list(map(int, idx)), int(ref[tuple(idx)]), int(got[tuple(idx)])]
             for idx in bad[:FIRST]]
    return LayerReport(name, list(ref.shape), int(ref.size), int(len(bad)), first)


def verify(bundle: Bundle, x_int: np.ndarray, engine: Engine, backend: str,
           labels: Optional[np.ndarray] = None, stages: Optional[dict] = None,
           reference: Optional[NetworkResult] = None) -> VerifyReport:
    """Run ``bundle`` on ``engine`` and on the reference; compare every layer."""
    ref = reference or run_network(bundle, x_int, reference_engine, keep_activations=True)
    got = run_network(bundle, x_int, engine, keep_activations=True)
    layers = [compare_layer(layer.name, ref.activations[layer.name],
                            got.activations[layer.name]) for layer in bundle.layers]
    report = VerifyReport(bundle=bundle.name, backend=backend, images=int(len(x_int)),
                          layers=layers,
                          prediction_agreement=float((ref.predictions == got.predictions).mean()),
                          stages=stages() if callable(stages) else (stages or {}))
    if labels is not None:
        report.accuracy_reference = float((ref.predictions == labels).mean())
        report.accuracy_backend = float((got.predictions == labels).mean())
    return report
