"""The bad-input suite: one table of cases across bundles, SNN bundles, configs, flags,
data, events, emulated hardware, serial and outputs (tables in tests/bad_cases_*.py,
harness in tests/badcase.py). Each case must give a non-zero exit or a typed exception
with a message that names the problem, no traceback, and leave existing files alone."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from badcase import check_case

_HERE = Path(__file__).parent
CASES = [case for module in sorted(_HERE.glob("bad_cases_*.py"))
         for case in importlib.import_module(module.stem).CASES]


def test_case_ids_are_unique_and_enough():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert len(ids) >= 80, f"only {len(ids)} bad-input cases"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch):
    check_case(case, tmp_path, monkeypatch)
