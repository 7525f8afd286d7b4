"""Where the workers' metric files live: a fresh directory per server start.

prometheus_client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR set
before it is first imported, and a directory holding no files from an
earlier run (the pod's /tmp is an emptyDir, which outlives a container
restart). The master creates one under the temporary directory, exports it
to the workers it forks, and removes it when it exits.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def use_fresh_directory() -> str:
    """Create an empty metrics directory and point prometheus_client at it; refuse if it is already loaded."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the metrics directory was set, so it runs in single-process "
            "mode and would miss the workers' metrics; import app.metrics only after use_fresh_directory()."
        )
    path = tempfile.mkdtemp(prefix="webapp-metrics-")
    os.environ[ENV_VAR] = path
    return path


def remove_directory(path: str) -> None:
    """Delete the metrics directory at server exit."""
    shutil.rmtree(path, ignore_errors=True)
