"""A real Kubernetes control plane on 127.0.0.1, built by `make cluster`, with simulated nodes.

etcd, kube-apiserver (its default admission plugins, PodSecurity among
them; RBAC and Node authorization; service-account token signing), the
controller manager and the scheduler run as they do in a cluster; kwok plays
the kubelets of a few nodes, so pods are scheduled, get IPs, turn Running and
Ready, and Deployments roll. Certificates, keys and the kubeconfig are made
per run in a temporary folder; every port is free when chosen; every process
is stopped by its own PID; every wait is bounded. Logs stay in that folder,
and the last lines of each are printed when a start fails.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.processes import free_port, wait_until
from localcluster.daemons import Daemons
from localcluster.kubectl import Kubectl
from localcluster.paths import CLUSTER_BIN
from localcluster.pki import Pki, create_pki, issue

CRD_BUNDLES = ("monitoring-crds.yaml", "gateway-api-crds.yaml")
"""What `make cluster` writes from the CRD modules (toolchain/build-cluster.sh)."""
CRDS = (
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
)
"""The CRDs the stacks and the e2e use, which must be established before a stack is deployed."""
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
ZONES = ("e2e-zone-a", "e2e-zone-b", "e2e-zone-c")
"""One zone per kwok node, as a cloud cluster spread over three zones labels its nodes."""
START_TIMEOUT_SECONDS = 90


def _kubeconfig(pki: Pki, server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}],
        "users": [
            {"name": "admin", "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)}}
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
        "current-context": "e2e",
    }


def _node(name: str, zone: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": zone,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
        },
    }


@dataclass
class ControlPlane:
    """etcd, the API server, the controller manager, the scheduler and kwok, as child processes."""

    directory: Path
    with_kwok: bool = True
    """False for a cluster whose only node is a real kubelet (localcluster/node.py): no simulated nodes."""
    daemons: Daemons = field(init=False)
    pki: Pki = field(init=False)
    api_port: int = 0
    started_in: float = 0.0

    def __post_init__(self) -> None:
        self.daemons = Daemons(self.directory)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters) of this cluster."""
        return self.directory / "kubeconfig"

    def start(self) -> None:
        """Start every component and wait until the API server is ready and the nodes are Ready."""
        began = time.monotonic()
        self.pki = create_pki(self.directory / "pki", SERVICE_IP)
        self.api_port = free_port()
        self.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(self.pki, f"https://127.0.0.1:{self.api_port}")))
        etcd_port = self._start_etcd()
        self._start_api_server(etcd_port)
        wait_until("kube-apiserver /readyz", self._api_ready, START_TIMEOUT_SECONDS, self.tails, self.alive)
        self._start_controllers()
        if self.with_kwok:
            self._start_kwok()
        self.install_crds()
        wait_until(
            "default ServiceAccount", self._service_accounts_ready, START_TIMEOUT_SECONDS, self.tails, self.alive
        )
        self.started_in = time.monotonic() - began

    def _start_etcd(self) -> int:
        """etcd on loopback, without fsync (a throwaway store); its client port."""
        etcd_port, peer_port = free_port(), free_port()
        self._spawn(
            "etcd",
            "--name=e2e",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        return etcd_port

    def _start_api_server(self, etcd_port: int) -> None:
        """kube-apiserver with its default admission plugins, RBAC, and a client certificate kubelets trust."""
        pki = self.pki
        # `kubectl exec/logs` reach a real kubelet at its InternalIP, with a client certificate it trusts.
        kubelet_client = issue(
            pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters"
        )
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki.server_cert}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_public}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--allow-privileged=true",
            "--profiling=false",
            # The `kubernetes` Service's endpoint would be the advertise address, which may not be loopback.
            "--endpoint-reconciler-type=none",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
        )

    def _start_controllers(self) -> None:
        """The controller manager (Deployments, ReplicaSets, service accounts) and the scheduler."""
        pki, kubeconfig = self.pki, str(self.kubeconfig)
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        self._spawn(
            "kube-controller-manager",
            *common,
            f"--secure-port={free_port()}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        )
        self._spawn("kube-scheduler", *common, f"--secure-port={free_port()}")

    def install_crds(self) -> None:
        """The CRDs a platform team installs, as their projects publish them (taken from their Go modules by `make
        cluster`): the Prometheus Operator's ServiceMonitor and PrometheusRule, and the Gateway API's standard
        channel. The API server then holds the stacks' custom resources to the real schemas."""
        for bundle in CRD_BUNDLES:
            self.kubectl("apply", "--server-side", "-f", str(CLUSTER_BIN / bundle))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{crd}" for crd in CRDS))

    def _start_kwok(self) -> None:
        """kwok, and the simulated nodes it plays the kubelet of, Ready."""
        self._spawn(
            "kwok",
            f"--kubeconfig={self.kubeconfig}",
            f"--config={CLUSTER_BIN / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{free_port()}",
        )
        for name, zone in zip(NODES, ZONES, strict=True):
            self.kubectl("apply", "-f", "-", stdin=json.dumps(_node(name, zone)))
        wait_until("kwok nodes Ready", self._nodes_ready, START_TIMEOUT_SECONDS, self.tails, self.alive)

    def _spawn(self, name: str, *args: str) -> None:
        self.daemons.spawn(name, CLUSTER_BIN / name, *args, hint="make cluster")

    def alive(self) -> bool:
        """True while every component started so far is still running."""
        return self.daemons.alive()

    def _api_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.directory / "pki" / "ca.crt"))
        context.load_cert_chain(str(self.directory / "pki" / "admin.crt"), str(self.directory / "pki" / "admin.key"))
        url = f"https://127.0.0.1:{self.api_port}/readyz"
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:  # not ready yet: it carries the open connection, close it now
            error.close()
            return False

    def _nodes_ready(self) -> bool:
        nodes = self.kubectl_json("get", "nodes")["items"]
        ready = [
            node
            for node in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        ]
        return len(ready) == len(NODES)

    def _service_accounts_ready(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def kubectl_command(self) -> list[str]:
        """The command line prefix of the kubectl built with the control plane, against this cluster."""
        return Kubectl(self.kubeconfig).command()

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with the control plane against this cluster."""
        return Kubectl(self.kubeconfig).run(*args, stdin=stdin, check=check)

    def kubectl_json(self, *args: str) -> Any:
        """`kubectl ... -o json`, parsed."""
        return Kubectl(self.kubeconfig).json(*args)

    def tails(self, lines: int = 25) -> str:
        """The last lines of every component's log, for failure messages."""
        return self.daemons.tails(lines)

    def stop(self) -> None:
        """Stop every component by its own PID, newest first."""
        self.daemons.stop_all()


@contextlib.contextmanager
def running_control_plane(directory: Path, *, with_kwok: bool = True) -> Iterator[ControlPlane]:
    """A started control plane, stopped on exit whatever happened."""
    plane = ControlPlane(directory, with_kwok=with_kwok)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
