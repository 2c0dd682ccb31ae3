"""The analog-macro study (IMAGINE): effective ADC bits of fixed vs adaptive swing, and
digits accuracy vs noise and vs ADC resolution for noise-aware and -unaware models.

a. Effective bits. A layer activates ``active_rows`` (default 144) of the 1152 rows. The
   test signal is random and spans the layer's whole swing: per sample v a fill level
   p_v ~ U(0, 1), inputs x = (2^x_bits - 1) * Bernoulli(p_v) per row, and per channel a
   constant weight column +-(2^(w_bits-1) - 1) with a random sign, so the ideal dot
   products cover [-D, D], D = active_rows * (2^x_bits - 1) * (2^(w_bits-1) - 1). The
   codes are decoded back to dot-product units (code centres) and
   ``ENOB = (SQNR_dB - 1.76) / 6.02`` with SQNR = power(ideal) / power(decoded - ideal).
   Configurations: ``fixed`` (N_norm = rows, G = 1), ``adaptive`` (N_norm = active rows
   rounded up to segments, G = 1), ``adaptive+abn`` (adaptive plus the ABN gain
   G = N_norm / active_rows that stretches the swing to the ADC range).
b. Accuracy vs sigma: the digits model trained with the ADC in the loop without noise
   (unaware) and with ``train_sigma`` LSB of noise (aware), exported and evaluated on the
   integer reference with the counter-based noise, averaged over noise seeds.
c. Accuracy vs adc_bits: one model per resolution, evaluated at sigma 0 and at
   ``sigma_eval``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..config import AcimSpec
from ..errors import ConfigError
from ..ref.acim import acim_codes, decode, unit_gain
from ..report.figures import Lines, Series, plot
from ..fileio import claim_folder, write_csv_atomic

Progress = Callable[[str, int], None]       # (description, steps done now)


def _noop(desc: str, steps: int = 1) -> None:
    pass


# ------------------------------------------------------------------ a. effective bits

def swing_signal(active_rows: int, samples: int, channels: int, x_bits: int, w_bits: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random full-swing test data (module docstring): x [samples, K], w [K, channels]."""
    rng = np.random.default_rng(seed)
    p = rng.random((samples, 1))
    x = (rng.random((samples, active_rows)) < p) * ((1 << x_bits) - 1)
    sign = np.where(np.arange(channels) % 2 == 0, 1, -1)
    rng.shuffle(sign)
    w = np.broadcast_to(sign * ((1 << (w_bits - 1)) - 1), (active_rows, channels))
    return x.astype(np.int64), np.ascontiguousarray(w, dtype=np.int64)


