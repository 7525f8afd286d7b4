"""`pulumi up` of one committed stack to a cluster, from a persistent workspace under `.local/`: what `make up` runs
after the cluster is there (the local one, or the user's).

The workspace is a fresh copy of the program and the committed stack file on every run, so a changed stack file or
program is what deploys, with the stack's encryption salt carried over; its backend (`.local/pulumi/backend`) and
passphrase (`.local/passphrase`, generated once, never printed) persist. A stack that already serves is rolled
under load through the same route users reach, and any failed request fails the command.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.http import get
from harness.processes import wait_until
from localcluster.image import LOGIN_FILE, BuiltImage
from localcluster.kubectl import Kubectl
from localcluster.lifecycle import PASSPHRASE_FILE, RunningCluster
from localcluster.load import LoadClient, LoadReport
from localcluster.paths import LOCAL
from localcluster.platform import ImageReference, configure_stack, prepare_namespace, public_hosts, tls_entries
from localcluster.pulumi_cli import CommandResult, Workspace
from localcluster.registry import Login
from tools.stack_config import stack_file_config

WORKSPACE_BASE = LOCAL / "pulumi"
SECRET_FILE = LOCAL / "secret-value"
"""The value `make up` gives each of the stack's secrets (generated once per cluster; `make down` removes it)."""
ROUTE_TIMEOUT_SECONDS = 60


class DeployError(RuntimeError):
    """The deploy failed: the message says which step and what the tools printed."""


@dataclass(frozen=True)
class Deployed:
    """What `up` rolled out and how: the digest, seconds, and the load report when it rolled under load."""

    digest: str
    seconds: float
    load: LoadReport | None


def _generated(path: Path) -> str:
    """The secret at `path`, generated (mode 0600) on first use; never printed."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))  # hex: never a leading "-", which a command line would take for a flag
    return path.read_text().strip()


def workspace(stack: str, kubeconfig: Path) -> Workspace:
    """The persistent workspace: a fresh copy of the program and stack files, the backend and salt kept."""
    stack_copy = WORKSPACE_BASE / "project" / f"Pulumi.{stack}.yaml"
    salt = ""
    if stack_copy.exists():
        found = re.search(r"^encryptionsalt: (\S+)$", stack_copy.read_text(), re.MULTILINE)
        salt = found.group(1) if found else ""
    shutil.rmtree(WORKSPACE_BASE / "project", ignore_errors=True)
    ws = Workspace.create(WORKSPACE_BASE)
    if salt:
        stack_copy.write_text(f"encryptionsalt: {salt}\n" + stack_copy.read_text())
    ws.label = f"make up {stack}"
    ws.passphrase = _generated(PASSPHRASE_FILE)
    ws.extra_env["KUBECONFIG"] = str(kubeconfig)
    ws.login()
    return ws


def _run(ws: Workspace, command: str) -> CommandResult:
    result = ws.run(command, check=False)
    if result.returncode != 0:
        raise DeployError(f"`{command}` failed:\n{result.output[-4000:]}")
    return result


def serving(port: int, host_header: str) -> bool:
    """Whether the route answers `GET /` with 200 through the host's forwarded port."""
    return get(port, "/", 5, host="127.0.0.1", host_header=host_header).status == 200


def deploy_local(stack: str, cluster: RunningCluster, previous_digest: str) -> Deployed:
    """Deploy `stack` with the image `make image` pushed, on the local cluster; under load when it serves already."""
    built = BuiltImage.load()
    image = ImageReference(f"{cluster.registry_host}/{built.repository}", built.tag, built.digest)
    namespace = str(stack_file_config(stack)["webapp:namespace"])
    login = Login.load_or_create(LOGIN_FILE)
    prepare_namespace(Kubectl(cluster.kubeconfig), cluster.pki, stack, namespace, (cluster.registry_host, login))
    ws = workspace(stack, cluster.kubeconfig)
    configure_stack(ws, stack, image, _generated(SECRET_FILE))
    host_header = public_hosts(stack)[0]
    port = cluster.ports["http"]
    began = time.monotonic()
    load: LoadReport | None = None
    if previous_digest and serving(port, host_header):
        with LoadClient("127.0.0.1", port, host_header=host_header) as client:
            time.sleep(1)
            _run(ws, "pulumi up --yes --skip-preview")
            time.sleep(2)
        load = client.report
    else:
        _run(ws, "pulumi up --yes --skip-preview")
    seconds = time.monotonic() - began
    wait_until(
        f"{host_header} served through 127.0.0.1:{port}", lambda: serving(port, host_header), ROUTE_TIMEOUT_SECONDS
    )
    if load is not None and load.failures:
        shown = "\n  ".join(load.failures[:10])
        raise DeployError(f"{len(load.failures)} of {load.total} requests failed during the rollout:\n  {shown}")
    return Deployed(built.digest, seconds, load)


def deploy_to(stack: str, kubeconfig: Path) -> Deployed:
    """Deploy `stack` as its stack file says (its own image) to the cluster `kubeconfig` names."""
    ws = workspace(stack, kubeconfig)
    _run(ws, f"pulumi stack select --create {stack}")
    for name in stack_file_config(stack).get("webapp:secretKeys", []):
        _run(ws, f"pulumi config set --secret --path 'webapp:secrets.{name}' -- '{_generated(SECRET_FILE)}'")
    began = time.monotonic()
    _run(ws, "pulumi up --yes --skip-preview")
    return Deployed("", time.monotonic() - began, None)


def access_lines(stack: str, ports: dict[str, int], ca_cert: Path | None) -> list[str]:
    """The URL and the curl lines that reach `stack` from the host, as printed at the end of `make up`."""
    host = public_hosts(stack)[0]
    lines = [
        f"url:  http://{host}/  (reached from this machine through 127.0.0.1:{ports['http']})",
        f"try:  curl -sS -H 'Host: {host}' http://127.0.0.1:{ports['http']}/",
    ]
    tls_hosts = [h for entry in tls_entries(stack) for h in entry["hosts"]]
    if tls_hosts and ca_cert is not None:
        name = tls_hosts[0]
        lines.append(
            f"      curl -sS --cacert {ca_cert} --resolve {name}:{ports['https']}:127.0.0.1 https://{name}:{ports['https']}/"
        )
    return lines
