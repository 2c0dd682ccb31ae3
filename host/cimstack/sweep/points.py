"""Design points of a sweep: one typed, validated dataclass per macro family (the
family's :attr:`~cimstack.families.MacroFamily.point`) and one for the spiking network.

Every knob is a :func:`~cimstack.config.knob` field. Knobs that are also fields of a
macro spec (``rows_on``, ``adc_bits``, ``sigma``, ``v_bits``, ``dataflow``...) take
their range and documentation from that spec, and each point builds its spec while it
is validated, so the spec's own cross-field rules apply too (``rows_on`` must divide
the rows, ...). A knob's ``role`` says what a change of it costs:

- ``model``: the trained network changes; points that differ in it train their own;
- ``eval``: only the evaluation changes; points that differ only in eval knobs share
  one trained model (ADC noise ``sigma``, ``rows_on`` of a dense dcim model, the SNN's
  membrane width ``v_bits`` and ``dataflow``).

A point's id is a short hash of its canonical parameters and of the training schedule
of its macro, so the same point gets the same id in every run and on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import AcimSpec, DcimSpec, SnnSpec, Spec, check_range, knob
from ..errors import ConfigError
from ..families import family_names, get_family
from ..mapping.flexspim import POLICIES
from ..models.flexspim import DOWNSAMPLES

MODEL, EVAL = "model", "eval"


def sweep_knob(default: Any, doc: str, role: str, lo: float | None = None,
               hi: float | None = None, choices: tuple | None = None):
    """A :func:`knob` that also records its ``role`` (``model`` or ``eval``)."""
    meta = knob(default, doc, lo, hi, choices).metadata
    return field(default=default, metadata={**meta, "role": role})


def spec_knob(spec: type, name: str, role: str, doc: str | None = None,
              lo: float | None = None):
    """A sweep knob with the default, range and choices of ``spec``'s field ``name``
    (``lo`` narrows the lower bound where training supports less than the macro)."""
    src = {f.name: f for f in dataclasses.fields(spec)}[name]
    meta = src.metadata
    return sweep_knob(src.default, doc or meta["doc"], role,
                      meta["lo"] if lo is None else lo, meta["hi"], meta["choices"])


SEED_DOC = "training seed (acim: also the noise seed); the data split is fixed"


@dataclass(frozen=True)
class Point(Spec):
    """Base of the design points: canonical parameters, model/eval split, knob help."""

    macro: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):           # 1 and 1.0 are the same sigma
            value = getattr(self, f.name)
            if isinstance(f.default, float) and isinstance(value, int) \
                    and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        super().__post_init__()

    def apply(self, bundle):
        """The trained bundle of a macro family's point under its evaluation knobs."""
        raise NotImplementedError(f"{type(self).__name__} does not evaluate a bundle")

    def params(self) -> dict[str, Any]:
        """Every knob of the point, with its macro: the canonical parameters."""
        return {"macro": self.macro, **self.to_dict()}

    def columns(self) -> dict[str, Any]:
        """The point's row in results.csv: its :meth:`params` (a family may add derived
        columns)."""
        return self.params()

    def model_params(self) -> dict[str, Any]:
        """The knobs that decide the trained model (points sharing them share it)."""
        return {"macro": self.macro, **{f.name: getattr(self, f.name)
                                        for f in dataclasses.fields(self)
                                        if f.metadata.get("role") == MODEL}}

    @classmethod
    def knob_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def knob_help(cls) -> str:
        """``name (range)`` of every knob, for error messages and ``--help``."""
        parts = []
        for f in dataclasses.fields(cls):
            m = f.metadata
            allowed = ("|".join(map(str, m["choices"])) if m["choices"]
                       else f"{m['lo']}..{m['hi']}")
            parts.append(f"{f.name} ({allowed})")
        return ", ".join(parts)


