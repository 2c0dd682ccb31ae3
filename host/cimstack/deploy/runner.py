"""Board-side runner: load a bundle, run it on the overlay, write the outputs.

Runs on the board's own Python (PYNQ image: pynq 3.x, numpy, no torch) from the
deployed runtime:

    PYTHONPATH=<root>/runtime/host CIMSTACK_HOME=<root>/runtime \\
        python3 -m cimstack.deploy.runner --bundle <root>/bundles/<name> \\
        --input <run>/input.npy --overlay <root>/overlay/cimstack.bit --out <run>/out

``--backend board`` (default) loads the bitstream through pynq; ``--backend emu`` runs
the same driver on the emulated overlay built from the deployed .hwh (what the tests
use on a local "board"); ``reference`` runs the NumPy model. The output folder holds
``<layer>.npy`` for every layer (the smallest integer dtype that holds the values,
lossless), ``logits.npy`` and ``run.json`` (backend, images, seconds, stage times,
versions); it is written under a temporary name and renamed into place, then packed
as ``<out>.tar.gz`` for the trip back. The last line printed is
``CIMSTACK-RUN-OK <out>``; failures exit with status 2 and one line naming the problem.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

from ..fileio import atomic_file, atomic_folder

OK_LINE = "CIMSTACK-RUN-OK"


def smallest_int(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest integer dtype that holds its values (lossless)."""
    if a.size == 0 or not np.issubdtype(a.dtype, np.integer):
        return a
    lo, hi = int(a.min()), int(a.max())
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return a.astype(dt)
    return a


def open_engine(backend: str, overlay: str | None, board: str, timeout_s: float):
    """(engine, stage_times callable, backend name) for the requested backend."""
    from ..backends import open_backend
    if backend == "emu" and overlay:
        from .. import emu
        from ..hw.overlay import CimOverlay
        emu.device(board)                         # the deployed .hwh drives the emulation
        ol = CimOverlay(overlay, board=board)
        runner = ol.runner(timeout_s=timeout_s)
        return runner.engine, runner.times.to_dict, "emu"
    b = open_backend(backend, bitfile=Path(overlay) if overlay else None, timeout_s=timeout_s)
    return b.engine, b.stage_times, b.name


def run(bundle_dir: str, input_path: str, out: str, backend: str = "board",
        overlay: str | None = None, board: str = "pynq-z2", timeout_s: float = 10.0) -> Path:
    from ..bundle import load_bundle
    from ..ref.network import run_network

    bundle = load_bundle(bundle_dir)
    x = np.load(input_path, allow_pickle=False)
    engine, stage_times, name = open_engine(backend, overlay, board, timeout_s)
    t0 = time.perf_counter()
    res = run_network(bundle, x, engine=engine, keep_activations=True)
    seconds = time.perf_counter() - t0
    out = Path(out)
    with atomic_folder(out, kind="board run") as tmp:
        _write_outputs(tmp, bundle, res, name, len(x), seconds, stage_times())
    arc = out.with_name(out.name + ".tar.gz")
    with atomic_file(arc) as arc_tmp:
        with tarfile.open(arc_tmp, "w:gz") as tar:
            for p in sorted(out.iterdir()):
                tar.add(p, arcname=f"out/{p.name}")
    return out


def _write_outputs(folder: Path, bundle, res, backend: str, images: int, seconds: float,
                   stages: dict) -> None:
    """Every layer's activations, the logits and run.json into ``folder``."""
    for layer in bundle.layers:
        np.save(folder / f"{layer.name}.npy",
                smallest_int(np.asarray(res.activations[layer.name])))
    np.save(folder / "logits.npy", smallest_int(np.asarray(res.logits)))
    try:
        import pynq
        pynq_version = getattr(pynq, "__version__", "?")
    except Exception:
        pynq_version = None
    info = {"bundle": bundle.name, "backend": backend, "images": int(images),
            "seconds": seconds, "images_per_s": images / seconds if seconds else None,
            "stages": stages, "layers": [layer.name for layer in bundle.layers],
            "cycles_per_image": int(res.cycles_per_image),
            "host": platform.node(), "machine": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__,
            "pynq": pynq_version, "torch_imported": "torch" in sys.modules}
    (folder / "run.json").write_text(json.dumps(info, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cimstack.deploy.runner",
                                 description="Run a bundle on the board's overlay.")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--input", required=True, help=".npy of quantized integer inputs")
    ap.add_argument("--out", required=True, help="output folder (replaced atomically)")
    ap.add_argument("--overlay", default=None, help="<name>.bit with <name>.hwh beside it")
    ap.add_argument("--backend", default="board", choices=("board", "emu", "reference", "auto"))
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--timeout", type=float, default=10.0, help="DMA/kernel wait limit (s)")
    args = ap.parse_args(argv)
    try:
        out = run(args.bundle, args.input, args.out, args.backend, args.overlay, args.board,
                  args.timeout)
    except Exception as exc:  # one clear line for the host to show
        print(f"CIMSTACK-RUN-FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"{OK_LINE} {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
