"""The sweep grid: a TOML file and/or ``--set`` options -> validated design points.

A grid has one table per macro (``[dcim]``, ``[acim]``, any registered macro family
with sweep knobs, ``[snn]`` and ``[flexspim]``; an array of tables ``[[acim]]`` gives
several grids of one macro). In a table, a list sweeps a
knob and a scalar fixes it; the points are the cartesian product per table. Top-level
keys set a knob every macro has (``seed``, ``w_bits``) in every table that does not set
it itself::

    seed = [0, 1]

    [acim]
    adc_bits = [2, 4, 8]
    sigma = [0, 1, 2]

Knob names and values are checked against :mod:`.points` (ranges from the macro specs);
a mistake gives a :class:`~cimstack.errors.ConfigError` listing the valid knobs.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

from ..config import tomllib
from ..errors import ConfigError
from .points import Point, point_type, point_types

# the built-in grid: 12 points, 7 trained models
DEFAULT_GRID: dict[str, Any] = {
    "dcim": {"w_bits": [8, 4], "x_bits": [8, 4], "rows_on": 16},
    "acim": {"adc_bits": [4, 8], "sigma": [0.0, 1.0]},
    "snn": {"v_bits": [16, 8], "dataflow": ["auto", "ws"]},
}

Grid = dict[str, list[dict[str, Any]]]       # macro -> tables of knob -> list of values


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read a grid TOML file (clear errors for a missing or malformed file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist; write one like "
                          "sweeps/example.toml or give knobs with --set")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"grid file {path} is not valid TOML: {exc}") from None


def _values(where: str, value: Any) -> list:
    """A knob's values: a scalar or a non-empty list of scalars."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{where} is an empty list; give at least one value")
    for v in values:
        if isinstance(v, (list, dict)):
            raise ConfigError(f"{where} = {value!r}: give a value or a list of values")
    return values


def common_knobs() -> list[str]:
    """The knobs every sweepable macro has (a grid may set them at the top)."""
    types = list(point_types().values())
    return [k for k in types[0].knob_names() if all(k in t.knob_names() for t in types)]


def normalize(grid: dict[str, Any]) -> Grid:
    """Every macro as a list of tables of value lists; top-level common knobs copied in."""
    if not isinstance(grid, dict):
        raise ConfigError(f"a grid is a table of macro tables, got {type(grid).__name__}")
    macros, common_names = list(point_types()), common_knobs()
    unknown = sorted(set(grid) - set(macros) - set(common_names))
    if unknown:
        raise ConfigError(f"grid: unknown key(s) {unknown}; use the macro tables {macros} "
                          f"(the registered macro families with sweep knobs, snn and "
                          f"flexspim) and, at the top, knobs every macro has "
                          f"{common_names}")
    common = {k: _values(f"grid {k}", grid[k]) for k in common_names if k in grid}
    out: Grid = {}
    for macro in macros:
        if macro not in grid:
            continue
        tables = grid[macro] if isinstance(grid[macro], list) else [grid[macro]]
        out[macro] = []
        for table in tables:
            if not isinstance(table, dict):
                raise ConfigError(f"grid [{macro}] must be a table of knobs, got {table!r}")
            bad = sorted(set(table) - set(point_type(macro).knob_names()))
            if bad:
                raise ConfigError(f"grid [{macro}]: unknown knob(s) {bad}; valid knobs: "
                                  f"{point_type(macro).knob_help()}")
            out[macro].append({**common, **{k: _values(f"grid [{macro}] {k}", v)
                                            for k, v in table.items()}})
    if not out:
        raise ConfigError(f"the grid has no macro table; add one of {macros}")
    return out


def _scalar(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sets(items: Iterable[str]) -> dict[str, list]:
    """``["adc_bits=2,4,8", "macro=acim"]`` -> ``{"adc_bits": [2, 4, 8], "macro": ["acim"]}``."""
    sets: dict[str, list] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--set {item!r}: write KNOB=VALUE or KNOB=V1,V2,... "
                              "(e.g. --set adc_bits=2,4,8)")
        sets[key.strip()] = [_scalar(v) for v in value.split(",")]
    return sets


def merge_sets(grid: dict[str, Any] | None, sets: dict[str, list]) -> Grid:
    """Apply ``--set`` knobs: ``macro=...`` selects the tables (or makes them when there
    is no grid file); every other knob replaces its values in the selected tables whose
    macro has it."""
    sets = dict(sets)
    macros = [str(m) for m in sets.pop("macro", [])]
    bad = sorted(set(macros) - set(point_types()))
    if bad:
        raise ConfigError(f"--set macro={','.join(macros)}: unknown macro(s) {bad}; choose "
                          f"from {list(point_types())}")
    if grid is None:
        if not macros:
            *others, last = point_types()
            raise ConfigError(f"--set without a grid file needs macro={', '.join(others)} "
                              f"or {last} (e.g. --set macro=acim --set adc_bits=2,4,8)")
        base: Grid = {m: [{}] for m in macros}
    else:
        base = normalize(grid)
        if macros:
            base = {m: base.get(m, [{}]) for m in macros}
    for key in sets:
        if not any(key in point_type(m).knob_names() for m in base):
            raise ConfigError(f"--set {key}: no selected macro ({', '.join(base)}) has this "
                              "knob; valid knobs: " + "; ".join(
                                  f"{m}: {point_type(m).knob_help()}" for m in base))
    return normalize({m: [{**t, **{k: v for k, v in sets.items()
                                   if k in point_type(m).knob_names()}} for t in tables]
                      for m, tables in base.items()})


def expand(grid: dict[str, Any]) -> list[Point]:
    """The design points of ``grid`` (validated; duplicates dropped, order kept)."""
    points: dict[tuple, Point] = {}
    for macro, tables in normalize(grid).items():
        cls = point_type(macro)
        for table in tables:
            keys = list(table)
            for combo in itertools.product(*(table[k] for k in keys)):
                try:
                    point = cls(**dict(zip(keys, combo)))
                except ConfigError as exc:
                    raise ConfigError(f"grid [{macro}]: {exc}; valid knobs: "
                                      f"{cls.knob_help()}") from None
                points.setdefault(tuple(sorted(point.params().items())), point)
    return list(points.values())
