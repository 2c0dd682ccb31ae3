"""Bad-input cases: output paths. No command deletes or replaces what cimstack did not
write, turns a file into a folder (or back), or lets a report overwrite its inputs."""

from __future__ import annotations

import json
from pathlib import Path

from badcase import Case
from conftest import digits_like_bundle

from cimstack.bundle import save_bundle
from cimstack.errors import OutputError
from cimstack.fileio import atomic_file, write_json_atomic


def _user_folder(folder: Path, name: str = "mine") -> Path:
    """A folder of the user's own files (no cimstack marker)."""
    path = folder / name
    path.mkdir()
    (path / "notes.txt").write_text("my notes\n")
    (path / "data").mkdir()
    (path / "data" / "x.csv").write_text("1,2\n")
    return path


def _user_file(folder: Path, name: str = "notes.txt") -> Path:
    path = folder / name
    path.write_text("my notes\n")
    return path


def _run_folder(folder: Path) -> Path:
    """A run folder as `cimstack demo --out RUN` leaves it (the parts the report finds)."""
    run = folder / "run"
    save_bundle(digits_like_bundle(), run / "bundle")
    (run / "verify").mkdir()
    (run / "verify" / "verify.json").write_text(json.dumps(
        {"backend": "emu", "images": 1, "layers": []}))
    (run / "cost.json").write_text(json.dumps({"fpga": {}}))
    return run


def _save_into(folder: Path, make_target) -> callable:
    target = make_target(folder)
    return lambda: save_bundle(digits_like_bundle(), target)


def _snn_save_into(folder: Path):
    from cimstack.snn_bundle import save_snn_bundle
    from test_ref_snn import random_net         # a small valid SNN network
    target = _user_folder(folder)
    return lambda: save_snn_bundle(random_net(0), target)


def _json_onto_folder(folder: Path):
    target = _user_folder(folder)
    return lambda: write_json_atomic(target, {"a": 1})


def _atomic_file_onto_folder(folder: Path):
    target = _user_folder(folder)

    def call():
        with atomic_file(target) as tmp:
            tmp.write_text("x")
    return call


def _run_with_json_onto_folder(folder: Path) -> list[str]:
    save_bundle(digits_like_bundle(), folder / "b")
    _user_folder(folder, "figs")
    return ["run", "b", "--backend", "reference", "--json", "figs"]


CASES = [
    Case("outputs-train-into-user-folder",
         lambda f: (_user_folder(f), ["train", "--out", "mine", "--epochs", "1"])[1],
         r"mine is a folder cimstack did not write.*--force"),
    Case("outputs-train-out-is-a-file",
         lambda f: (_user_file(f), ["train", "--out", "notes.txt", "--epochs", "1"])[1],
         r"notes.txt exists and is not a folder"),
    Case("outputs-train-acim-into-user-folder",
         lambda f: (_user_folder(f), ["train", "--macro", "acim", "--out", "mine",
                                      "--epochs", "1"])[1],
         r"did not write"),
    Case("outputs-export-into-user-folder",
         lambda f: (_user_folder(f), ["export", "missing.pt", "--out", "mine"])[1],
         r"mine is a folder cimstack did not write"),
    Case("outputs-snn-train-into-user-folder",
         lambda f: (_user_folder(f), ["snn", "train", "--out", "mine", "--epochs", "1"])[1],
         r"did not write.*--force"),
    Case("outputs-report-out-is-the-run",
         lambda f: (_run_folder(f), ["report", "run", "--out", "run"])[1],
         r"would (overwrite|replace) the (report's own input|folder reported on)"),
    Case("outputs-report-out-is-the-run-even-with-force",
         lambda f: (_run_folder(f), ["report", "run", "--out", "run", "--force"])[1],
         r"would (overwrite|replace)"),
    Case("outputs-report-out-is-an-input-folder",
         lambda f: (_run_folder(f), ["report", "run", "--out", "run/verify", "--force"])[1],
         r"would overwrite the report's own input"),
    Case("outputs-report-out-inside-the-bundle",
         lambda f: (_run_folder(f), ["report", "run", "--out", "run/bundle/rep"])[1],
         r"would overwrite the report's own input"),
    Case("outputs-report-out-holds-the-run",
         lambda f: (_run_folder(f), ["report", "run", "--out", ".", "--force"])[1],
         r"would (overwrite|replace)"),
    Case("outputs-report-out-is-a-file",
         lambda f: (_run_folder(f), _user_file(f), ["report", "run", "--out", "notes.txt"])[2],
         r"notes.txt exists and is not a folder"),
    Case("outputs-report-into-user-folder",
         lambda f: (_run_folder(f), _user_folder(f), ["report", "run", "--out", "mine"])[2],
         r"mine is a folder cimstack did not write"),
    Case("outputs-save-bundle-into-user-folder",
         lambda f: _save_into(f, _user_folder), r"did not write", OutputError),
    Case("outputs-save-bundle-onto-a-file",
         lambda f: _save_into(f, _user_file), r"not a folder", OutputError),
    Case("outputs-save-bundle-onto-a-symlink",
         lambda f: _save_into(f, lambda g: (_user_folder(g), (g / "ln").symlink_to("mine"),
                                            g / "ln")[2]),
         r"ln exists and is not a folder", OutputError),
    Case("outputs-save-snn-bundle-into-user-folder", _snn_save_into, r"did not write",
         OutputError),
    Case("outputs-json-onto-a-folder", _json_onto_folder, r"is a folder.*never replaces",
         OutputError),
    Case("outputs-atomic-file-onto-a-folder", _atomic_file_onto_folder, r"is a folder",
         OutputError),
    Case("outputs-run-json-onto-a-folder", _run_with_json_onto_folder, r"figs is a folder"),
]

CASES += [
    Case("outputs-json-under-a-file",
         lambda f: (save_bundle(digits_like_bundle(), f / "b"), _user_file(f),
                    ["run", "b", "--backend", "reference", "--json", "notes.txt/run.json"])[2],
         r"notes.txt is a file, not a folder"),
    Case("outputs-train-under-a-file",
         lambda f: (_user_file(f), ["train", "--out", "notes.txt/b", "--epochs", "1"])[1],
         r"notes.txt is a file, not a folder"),
]

CASES += [
    Case("outputs-demo-into-user-folder",
         lambda f: (_user_folder(f), ["demo", "--out", "mine", "--epochs", "1"])[1],
         r"mine is a folder cimstack did not write"),
    Case("outputs-snn-demo-into-user-folder",
         lambda f: (_user_folder(f), ["demo", "--snn", "--out", "mine", "--epochs", "1"])[1],
         r"mine is a folder cimstack did not write"),
    Case("outputs-verify-report-into-user-folder",
         lambda f: (save_bundle(digits_like_bundle(), f / "b"), _user_folder(f),
                    ["verify", "b", "--report", "mine", "--limit", "2"])[2],
         r"mine is a folder cimstack did not write"),
    Case("outputs-sweep-into-user-folder",
         lambda f: (_user_folder(f), ["sweep", "--out", "mine", "--quick"])[1],
         r"mine is a folder cimstack did not write"),
    Case("outputs-study-into-user-folder",
         lambda f: (_user_folder(f), ["study", "analog", "--out", "mine", "--quick"])[1],
         r"mine is a folder cimstack did not write"),
]
