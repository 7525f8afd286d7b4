"""The local cluster's keys are private from the moment they exist (localcluster/pki.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from localcluster.pki import create_pki, issue


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_key_is_created_readable_by_its_owner_alone_in_a_directory_only_its_owner_enters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Narrowing a file's mode after writing it leaves a window in which another user reads the key: with every
    # later chmod made a no-op, only a key created 0600 passes.
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    old_umask = os.umask(0o022)
    try:
        pki = create_pki(tmp_path / "pki", "10.96.0.1")
        kubelet = issue(pki, "kubelet", "system:node:n1", organization="system:nodes")
    finally:
        os.umask(old_umask)
    keys = sorted((tmp_path / "pki").glob("*.key"))
    assert {key.name for key in keys} >= {"ca.key", "apiserver.key", "admin.key", "sa.key", "kubelet.key"}
    assert kubelet.key in keys
    assert {key.name: _mode(key) for key in keys} == {key.name: 0o600 for key in keys}


def test_the_pki_directory_admits_its_owner_alone(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    directory.mkdir(mode=0o755)
    create_pki(directory, "10.96.0.1")
    assert _mode(directory) == 0o700


def test_a_key_left_by_an_earlier_run_with_a_wider_mode_is_rewritten_private(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    directory.mkdir()
    (directory / "ca.key").write_text("old")
    (directory / "ca.key").chmod(0o644)
    create_pki(directory, "10.96.0.1")
    assert _mode(directory / "ca.key") == 0o600


def test_a_key_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    directory.mkdir()
    elsewhere = tmp_path / "elsewhere"
    (directory / "ca.key").symlink_to(elsewhere)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        create_pki(directory, "10.96.0.1")
    assert not elsewhere.exists()
