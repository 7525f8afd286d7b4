"""A copy of what the container image holds (a Python, the app's pinned packages, app/), readable by any user.

The image runs as uid 10001, which may be unable to reach this checkout or the
interpreter behind `.venv` (a clone under /root, a pyenv Python in a 0700 home).
The unprivileged-server test therefore runs uid 10001 on this copy, laid out in
a world-traversable directory the way the image lays it out, instead of
depending on where the repository was cloned.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.stack_config import REPO_ROOT

APP_REQUIREMENTS = REPO_ROOT / "app" / "requirements.txt"
# Parts of the standard library the server never imports; leaving them out keeps the copy at ~70 MB.
STDLIB_LEFT_OUT = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__")


@dataclass(frozen=True)
class ImageRuntime:
    """The copied interpreter and what a process needs in its environment to run `python -m app` from the copy."""

    root: Path
    python: Path
    env: dict[str, str]


def app_distributions() -> list[str]:
    """The distribution names app/requirements.txt pins (what the image installs)."""
    lines = APP_REQUIREMENTS.read_text().splitlines()
    return [re.split(r"[=<>~!\[ ]", line, maxsplit=1)[0] for line in lines if line and not line.startswith("#")]


def _copy_interpreter(prefix: Path) -> Path:
    """The base interpreter (not the venv's symlink), its stdlib and, if shared, libpython, laid out under `prefix`."""
    base_executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    stdlib = Path(sysconfig.get_path("stdlib"))
    python = prefix / "bin" / base_executable.name
    python.parent.mkdir(parents=True)
    shutil.copy2(base_executable, python)
    # Python finds its prefix from the executable's location: lib/pythonX.Y beside bin/.
    shutil.copytree(stdlib, prefix / "lib" / stdlib.name, ignore=shutil.ignore_patterns(*STDLIB_LEFT_OUT))
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = Path(str(sysconfig.get_config_var("LIBDIR")))
        soname = str(sysconfig.get_config_var("INSTSONAME"))
        shutil.copy2(libdir / soname, prefix / "lib" / soname)
    return python


def _copy_distributions(site_packages: Path) -> None:
    """Every file the app's pinned distributions installed into site-packages (no console scripts)."""
    for name in app_distributions():
        distribution = importlib.metadata.distribution(name)
        installed_into = Path(str(distribution.locate_file(""))).resolve()
        for file in distribution.files or ():
            source = Path(str(distribution.locate_file(file))).resolve()
            if not source.is_relative_to(installed_into) or not source.is_file():
                continue
            target = site_packages / source.relative_to(installed_into)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build_image_runtime() -> ImageRuntime:
    """Lay out the copy in a new world-readable temporary directory; the caller removes `root`."""
    root = Path(tempfile.mkdtemp(prefix="webapp-image-runtime-"))
    root.chmod(0o755)
    prefix = root / "python"
    python = _copy_interpreter(prefix)
    site_packages = root / "site-packages"
    _copy_distributions(site_packages)
    source = root / "srv"
    shutil.copytree(REPO_ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": f"{source}:{site_packages}", "LD_LIBRARY_PATH": str(prefix / "lib")}
    return ImageRuntime(root=root, python=python, env=env)
