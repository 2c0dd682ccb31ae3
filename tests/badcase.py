"""The harness of the bad-input suite (tests/test_bad_inputs.py).

A case builds its bad input in a fresh folder and returns either the command line to
run (a list of strings: ``cimstack`` is run in this process, as ``main()`` runs it) or
a zero-argument callable for the Python API. The harness then checks what a user
must get:

- CLI: a non-zero exit, the expected message on one line of the output, no Python
  traceback anywhere;
- API: the expected exception type (a :class:`CimstackError` unless the case says
  otherwise) with the expected message;
- both: every file that existed in the folder before the call is unchanged after it.

Tables of cases live in ``tests/bad_cases_*.py`` (one module per area: bundles, SNN
bundles, configs, flags, data, events, emulated hardware, serial, outputs), each with
a module-level ``CASES`` list.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from cimstack.errors import CimstackError


@dataclass(frozen=True)
class Case:
    """One bad input: ``setup(folder)`` returns CLI args (list) or an API callable."""

    id: str
    setup: Callable[[Path], Any]
    match: str                                   # regex, searched case-insensitively
    raises: type = CimstackError                 # API cases: the exception type expected
    env: Optional[dict] = None                   # extra environment for the call


def set_field(*keys_value):
    """A change to a JSON document that sets ``doc[k1][k2]... = value``."""
    *keys, value = keys_value

    def change(doc):
        d = doc
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def move_out_and_link(file: Path, outside: Path) -> None:
    """Move ``file`` to ``outside`` and leave a symbolic link to it in its place (a
    bundle file that leads out of its bundle folder)."""
    os.replace(file, outside)
    os.symlink(outside, file)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash (files), 'dir' (folders), 'link:TARGET' (symlinks)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``cimstack ARGS`` in this process from ``cwd``: (exit code, stdout + stderr)."""
    from conftest import console_output

    from cimstack import cli

    old_cwd, code = os.getcwd(), 0
    with console_output() as buf:
        try:
            os.chdir(cwd)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                try:
                    cli.main(list(args))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            os.chdir(old_cwd)
    return code, buf.getvalue()


def assert_one_line(code: int, text: str, *words: str) -> None:
    """A refused command: a non-zero exit, one line without a traceback, naming
    ``words``."""
    assert code != 0
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    for w in words:
        assert w in text, text


def check_case(case: Case, folder: Path, monkeypatch) -> None:
    """Build the case's input in ``folder``, run it, and assert everything above."""
    for key, value in (case.env or {}).items():
        monkeypatch.setenv(key, value)
    target = case.setup(folder)
    before = snapshot(folder)
    pattern = re.compile(case.match, re.IGNORECASE)
    if callable(target):
        try:
            target()
        except case.raises as exc:
            message = str(exc)
            assert pattern.search(message), f"message {message!r} does not match {case.match!r}"
            assert "\n" not in message.strip(), f"not one line: {message!r}"
        else:
            raise AssertionError(f"{case.id}: no {case.raises.__name__} was raised")
    else:
        code, out = run_cli(target, folder)
        assert code != 0, f"{case.id}: exit 0 for a bad input; output:\n{out}"
        assert "Traceback" not in out, f"{case.id}: a traceback reached the user:\n{out}"
        lines = [" ".join(line.split()) for line in out.splitlines()]
        assert any(pattern.search(line) for line in lines), \
            f"{case.id}: no line of the output matches {case.match!r}:\n{out}"
    after = snapshot(folder)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{case.id}: files that existed before were changed or removed: {changed}"
