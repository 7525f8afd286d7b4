"""The server runs as the image's user: uid 10001, no writable home, read-only working directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.image_runtime import ImageRuntime, build_image_runtime

SETPRIV = shutil.which("setpriv")


def _unprivileged_prefix() -> list[str]:
    """As root: switch to the image's uid 10001 with setpriv. As anyone else: already unprivileged, run as is."""
    if os.geteuid() != 0:
        return []
    assert SETPRIV is not None, "setpriv (util-linux) is needed to run the server as uid 10001"
    return [SETPRIV, "--reuid", "10001", "--regid", "10001", "--clear-groups"]


@pytest.fixture(scope="module")
def image_runtime() -> Iterator[ImageRuntime]:
    """The image's contents copied where uid 10001 can read them, wherever this checkout lives."""
    runtime = build_image_runtime()
    yield runtime
    shutil.rmtree(runtime.root)


@pytest.mark.slow
def test_serves_and_drains_unprivileged_without_writable_files(
    start_app: StartServer, image_runtime: ImageRuntime
) -> None:
    server = start_app(
        prefix=_unprivileged_prefix(),
        python=image_runtime.python,
        cwd=Path("/"),
        HOME="/nonexistent",
        PYTHONDONTWRITEBYTECODE="1",
        DRAIN_SECONDS="0",
        **image_runtime.env,
    )
    server.wait_until_ready()
    assert server.get("/").status == 200
    assert server.probe("/metrics").status == 200
    assert server.terminate(timeout=20) == 0
    assert server.stderr() == ""
