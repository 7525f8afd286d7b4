"""A real Kubernetes node (containerd, runc, CNI bridge, kubelet, kube-proxy) and Traefik, built by `make node`.

It runs inside the network namespace and private mount namespace that
`e2e/in-namespaces` creates for the test process: the node's bridge, routes,
pod and Service addresses and iptables rules exist only there, and its mounts
vanish with it. Its containers' cgroups live under one root of its own
(localcluster/cgroups.py), removed at the end. Every process is stopped by its own PID,
every wait is bounded, and the logs stay in the node's folder.

What this machine needs of a node (../shared/ENGINE.md, "A real pod ran here"):
cgroup v1 with the cgroupfs driver, containerd clamping oom_score_adj (the
machine withholds CAP_SYS_RESOURCE), a local sandbox image (catatonit, the
pause process podman uses, from Debian), a default route for the node's
InternalIP, and the API server dialling the kubelet by that address.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.http import get
from harness.processes import free_port, wait_until
from localcluster.cgroups import cgroup_root
from localcluster.control_plane import POD_CIDR, ControlPlane
from localcluster.daemons import Daemons
from localcluster.image import PAUSE_ARCHIVE, PAUSE_IMAGE
from localcluster.kubectl import Kubectl
from localcluster.paths import CNI_BIN, NODE_BIN
from localcluster.pki import issue
from localcluster.platform import install_routing

NODE_NAME = "webapp-e2e-node"
NODE_ZONE = "e2e-zone-a"
NODE_IP = "10.250.0.1"
NODE_GATEWAY = "10.250.0.2"
NODE_POD_SUBNET = "10.244.0.0/24"
CGROUP_ROOT = "webapp-e2e-node"
PRIVATE_STATE_DIRECTORIES = (Path("/run/netns"), Path("/var/lib/cni"), Path("/run/containerd"))
NAMESPACE_VARIABLE = "WEBAPP_E2E_NETNS"
INGRESS_HTTP_PORT = 8000
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
INGRESS_CONTROLLER = "traefik.io/ingress-controller"
INGRESS_HTTPS_PORT = 8443
INGRESS_PING_PORT = 8082
START_TIMEOUT_SECONDS = 120


def in_private_namespaces() -> str:
    """The network namespace `e2e/in-namespaces` made for this process; fail (never skip) outside one."""
    name = os.environ.get(NAMESPACE_VARIABLE, "")
    if not name:
        raise RuntimeError(
            "the real-node e2e runs inside its own network and mount namespaces: run it with "
            "`e2e/in-namespaces pytest e2e/test_real_node.py` (as `make e2e` does), as root"
        )
    return name


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _node_network() -> None:
    """The node's own address and a default route, inside this namespace (this kernel has no dummy links)."""
    _ip("link", "add", "e2e-node", "type", "veth", "peer", "name", "e2e-gw")
    _ip("addr", "add", f"{NODE_IP}/24", "dev", "e2e-node")
    _ip("link", "set", "e2e-node", "up")
    _ip("link", "set", "e2e-gw", "up")
    _ip("route", "add", "default", "via", NODE_GATEWAY, "dev", "e2e-node", "onlink")


def _private_state_directories() -> None:
    """Fresh tmpfs mounts, in this private mount namespace, over the host paths the node's parts write to by
    default and cannot be told otherwise (network namespaces, CNI's result cache, containerd's shim sockets):
    nothing of the node lands on the host's disks, and the mounts vanish with the namespace."""
    for path in PRIVATE_STATE_DIRECTORIES:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "webapp-e2e", str(path)], check=True)


def _containerd_config(directory: Path) -> str:
    runtime = '[plugins."io.containerd.cri.v1.runtime"]'
    images = '[plugins."io.containerd.cri.v1.images"]'
    return f"""\
version = 3
root = "{directory / "containerd" / "root"}"
state = "{directory / "containerd" / "state"}"

[grpc]
  address = "{directory / "containerd.sock"}"

{runtime}
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{NODE_BIN / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN}"]
    conf_dir = "{directory / "cni" / "net.d"}"

{images}
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{directory / "certs.d"}"
"""