@dataclass(frozen=True)
class DcimPoint(Point):
    """A digits CNN on the digital macro (MARS): QAT, optional block pruning."""

    macro: ClassVar[str] = "dcim"
    w_bits: int = sweep_knob(8, "weight bits of every macro layer (1 = binary)", MODEL, 1, 8)
    x_bits: int = sweep_knob(8, "activation bits of the hidden layers (a_bits); the "
                             "input image keeps 8 bits", MODEL, 1, 8)
    sparsity: float = sweep_knob(0.0, "target block sparsity of the CIM block pruning "
                                 "(blocks of rows_on rows)", MODEL, 0.0, 0.95)
    rows_on: int = spec_knob(DcimSpec, "rows_on", EVAL,
                             "word lines active per cycle; divides the 256 rows; also the "
                             "pruning block height, so a model knob when sparsity > 0")
    seed: int = sweep_knob(0, SEED_DOC, MODEL, 0, 2**31 - 1)

    def _rules(self) -> None:
        self.spec()

    def spec(self) -> DcimSpec:
        """The macro configuration of the point (exact partial-sum read-out)."""
        return DcimSpec(rows_on=self.rows_on)

    def apply(self, bundle):
        """The trained bundle on the point's macro configuration."""
        return dataclasses.replace(bundle, dcim=self.spec())

    def model_params(self) -> dict[str, Any]:
        params = super().model_params()
        if self.sparsity > 0:
            params["rows_on"] = self.rows_on
        return params


@dataclass(frozen=True)
class AcimPoint(Point):
    """A digits CNN on the analog macro (IMAGINE): ADC in the training loop."""

    macro: ClassVar[str] = "acim"
    w_bits: int = sweep_knob(8, "weight bits of every macro layer", MODEL, 2, 8)
    adc_bits: int = spec_knob(AcimSpec, "adc_bits", MODEL,
                              "ADC resolution in bits; the ADC is in the training loop and "
                              "its codes are the next layer's inputs")
    train_sigma: float = spec_knob(AcimSpec, "sigma", MODEL,
                                   "ADC noise (LSB) injected while training; > 0 = "
                                   "noise-aware")
    sigma: float = spec_knob(AcimSpec, "sigma", EVAL,
                             "ADC noise (LSB) of the evaluation on the integer reference")
    seed: int = sweep_knob(0, SEED_DOC, MODEL, 0, 2**31 - 1)

    def _rules(self) -> None:
        self.spec()

    def spec(self) -> AcimSpec:
        """The analog macro configuration of the evaluation (noise seeded by ``seed``)."""
        return AcimSpec(adc_bits=self.adc_bits, sigma=self.sigma, seed=self.seed)

    def apply(self, bundle):
        """The trained bundle under the point's evaluation noise (``sigma``, ``seed``)."""
        return bundle.with_acim(sigma=self.sigma, seed=self.seed)

    def columns(self) -> dict[str, Any]:
        """With ``x_bits`` = ``adc_bits``: the ADC codes are the layers' inputs."""
        return {**self.params(), "x_bits": self.adc_bits}


@dataclass(frozen=True)
class SnnPoint(Point):
    """A spiking CNN on the event core (FlexSpIM), event digits."""

    macro: ClassVar[str] = "snn"
    w_bits: int = spec_knob(SnnSpec, "w_bits", MODEL,
                            "weight bits (training supports 2..16)", lo=2)
    v_bits: int = spec_knob(SnnSpec, "v_bits", EVAL,
                            "membrane bits; the 16-bit export is re-expressed for fewer bits "
                            "(weights and threshold scaled by powers of two), no retraining",
                            lo=2)
    dataflow: str = spec_knob(SnnSpec, "dataflow", EVAL)
    seed: int = sweep_knob(0, SEED_DOC + " and the event-digit samples", MODEL, 0, 2**31 - 1)

    def _rules(self) -> None:
        SnnSpec(w_bits=self.w_bits, v_bits=self.v_bits, dataflow=self.dataflow)


