"""Output folders: cimstack replaces only what it wrote (its marker), an empty folder,
or, with --force, what the user says it may; the bad cases are in bad_cases_outputs.py."""

from __future__ import annotations

import json

import pytest
from conftest import digits_like_bundle

from cimstack.bundle import load_bundle, save_bundle
from cimstack.errors import OutputError
from cimstack.fileio import MARKER, atomic_folder, check_output_folder, claim_folder, is_inside


def test_a_bundle_folder_is_marked_and_replaced_on_the_next_save(tmp_path):
    b = digits_like_bundle()
    save_bundle(b, tmp_path / "b")
    assert json.loads((tmp_path / "b" / MARKER).read_text())["kind"] == "bundle"
    (tmp_path / "b" / "stale.npy").write_bytes(b"old")     # left by an earlier export
    save_bundle(b, tmp_path / "b")
    assert not (tmp_path / "b" / "stale.npy").exists()
    assert load_bundle(tmp_path / "b").name == b.name


def test_an_empty_folder_is_taken_and_a_user_folder_only_with_force(tmp_path):
    (tmp_path / "empty").mkdir()
    save_bundle(digits_like_bundle(), tmp_path / "empty")
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="did not write"):
        save_bundle(digits_like_bundle(), user)
    assert (user / "mine.txt").read_text() == "x"
    save_bundle(digits_like_bundle(), user, force=True)
    assert not (user / "mine.txt").exists() and (user / MARKER).is_file()


def test_a_failed_write_keeps_the_previous_folder(tmp_path):
    save_bundle(digits_like_bundle(), tmp_path / "b")
    before = sorted(p.name for p in (tmp_path / "b").iterdir())
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "b") as tmp:
            (tmp / "half.npy").write_bytes(b"")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]          # no temporary left


def test_a_folder_that_changes_hands_while_writing_is_not_replaced(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(OutputError, match="did not write"):
        with atomic_folder(dest) as tmp:
            (tmp / "a.txt").write_text("a")
            dest.mkdir()                                  # the user made it meanwhile
            (dest / "theirs.txt").write_text("b")
    assert (dest / "theirs.txt").read_text() == "b"


def test_is_inside(tmp_path):
    assert is_inside(tmp_path / "a" / "b", tmp_path / "a")
    assert is_inside(tmp_path / "a", tmp_path / "a")
    assert not is_inside(tmp_path / "a", tmp_path / "a" / "b")
    assert not is_inside(tmp_path / "ab", tmp_path / "a")
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"


def test_a_run_folder_may_be_a_link_to_a_folder_a_bundle_folder_may_not(tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "disk")
    assert claim_folder(tmp_path / "runs", kind="run") == tmp_path / "runs"
    assert (tmp_path / "disk" / MARKER).is_file()                # marked through the link
    with pytest.raises(OutputError, match="not a folder"):
        save_bundle(digits_like_bundle(), tmp_path / "runs")     # would replace the link
    assert (tmp_path / "runs").is_symlink()