def _registry_hosts(directory: Path, registry_host: str) -> None:
    """containerd reaches the e2e registry over plain HTTP (it is on loopback)."""
    hosts = directory / "certs.d" / registry_host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f'server = "http://{registry_host}"\n\n[host."http://{registry_host}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def _cni_config(directory: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "webapp-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(directory / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "node", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "node"}}],
        "current-context": "e2e",
    }


@dataclass
class Node:
    """The node's daemons, started against `plane`, pulling from `registry_host`."""

    directory: Path
    plane: ControlPlane
    registry_host: str
    cgroup_name: str = CGROUP_ROOT
    """The cgroup root (in every hierarchy) the pods' containers live under; one per node on a machine."""
    daemons: Daemons = field(init=False)
    started_in: float = 0.0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.daemons = Daemons(self.directory)

    @property
    def socket(self) -> Path:
        """containerd's CRI and API socket."""
        return self.directory / "containerd.sock"

    def _env(self) -> dict[str, str]:
        # containerd finds its shim, and the shim runc, on PATH; kube-proxy needs iptables.
        return {"PATH": f"{NODE_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.directory)}

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        """Start `.engine/node/bin/<name>` with the node's environment (or `env`)."""
        self.daemons.spawn(name, NODE_BIN / name, *args, env=env or self._env(), hint="make node")

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ctr` in containerd's `k8s.io` namespace (where the CRI keeps images and containers)."""
        command = [str(NODE_BIN / "ctr"), f"--address={self.socket}", "--namespace=k8s.io", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True, env=self._env())

    def start(self) -> None:
        """containerd, the sandbox image, kubelet and kube-proxy; return once the Node is Ready."""
        began = time.monotonic()
        _private_state_directories()
        _node_network()
        (self.directory / "config.toml").write_text(_containerd_config(self.directory))
        _registry_hosts(self.directory, self.registry_host)
        conf_dir = self.directory / "cni" / "net.d"
        conf_dir.mkdir(parents=True)
        (conf_dir / "10-webapp-e2e.conflist").write_text(json.dumps(_cni_config(self.directory)))
        self._spawn(
            "containerd",
            f"--config={self.directory / 'config.toml'}",
        )
        wait_until(
            "containerd", lambda: self.ctr("version").returncode == 0, 60, self.daemons.tails, self.daemons.alive
        )
        self._import_pause_image()
        self._start_kubelet()
        self._start_kube_proxy()
        wait_until("the real node Ready", self._ready, START_TIMEOUT_SECONDS, self.tails, self.daemons.alive)
        self._start_ingress_controller()
        self.started_in = time.monotonic() - began

    def _import_pause_image(self) -> None:
        """The sandbox image `make image` built (catatonit -P), imported: no pod needs a pull for it."""
        if not PAUSE_ARCHIVE.exists():
            raise FileNotFoundError(f"no {PAUSE_ARCHIVE}: run `make image`")
        self.ctr("images", "import", str(PAUSE_ARCHIVE))

    def _start_kubelet(self) -> None:
        pki = self.plane.pki
        client = issue(pki, "kubelet-client", f"system:node:{NODE_NAME}", organization="system:nodes")
        serving = issue(pki, "kubelet-serving", NODE_NAME, server_ips=(NODE_IP,))
        kubeconfig = self.directory / "kubelet.kubeconfig"
        server = f"https://127.0.0.1:{self.plane.api_port}"
        kubeconfig.write_text(yaml.safe_dump(_kubeconfig(server, pki.ca_cert, client.cert, client.key)))
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_name}",
            "failSwapOn": False,
            "resolvConf": "",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": NODE_IP,
            "port": 10250,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "readOnlyPort": 0,
            "tlsCertFile": str(serving.cert),
            "tlsPrivateKeyFile": str(serving.key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "podCIDR": NODE_POD_SUBNET,
            "podLogsDir": str(self.directory / "pod-logs"),
            "serializeImagePulls": False,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
        }
        (self.directory / "kubelet.yaml").write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            f"--config={self.directory / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.directory / 'kubelet'}",
            f"--cert-dir={self.directory / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            # A zone, as every cloud node has: prod requires its pods to spread over zones (one zone here).
            f"--node-labels=topology.kubernetes.io/zone={NODE_ZONE}",
            "--v=1",
        )

    def _start_kube_proxy(self) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            # Leave the kernel's conntrack table sizes and timeouts alone (they are not per namespace).
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        (self.directory / "kube-proxy.yaml").write_text(yaml.safe_dump(config))
        self._spawn(
            "kube-proxy",
            f"--config={self.directory / 'kube-proxy.yaml'}",
        )

    def _start_ingress_controller(self) -> None:
        """Traefik on the node's address: the Ingress API and the Gateway API for real, routing to the ready pods
        EndpointSlices list.

        The stacks name the class `nginx`; here an IngressClass of that name is implemented by Traefik (a cluster
        decides which controller implements a class). Traefik writes the node's address into each Ingress's
        status, so the provider's await for an address completes as it does in a cluster. The Gateway the dev
        stack's HTTPRoute names is Traefik's too, its listener on Traefik's HTTP entry point.
        """
        install_routing(Kubectl(self.plane.kubeconfig), INGRESS_CONTROLLER, GATEWAY_CONTROLLER, INGRESS_HTTP_PORT)
        self._spawn(
            "traefik",
            "--log.level=INFO",
            "--accesslog=false",
            "--ping=true",
            f"--entryPoints.traefik.address=127.0.0.1:{INGRESS_PING_PORT}",
            f"--entryPoints.web.address={NODE_IP}:{INGRESS_HTTP_PORT}",
            f"--entryPoints.websecure.address={NODE_IP}:{INGRESS_HTTPS_PORT}",
            "--entryPoints.websecure.http.tls=true",
            "--providers.kubernetesingress=true",
            f"--providers.kubernetesingress.ingressendpoint.ip={NODE_IP}",
            "--providers.kubernetesgateway=true",
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            env={**self._env(), "KUBECONFIG": str(self.plane.kubeconfig)},
        )
        wait_until(
            "traefik /ping",
            lambda: get(INGRESS_PING_PORT, "/ping", 2).status == 200,
            60,
            self.tails,
            self.daemons.alive,
        )

    def _ready(self) -> bool:
        node = self.plane.kubectl_json("get", "node", NODE_NAME)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    def tails(self, lines: int = 25) -> str:
        """The last lines of every node daemon's and control-plane component's log."""
        return self.daemons.tails(lines) + "\n" + self.plane.tails(lines)

    def stop(self) -> None:
        """Stop the pods' containers, the daemons and the shims (the cgroup root and the mounts go with the caller)."""
        for name in ("traefik", "kube-proxy", "kubelet"):
            if name in self.daemons.processes:
                self.daemons.stop(name)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            for task in self.ctr("tasks", "list", "--quiet").stdout.split():
                subprocess.run(
                    [
                        str(NODE_BIN / "ctr"),
                        f"--address={self.socket}",
                        "--namespace=k8s.io",
                        "tasks",
                        "kill",
                        "--signal",
                        "SIGKILL",
                        task,
                    ],
                    capture_output=True,
                    timeout=20,
                    check=False,
                )
        if "containerd" in self.daemons.processes:
            self.daemons.stop("containerd")
        for pid in _shim_pids(self.socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _shim_pids(socket: Path) -> list[int]:
    """The runc shims containerd started for this node (they outlive it, reparented), found by their address."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(socket).encode() in argv:
                pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def running_node(
    directory: Path, plane: ControlPlane, registry_host: str, cgroup_name: str = CGROUP_ROOT
) -> Iterator[Node]:
    """A started real node inside its cgroup root, stopped and cleaned up on exit whatever happened."""
    with cgroup_root(cgroup_name):
        node = Node(directory, plane, registry_host, cgroup_name)
        try:
            node.start()
            yield node
        finally:
            node.stop()
