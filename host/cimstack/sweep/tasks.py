"""The sweep's two tasks: plain top-level functions of picklable arguments, so that a
local process pool and a Dask cluster run them alike.

- :func:`train_model` trains one model (torch, one thread, deterministic algorithms,
  seeded) and returns it exported: a :class:`~cimstack.bundle.Bundle` (dcim, acim) or
  an :class:`~cimstack.ref.snn.SnnNet` (snn; flexspim: FlexSpIM's network, built from
  its seed, not trained) -- integer arrays and JSON-able fields, no torch objects.
- :func:`evaluate_point` runs one design point on that exported model: accuracy from
  the integer reference on the test split, cost from :mod:`cimstack.cost` (flexspim: the
  dataflow model on random events, no accuracy). It needs neither torch nor any file of
  the machine that trained the model.

Trainings in one process are serialized (torch's seed and thread count are global), so
a Dask worker with several threads still gives the same models as the local pool.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..families import get_family
from .points import DcimPoint, point_type

_TRAIN_LOCK = threading.Lock()


def train_model(model: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    """Train the model of ``model`` (a point's model knobs, with ``macro``) on the
    macro's ``schedule``; returns ``{"model": exported model, "seconds": s}``."""
    t0 = time.perf_counter()
    trainer = trainer_of(model["macro"])
    if trainer is _build_flexspim:          # built from its seed with NumPy: no torch
        exported = trainer(model, schedule)
    else:
        from ..quant.train import _torch_env
        with _TRAIN_LOCK, _torch_env(1):
            exported = trainer(model, schedule)
    return {"model": exported, "seconds": time.perf_counter() - t0}


def train_dcim(m: dict, s: dict):
    """The dcim family's trainer hook: QAT digits CNN, optional block pruning."""
    from ..quant.train import train_digits
    rows_on = m.get("rows_on", DcimPoint().rows_on)
    res = train_digits(w_bits=m["w_bits"], a_bits=m["x_bits"], block_sparsity=m["sparsity"],
                       rows_on=rows_on, epochs=s["epochs"], seed=m["seed"], threads=1)
    return res.export()


def train_acim(m: dict, s: dict):
    """The acim family's trainer hook: digits CNN with the ADC in the training loop."""
    from ..config import AcimSpec
    from ..quant.analog import train_analog_digits
    res = train_analog_digits(AcimSpec(adc_bits=m["adc_bits"], seed=m["seed"]),
                              m["train_sigma"], w_bits=m["w_bits"], epochs=s["epochs"],
                              float_epochs=s["float_epochs"], seed=m["seed"], threads=1)
    return res.export()


def _train_snn(m: dict, s: dict):
    from ..quant.snn import train_snn
    res = train_snn(n_steps=s["steps"], epochs=s["epochs"], w_bits=m["w_bits"], v_bits=16,
                    seed=m["seed"], limit_train=s["train_samples"],
                    limit_test=s["test_samples"])
    return res.net


def _build_flexspim(m: dict, s: dict):
    from ..models.flexspim import flexspim_net
    return flexspim_net(m["downsample"], seed=m["seed"])


def trainer_of(macro: str):
    """The trainer of ``macro``: the spiking networks' (FlexSpIM's network is built from
    its seed, not trained), or its macro family's hook; a :class:`ConfigError` for a
    family without one."""
    if macro == "snn":                  # a spiking network, not a family of bundle layers
        return _train_snn
    if macro == "flexspim":
        return _build_flexspim
    family = get_family(macro)
    if family.trainer is None:
        raise ConfigError(f"macro family {macro} has no trainer hook, so the sweep cannot "
                          "train its models; give its MacroFamily a trainer, or keep its "
                          "points to the models already in the sweep's models/ folder")
    return family.trainer


# --------------------------------------------------------------------------- evaluate

@functools.lru_cache(maxsize=1)
def _digits_test() -> tuple[np.ndarray, np.ndarray]:
    from ..quant.data import load_digits_split
    split = load_digits_split()
    return split.x_test, split.y_test


@functools.lru_cache(maxsize=4)
def _event_test(steps: int, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from ..events.datasets import load_event_data
    data = load_event_data(None, "test", limit, seed)
    return data.frames(steps), data.labels


def point_bundle(bundle, params: dict[str, Any]):
    """The trained bundle under a point's evaluation knobs (the point class of the
    point's macro family sets them, :meth:`~cimstack.sweep.points.Point.apply`)."""
    cls = point_type(params["macro"])
    return cls(**{k: v for k, v in params.items() if k != "macro"}).apply(bundle)


def evaluate_point(params: dict[str, Any], model, schedule: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and cost of one design point on its trained ``model``; returns
    ``{"metrics": {...}, "layers": [per-layer cost rows], "seconds": s}``."""
    t0 = time.perf_counter()
    if params["macro"] == "snn":
        metrics, layers = _evaluate_snn(params, model, schedule)
    elif params["macro"] == "flexspim":
        metrics, layers = _evaluate_flexspim(params, model)
    else:
        metrics, layers = _evaluate_bundle(point_bundle(model, params))
    return {"metrics": metrics, "layers": layers, "seconds": time.perf_counter() - t0}


def _evaluate_bundle(bundle) -> tuple[dict, list]:
    from ..cost import fpga_cost, network_cost
    from ..cost.fpga import without_kernel
    from ..ref.network import integer_accuracy
    x, y = _digits_test()
    cost = network_cost(bundle)
    fpga = (fpga_cost(bundle) if not without_kernel(bundle)   # else no FPGA estimate
            else {"images_per_s": None, "dma_bound_images_per_s": None})
    t = cost.totals
    metrics = {"accuracy": integer_accuracy(bundle, x, y), "energy_pj": t["energy_pj"],
               "latency_s": t["latency_s"], "tops_per_w": t["tops_per_w"], "ops": t["ops"],
               "cycles": t["cycles"], "fpga_images_per_s": fpga["images_per_s"],
               "dma_bound_images_per_s": fpga["dma_bound_images_per_s"]}
    return metrics, [dict(row) for row in cost.layers]


def _evaluate_snn(params: dict, net16, schedule: dict) -> tuple[dict, list]:
    from ..cost import snn_cost
    from ..cost.network import per_pj
    from ..quant.snn_export import narrow_membranes
    from ..ref.snn import run_snn
    net = narrow_membranes(net16, params["v_bits"]) if params["v_bits"] != 16 else net16
    frames, labels = _event_test(schedule["steps"], schedule["test_samples"], params["seed"])
    res = run_snn(net, frames)
    n = len(frames)
    cost = snn_cost(net, res, n, params["dataflow"])
    t = cost["totals"]
    metrics = {"accuracy": float(np.mean(res.predictions == labels)),
               "energy_pj": t["energy_pj_per_sample"], "latency_s": t["latency_s"],
               "tops_per_w": per_pj(t["sops"], t["energy_pj"]),
               "ops": t["sops"] / n, "cycles": t["cycles"] / n,
               "traffic_bits": t["traffic_bits"] / n, "traffic_vs_ws": t["traffic_vs_ws"]}
    return metrics, [dict(row) for row in cost["layers"]]


def _evaluate_flexspim(params: dict, net) -> tuple[dict, list]:
    """The point's row of :func:`~cimstack.cost.snn.policy_rows` (the model of
    ``policy_study``), per sample; per layer its dataflow, place and DRAM bits; and the
    snn kernel's samples/s on the PYNQ-Z2 overlay for the same run
    (:func:`~cimstack.cost.fpga.snn_fpga_cost`; None when a layer cannot run there, e.g.
    an input wider than the kernel's ``MAX_IN``)."""
    from ..cost.fpga import snn_fpga_cost
    from ..cost.snn import event_run, policy_rows
    from ..mapping.snn import SnnMappingError
    run = event_run(net, params["input_sparsity"], params["samples"], params["steps"],
                    params["seed"])
    try:
        fpga = snn_fpga_cost(net, run, params["samples"])
        fpga_rate, fpga_cycles = fpga["images_per_s"], fpga["cycles_per_image"]
    except SnnMappingError:
        fpga_rate = fpga_cycles = None
    row = next(r for r in policy_rows(net, run, params["macros"])
               if r["policy"] == params["policy"])
    metrics = {"energy_pj": row["energy_pj_per_sample"],
               "resident_bits": row["resident_bits"], "resident_vs_ws": row["resident_vs_ws"],
               "dram_bits": row["dram_bits_per_sample"], "dram_vs_ws": row["dram_vs_ws"],
               "energy_vs_ws": row["energy_vs_ws"], "fpga_samples_per_s": fpga_rate,
               "fpga_cycles": fpga_cycles}
    layers = [{"layer": l["name"], "dataflow": l["dataflow"], "resident": l["resident"],
               "stationary_bits": l["stationary_bits"], "rows": l["rows"],
               "dram_bits": l["dram_bits"] / params["samples"],
               "spike_rate": row["rates"][l["name"]]} for l in row["plan"]["layers"]]
    return metrics, layers