def enob(ideal: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """(SQNR in dB, effective bits) of ``estimate`` against ``ideal``."""
    sig = float(np.mean(np.square(ideal, dtype=np.float64)))
    err = float(np.mean(np.square(np.asarray(estimate, np.float64) - ideal)))
    sqnr = 10 * math.log10(sig / err) if err > 0 else math.inf
    return sqnr, (sqnr - 1.76) / 6.02


SWING_CONFIGS = ("fixed", "adaptive", "adaptive+abn")


def effective_bits(adc_bits: int, config: str, active_rows: int = 144,
                   spec: AcimSpec | None = None, samples: int = 2048, channels: int = 32,
                   x_bits: int = 8, w_bits: int = 8, seed: int = 0) -> dict:
    """Effective bits of one swing configuration at one ADC resolution."""
    if config not in SWING_CONFIGS:
        raise ValueError(f"config {config!r}: choose one of {SWING_CONFIGS}")
    base = spec or AcimSpec()
    spec = replace(base, adc_bits=adc_bits,
                   swing="fixed" if config == "fixed" else "adaptive")
    norm = spec.norm_rows(active_rows)
    g = norm / active_rows if config == "adaptive+abn" else 1.0
    gain = unit_gain(spec, channels, g)
    if config == "adaptive+abn" and gain[0] * active_rows > norm * 2 ** spec.gain_frac_bits:
        gain -= 1                              # round down: never clip the swing
    offset = np.zeros(channels, np.int64)
    x, w = swing_signal(active_rows, samples, channels, x_bits, w_bits, seed)
    codes = acim_codes(x, w, w_bits, x_bits, spec, gain, offset)
    ideal = (x @ w).astype(np.float64)
    est = decode(codes, norm, w_bits, x_bits, spec, gain, offset)
    sqnr, bits = enob(ideal, est)
    return {"adc_bits": adc_bits, "config": config, "active_rows": active_rows,
            "rows": spec.rows, "norm_rows": norm,
            "gain": float(gain[0]) / 2 ** spec.gain_frac_bits, "sqnr_db": sqnr, "enob": bits}


def effective_bits_sweep(adc_bits: Iterable[int] = range(1, 9), active_rows: int = 144,
                         spec: AcimSpec | None = None, samples: int = 2048,
                         channels: int = 32, seed: int = 0,
                         progress: Progress = _noop) -> list[dict]:
    rows = []
    for a in adc_bits:
        for config in SWING_CONFIGS:
            rows.append(effective_bits(a, config, active_rows, spec, samples, channels,
                                       seed=seed))
            progress(f"effective bits: {config}, {a} b", 1)
    return rows


# ------------------------------------------------------------- b/c. digits accuracy

def _float_model(seed: int, epochs: int, threads: int = 2):
    from ..quant.analog import train_float
    return train_float(seed, epochs, threads=threads)


def accuracy_vs_sigma(sigmas: Sequence[float] = (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4),
                      adc_bits: int = 4, train_sigma: float = 2.0, epochs: int = 8,
                      float_epochs: int = 20, noise_seeds: int = 3, seed: int = 0,
                      float_model=None, progress: Progress = _noop,
                      threads: int = 2) -> list[dict]:
    """Test accuracy of a noise-unaware and a noise-aware model over sigma (LSB), trained
    on ``threads`` torch threads."""
    from ..quant.analog import train_analog_digits
    from ..ref.network import integer_accuracy
    fmodel = float_model
    if fmodel is None:
        fmodel = _float_model(seed, float_epochs, threads)
        progress("float model", 1)
    spec = AcimSpec(adc_bits=adc_bits)
    rows = []
    for label, ts in (("unaware", 0.0), ("aware", float(train_sigma))):
        res = train_analog_digits(spec, ts, epochs=epochs, seed=seed, float_model=fmodel,
                                  threads=threads)
        progress(f"trained {label}", 1)
        ex = res.export()
        data = res.data
        for s in sigmas:
            accs = [integer_accuracy(ex.with_acim(sigma=float(s), seed=k), data.x_test,
                                     data.y_test)
                    for k in range(noise_seeds if s > 0 else 1)]
            rows.append({"model": label, "train_sigma": ts, "adc_bits": adc_bits,
                         "sigma": float(s), "accuracy": float(np.mean(accs)),
                         "accuracy_min": float(np.min(accs)), "noise_seeds": len(accs)})
            progress(f"{label}: sigma {s}", 1)
    return rows


def accuracy_vs_adc_bits(adc_bits: Iterable[int] = range(1, 9), sigma_eval: float = 1.0,
                         train_sigma: float = 1.0, epochs: int = 8, float_epochs: int = 20,
                         noise_seeds: int = 3, seed: int = 0, float_model=None,
                         progress: Progress = _noop, threads: int = 2) -> list[dict]:
    """One noise-aware model per ADC resolution; accuracy at sigma 0 and sigma_eval
    (trained on ``threads`` torch threads)."""
    from ..quant.analog import train_analog_digits
    from ..ref.network import integer_accuracy
    fmodel = float_model or _float_model(seed, float_epochs, threads)
    rows = []
    for a in adc_bits:
        res = train_analog_digits(AcimSpec(adc_bits=a), train_sigma, epochs=epochs, seed=seed,
                                  float_model=fmodel, threads=threads)
        ex = res.export()
        data = res.data
        clean = integer_accuracy(ex, data.x_test, data.y_test)
        noisy = [integer_accuracy(ex.with_acim(sigma=sigma_eval, seed=k), data.x_test,
                                  data.y_test) for k in range(noise_seeds)]
        rows.append({"adc_bits": a, "train_sigma": train_sigma, "accuracy_sigma0": clean,
                     "sigma_eval": sigma_eval, "accuracy_noisy": float(np.mean(noisy)),
                     "torch_accuracy": res.torch_acc})
        progress(f"adc_bits {a}", 1)
    return rows


# ------------------------------------------------------------------------- outputs

def plot_enob(rows: list[dict], path: Path) -> Path:
    """Effective bits vs ADC bits, one line per swing configuration."""
    bits = sorted({r["adc_bits"] for r in rows})
    series = [Series("ideal (adc_bits)", bits, bits, "k:")] + [
        Series(config, *map(list, zip(*[(r["adc_bits"], r["enob"]) for r in rows
                                         if r["config"] == config])))
        for config in SWING_CONFIGS]
    r0 = rows[0]
    return plot([Lines(f"{r0['active_rows']} of {r0['rows']} rows active", "ADC bits",
                       "effective bits (SQNR)", series)], path)


def plot_sigma(rows: list[dict], path: Path) -> Path:
    """Accuracy vs noise sigma of the noise-unaware and noise-aware models."""
    series = []
    for label in ("unaware", "aware"):
        mine = [r for r in rows if r["model"] == label]
        series.append(Series(f"noise-{label} (train sigma {mine[0]['train_sigma']:g})",
                             [r["sigma"] for r in mine], [100 * r["accuracy"] for r in mine]))
    return plot([Lines(f"digits, {rows[0]['adc_bits']}-bit ADC", "ADC noise sigma (LSB)",
                       "test accuracy (%)", series)], path)


def plot_adc_bits(rows: list[dict], path: Path) -> Path:
    """Accuracy vs ADC bits at sigma 0 and at the evaluation noise."""
    bits = [r["adc_bits"] for r in rows]
    return plot([Lines("digits, noise-aware models", "ADC bits", "test accuracy (%)", [
        Series("sigma 0", bits, [100 * r["accuracy_sigma0"] for r in rows]),
        Series(f"sigma {rows[0]['sigma_eval']:g} LSB", bits,
               [100 * r["accuracy_noisy"] for r in rows], "s-")])], path)


PARTS = ("enob", "sigma", "bits")


def run_analog_study(out: Path, parts: Sequence[str] = PARTS, *, quick: bool = False,
                     active_rows: int = 144, sigma_adc_bits: int = 4, train_sigma: float = 2.0,
                     epochs: int | None = None, float_epochs: int | None = None, seed: int = 0,
                     bits: Sequence[int] | None = None, sigmas: Sequence[float] | None = None,
                     progress: Progress = _noop, force: bool = False,
                     threads: int = 2) -> dict:
    """Run the selected parts; writes <part>.csv and <part>.png under ``out`` and
    summary.json. ``quick`` shrinks every sweep (for tests and smoke runs). ``out`` must
    be a study folder (or new or empty): a folder of other files needs ``force``.
    ``threads``: torch threads of the trainings (results depend on it slightly)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"unknown study part(s) {unknown}; choose from {list(PARTS)}")
    out = claim_folder(out, force, kind="study")
    epochs = epochs if epochs is not None else (2 if quick else 8)
    float_epochs = float_epochs if float_epochs is not None else (3 if quick else 20)
    summary: dict = {"out": str(out), "parts": list(parts)}
    if "enob" in parts:
        rows = effective_bits_sweep(range(1, 9), active_rows, samples=512 if quick else 4096,
                                    channels=16 if quick else 32, seed=seed, progress=progress)
        write_csv_atomic(out / "enob.csv", rows)
        plot_enob(rows, out / "enob.png")
        by = {(r["config"], r["adc_bits"]): r["enob"] for r in rows}
        summary["enob"] = {
            "expected_gain_bits": math.log2(AcimSpec().rows / active_rows),
            "recovered_bits_at": {a: by[("adaptive+abn", a)] - by[("fixed", a)]
                                  for a in range(1, 9)}}
    fmodel = None
    if "sigma" in parts or "bits" in parts:
        fmodel = _float_model(seed, float_epochs, threads)
        progress("float model", 1)
    if "sigma" in parts:
        sigmas = sigmas or ((0, 2, 4) if quick else (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4))
        rows = accuracy_vs_sigma(sigmas, sigma_adc_bits, train_sigma, epochs, seed=seed,
                                 noise_seeds=1 if quick else 3, float_model=fmodel,
                                 progress=progress, threads=threads)
        write_csv_atomic(out / "sigma.csv", rows)
        plot_sigma(rows, out / "sigma.png")
        summary["sigma"] = {f"{r['model']}@{r['sigma']:g}": r["accuracy"] for r in rows}
    if "bits" in parts:
        bits = bits or ((2, 4, 8) if quick else range(1, 9))
        rows = accuracy_vs_adc_bits(bits, epochs=epochs, seed=seed,
                                    noise_seeds=1 if quick else 3, float_model=fmodel,
                                    progress=progress, threads=threads)
        write_csv_atomic(out / "adc_bits.csv", rows)
        plot_adc_bits(rows, out / "adc_bits.png")
        summary["bits"] = {r["adc_bits"]: r["accuracy_sigma0"] for r in rows}
    from ..fileio import write_json_atomic
    write_json_atomic(out / "summary.json", summary)
    return summary


def study_steps(parts: Sequence[str], quick: bool) -> int:
    """Progress steps of :func:`run_analog_study` (for a progress bar's total)."""
    n = 0
    if "enob" in parts:
        n += 8 * len(SWING_CONFIGS)
    if "sigma" in parts or "bits" in parts:
        n += 1
    if "sigma" in parts:
        n += 2 * (1 + (3 if quick else 9))
    if "bits" in parts:
        n += 3 if quick else 8
    return n
