"""A clone of this checkout that shares its builds, for running `make up` as a user would (e2e and bench).

The clone links this checkout's virtualenv and every entry of `.engine/` but the image's folder, which it copies,
so a rebuild after a change in the clone never touches this checkout's image. Its files are dated back so make
sees the shared builds as current for the clone's sources, as it does in a clone where they were built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from localcluster.paths import ENGINE
from tools.stack_config import REPO_ROOT

MAKE_TIMEOUT_SECONDS = 900


def clone_with_builds(base: Path) -> Path:
    """`git clone` of this checkout's HEAD under `base`, sharing `.venv` and `.engine`; its path."""
    clone = base / "webapp"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    (clone / ".engine").mkdir()
    for entry in ENGINE.iterdir():
        if entry.name == "image":
            shutil.copytree(entry, clone / ".engine" / "image", symlinks=True)
        else:
            (clone / ".engine" / entry.name).symlink_to(entry)
    subprocess.run(
        ["find", str(clone), "-path", str(clone / ".engine"), "-prune", "-o", "-path", str(clone / ".venv"),
         "-prune", "-o", "-exec", "touch", "-h", "-d", "2000-01-01", "{}", "+"],
        check=True,
    )  # fmt: skip
    return clone


def make(clone: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    """`make targets...` in `clone`, with none of this environment's Kubernetes or Pulumi settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBE", "PULUMI_", "VIRTUAL_ENV"))}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(clone), *targets],
        capture_output=True,
        text=True,
        timeout=MAKE_TIMEOUT_SECONDS,
        env=env,
        check=False,
    )
