"""Find and read the inputs of a report: a run folder (``cimstack demo --out``), a sweep
folder (``cimstack sweep --out``), a study folder (``cimstack study analog --out``) or a
search folder (``cimstack search --out``).

Inputs are found by their file names, in the folder itself, then in its conventional
subfolder (``sweep/``, ``study-analog/``), then in any other immediate subfolder. Every
reader checks the fields the report uses, so a damaged file gets one clear error that
names the file and the command that rewrites it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class InputKind:
    """One kind of report input: its file, where it usually sits, what writes it."""
    name: str
    file: str            # path relative to the folder that holds it
    subfolder: str       # the conventional folder under a run folder ('' = the run folder)
    producer: str        # the command that writes it (RUN_DIR = the run folder)
    fields: tuple = ()   # keys (JSON) or columns (CSV) the report reads


INPUT_KINDS = {k.name: k for k in (
    InputKind("verify", "verify/verify.json", "", "cimstack demo --out RUN_DIR",
              ("backend", "images", "layers")),
    InputKind("bundle", "bundle/bundle.json", "", "cimstack demo --out RUN_DIR", ("name",)),
    InputKind("cost", "cost.json", "", "cimstack demo --out RUN_DIR", ("fpga",)),
    InputKind("snn_demo", "snn_demo.json", "", "cimstack demo --snn --out RUN_DIR",
              ("cost", "verify")),
    InputKind("sweep", "results.json", "sweep", "cimstack sweep --out RUN_DIR/sweep",
              ("points",)),
    InputKind("enob", "enob.csv", "study-analog",
              "cimstack study analog --out RUN_DIR/study-analog",
              ("adc_bits", "config", "enob", "active_rows", "rows")),
    InputKind("sigma", "sigma.csv", "study-analog",
              "cimstack study analog --out RUN_DIR/study-analog",
              ("model", "train_sigma", "adc_bits", "sigma", "accuracy")),
    InputKind("adc_bits", "adc_bits.csv", "study-analog",
              "cimstack study analog --out RUN_DIR/study-analog",
              ("adc_bits", "accuracy_sigma0", "accuracy_noisy", "sigma_eval")),
    InputKind("search", "front.json", "search", "cimstack search BUNDLE --out RUN_DIR/search",
              ("objectives", "front", "knee")),
    InputKind("search_candidates", "candidates.json", "search",
              "cimstack search BUNDLE --out RUN_DIR/search", ("candidates",)),
    InputKind("sensitivity", "sensitivity.json", "search",
              "cimstack search BUNDLE --out RUN_DIR/search", ("baseline", "changes", "images")),
)}


def _candidates(root: Path, subfolder: str) -> list[Path]:
    """Folders searched for one input kind, in order of preference."""
    others = sorted(p for p in root.iterdir()
                    if p.is_dir() and not p.name.startswith(".") and p.name != "report")
    first = [root] + ([root / subfolder] if subfolder else [])
    return first + [p for p in others if p not in first]


@dataclass
class RunInputs:
    """The input files found for a report (``paths``: kind name -> file); each is read
    once, on first use."""
    root: Path
    paths: dict
    _read: dict = field(default_factory=dict, repr=False)

    def check(self) -> None:
        """Read every input now, so a damaged one fails before any figure is drawn."""
        for name in self.paths:
            (self.csv if INPUT_KINDS[name].file.endswith(".csv") else self.json)(name)
        self.network_costs()

    def has(self, name: str) -> bool:
        """Whether an input of kind ``name`` was found."""
        return name in self.paths

    def rel(self, name: str) -> str:
        """The input's path relative to the folder reported on (for captions)."""
        return self.paths[name].relative_to(self.root).as_posix()

    def producer(self, name: str) -> str:
        """The command that writes input ``name``, with the real folder filled in."""
        return INPUT_KINDS[name].producer.replace("RUN_DIR", str(self.root))

    def json(self, name: str) -> dict | None:
        """The parsed JSON input ``name`` (None when absent); ConfigError when damaged."""
        if name not in self.paths or name in self._read:
            return self._read.get(name)
        obj = _json_object(self.paths[name], self.producer(name))
        self._check_fields(name, set(obj))
        self._read[name] = obj
        return obj

    def network_costs(self) -> list[tuple[str, dict]]:
        """(relative path, network cost) of every ``cost.json`` in the folder and its
        immediate subfolders that holds a macro network's cost (``cimstack cost BUNDLE
        --json``, ``cimstack demo``), in folder order: one report section each."""
        if "network_costs" not in self._read:
            found = []
            for folder in _candidates(self.root, ""):
                path = folder / "cost.json"
                if not path.is_file():
                    continue
                producer = f"cimstack cost BUNDLE --json {path}"
                net = _json_object(path, producer).get("network")
                if net is None:
                    continue                 # an SNN bundle's or the calibration's figures
                missing = [f for f in NETWORK_FIELDS if not isinstance(net, dict) or f not in net]
                if missing:
                    raise ConfigError(f"{path}: its network lacks {', '.join(missing)}: "
                                      f"rewrite it with `{producer}`")
                found.append((path.relative_to(self.root).as_posix(), net))
            self._read["network_costs"] = found
        return self._read["network_costs"]

    def csv(self, name: str) -> list[dict] | None:
        """Rows of the CSV input ``name`` with numbers parsed (None when absent)."""
        if name not in self.paths or name in self._read:
            return self._read.get(name)
        path = self.paths[name]
        try:
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = [{k: _number(v) for k, v in row.items()} for row in reader]
                columns = set(reader.fieldnames or ())
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{path} is not a readable CSV table ({exc}): rewrite it "
                              f"with `{self.producer(name)}`") from None
        self._check_fields(name, columns)
        if not rows:
            raise ConfigError(f"{path} has no rows: rewrite it with `{self.producer(name)}`")
        self._read[name] = rows
        return rows

    def _check_fields(self, name: str, present: set) -> None:
        missing = [f for f in INPUT_KINDS[name].fields if f not in present]
        if missing:
            raise ConfigError(f"{self.paths[name]} lacks {', '.join(missing)}: it is not "
                              f"what `{self.producer(name)}` writes; rewrite it with that "
                              "command")


NETWORK_FIELDS = ("name", "batch", "layers", "totals")


def _json_object(path: Path, producer: str) -> dict:
    """The JSON object in ``path``; ConfigError naming ``producer`` when it is not one."""
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}): rewrite it with "
                          f"`{producer}` or remove it") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} holds a {type(obj).__name__}, not a JSON object: "
                          f"rewrite it with `{producer}`")
    return obj


def _number(text: str | None) -> Any:
    """A CSV cell as an int (digits only) or a float where it reads as one, '' (a knob
    that does not apply) as None, else the text itself."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(text) if text.lstrip("+-").isdigit() else value


def find_inputs(folder: str | Path) -> RunInputs:
    """The report inputs under ``folder``; ConfigError when it holds none of them."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"no folder {root}: pass a run folder (`cimstack demo --out "
                          f"{root}` writes one), a sweep folder or a study folder")
    paths = {}
    for kind in INPUT_KINDS.values():
        found = next((d / kind.file for d in _candidates(root, kind.subfolder)
                      if (d / kind.file).is_file()), None)
        if found is not None:
            paths[kind.name] = found
    if not paths:
        names = ", ".join(k.file for k in INPUT_KINDS.values())
        raise ConfigError(f"{root} holds none of the report's inputs ({names}): pass a run "
                          f"folder (`cimstack demo --out {root}` writes one), a sweep folder "
                          "or a study folder")
    return RunInputs(root, paths)
