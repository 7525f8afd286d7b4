"""The kubectl `make cluster` builds, against one kubeconfig: the one way this package talks to a cluster."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.paths import CLUSTER_BIN

TIMEOUT_SECONDS = 120


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message has its arguments and what it printed."""


@dataclass(frozen=True)
class Kubectl:
    """kubectl with `--kubeconfig=kubeconfig`."""

    kubeconfig: Path

    def command(self) -> list[str]:
        """The command line prefix of the built kubectl against this kubeconfig."""
        return [str(CLUSTER_BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}"]

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `kubectl args...`; with `check`, a non-zero exit raises KubectlError naming it."""
        result = subprocess.run(
            [*self.command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        """`kubectl ... -o json`, parsed."""
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any]) -> None:
        """`kubectl apply` one object (creates it, or leaves an equal one as it is)."""
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))