@dataclass(frozen=True)
class FlexSpimPoint(Point):
    """FlexSpIM's 6-conv + 3-FC network (:mod:`cimstack.models.flexspim`: seeded random
    weights, no training) on ``macros`` macros sharing one budget with a DRAM tier, under
    one dataflow ``policy``, on seeded random events: the model of
    :func:`cimstack.cost.snn.policy_rows` (no accuracy)."""

    macro: ClassVar[str] = "flexspim"
    w_bits: int = sweep_knob(8, "weight bits: FlexSpIM's 8, the only width of the model "
                             "(the network's weights are int8)", MODEL, 8, 8)
    macros: int = sweep_knob(2, "macros of 512x256 bits sharing one capacity budget (the "
                             "spilled layers' working region must fit)", EVAL, 1, 4096)
    policy: str = sweep_knob("hs-min", "per-layer dataflow policy: hs-min (FlexSpIM's: the "
                             "smaller operand stationary), ws or os only, min-traffic (ours)",
                             EVAL, choices=POLICIES)
    input_sparsity: float = sweep_knob(0.95, "fraction of input addresses without an event "
                                       "per timestep (the paper: 0.85..0.99)", EVAL, 0.0, 1.0)
    downsample: int = sweep_knob(1, "input 2 x 128/d x 128/d, the first log2(d) pooling "
                                 "layers dropped", MODEL, choices=DOWNSAMPLES)
    steps: int = sweep_knob(16, "timesteps of random events per sample", EVAL, 1, 256)
    samples: int = sweep_knob(1, "random event samples per point", EVAL, 1, 64)
    seed: int = sweep_knob(0, "seed of the network's weights and of the events", MODEL,
                           0, 2**31 - 1)


def point_types() -> dict[str, type[Point]]:
    """The design point class of every sweepable macro: each registered macro family's
    (:attr:`~cimstack.families.MacroFamily.point`, families without one are left out),
    then the spiking networks', which are no family of bundle layers: the trained digits
    SNN and FlexSpIM's network (a dataflow model, untrained)."""
    types = {name: get_family(name).point for name in family_names()}
    return {**{name: cls for name, cls in types.items() if cls is not None}, "snn": SnnPoint,
            "flexspim": FlexSpimPoint}


def point_type(macro: str) -> type[Point]:
    """The design point class of ``macro``; a :class:`ConfigError` naming the sweepable
    macros when it has none."""
    types = point_types()
    if macro not in types:
        why = ("has no sweep knobs (give its MacroFamily a point class)"
               if macro in family_names()
               else "is not a registered macro family, snn or flexspim")
        raise ConfigError(f"macro {macro!r} {why}; the sweepable macros are "
                          f"{', '.join(types)}")
    return types[macro]


@dataclass(frozen=True)
class Schedule(Spec):
    """How long the sweep's models train. Part of every point's id: a quick sweep and a
    full one never mix their results in one output folder."""

    dcim_epochs: int = knob(20, "dcim float epochs; QAT and pruning epochs scale with it",
                            1, 1000)
    acim_float_epochs: int = knob(20, "acim: epochs of the float model the BN is folded "
                                  "from", 1, 1000)
    acim_epochs: int = knob(8, "acim: fine-tuning epochs with the ADC in the loop", 1, 1000)
    snn_epochs: int = knob(6, "snn: surrogate-gradient epochs", 1, 1000)
    snn_steps: int = knob(16, "snn: timesteps per event sample", 1, 256)
    snn_train_samples: int | None = knob(None, "snn: event-digit training samples (None: "
                                         "all)", 1, 10**6, optional=True)
    snn_test_samples: int | None = knob(None, "snn: event-digit test samples (None: all)",
                                        1, 10**6, optional=True)

    @classmethod
    def make(cls, quick: bool = False, epochs: int | None = None) -> "Schedule":
        """The full schedule, or the quick one (seconds per model, for tests and demos);
        ``epochs`` sets every model's epochs."""
        sched = cls(3, 3, 2, 2, 8, 600, 100) if quick else cls()
        if epochs is not None:
            check_range("epochs", epochs, 1, 1000)
            sched = dataclasses.replace(sched, dcim_epochs=epochs, acim_float_epochs=epochs,
                                        acim_epochs=epochs, snn_epochs=epochs)
        return sched

    def for_macro(self, macro: str) -> dict[str, Any]:
        """The fields of one macro family, without their prefix."""
        prefix = f"{macro}_"
        return {k[len(prefix):]: v for k, v in self.to_dict().items() if k.startswith(prefix)}


def digest(obj: Any, length: int = 12) -> str:
    """Short SHA-256 of the canonical JSON of ``obj`` (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def point_id(point: Point, schedule: Schedule) -> str:
    """Stable id of a point: hash of its parameters and its macro's schedule."""
    return digest({"params": point.params(), "schedule": schedule.for_macro(point.macro)})


def model_id(point: Point, schedule: Schedule) -> str:
    """Id of the trained model a point needs (``<macro>-<hash>``)."""
    return f"{point.macro}-" + digest({"model": point.model_params(),
                                       "schedule": schedule.for_macro(point.macro)}, 10)
