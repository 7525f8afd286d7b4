"""One real cluster for every real-node test module of a run: a control plane, one real node and the registry
`make image` pushed to, started inside the run's own namespaces (`e2e/in-namespaces`) and stopped at its end.

`make e2e` runs the real-node modules in one pytest process, so they share one cluster (its start is paid once).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.stacks import SECRET_VALUE
from localcluster.control_plane import ControlPlane, running_control_plane
from localcluster.image import LOGIN_FILE, STORAGE, BuiltImage
from localcluster.kubectl import Kubectl
from localcluster.node import Node, in_private_namespaces, running_node
from localcluster.platform import ImageReference, configure_stack, prepare_namespace
from localcluster.pulumi_cli import TIMINGS, Workspace
from localcluster.registry import Login, Registry, running_registry

REGISTRY_PORT = 5000
# What runs inside an app's container to report how it runs: uid, gid, capabilities, what it can write.
INSIDE_PROBE = """
import json, os, sys
def writable(path):
    try:
        with open(os.path.join(path, ".e2e-write-check"), "w") as handle:
            handle.write("x")
        os.remove(os.path.join(path, ".e2e-write-check"))
        return True
    except OSError:
        return False
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "cap_eff": status["CapEff"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
    "writable": {path: writable(path) for path in sys.argv[1:]},
}))
"""


@dataclass
class RealCluster:
    """The control plane, its real node and the registry, for the run."""

    plane: ControlPlane
    node: Node
    registry: Registry
    image: BuiltImage

    def prepare_namespace(self, stack: str, namespace: str, *, pull_secret: bool = True) -> None:
        """The namespace as a platform team hands it over (localcluster/platform.py), signed by the e2e's CA."""
        registry = (self.registry.host, self.registry.login) if pull_secret else None
        prepare_namespace(Kubectl(self.plane.kubeconfig), self.plane.pki, stack, namespace, registry)

    def image_reference(self, tag: str, digest: str) -> ImageReference:
        """The app's image in this cluster's registry, by digest."""
        return ImageReference(f"{self.registry.host}/{self.image.repository}", tag, digest)

    def workspace(self, tmp_path: Path, stack: str, **settings: str) -> Workspace:
        """A workspace for `stack` on this cluster: the built image by digest, its pull Secret, the settings given
        (`pulumi config set --path 'webapp:<key>' '<value>'`)."""
        ws = Workspace.create(tmp_path)
        ws.label = f"real node {stack}"
        ws.extra_env["KUBECONFIG"] = str(self.plane.kubeconfig)
        ws.login()
        configure_stack(ws, stack, self.image_reference(self.image.tag, self.image.digest), SECRET_VALUE)
        for key, value in settings.items():
            ws.run(f"pulumi config set --path 'webapp:{key}' '{value}'")
        return ws

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's pods as the API reports them."""
        pods: list[dict[str, Any]] = self.plane.kubectl_json("get", "pods", "-n", namespace)["items"]
        return pods

    def inside(self, namespace: str, pod: str, writable: tuple[str, ...]) -> dict[str, Any]:
        """What the running container reports about itself (kubectl exec through the kubelet), with whether it can
        write each of `writable`."""
        result = self.plane.kubectl("exec", "-n", namespace, pod, "--", "python", "-c", INSIDE_PROBE, *writable)
        report: dict[str, Any] = json.loads(result.stdout)
        return report


@contextlib.contextmanager
def running_real_cluster(base: Path) -> Iterator[RealCluster]:
    """Everything started inside this process's namespaces; stopped, with the node cleaned up, at the end."""
    in_private_namespaces()
    image = BuiltImage.load()
    login = Login.load_or_create(LOGIN_FILE)
    with (
        running_registry(base / "registry", STORAGE, login, port=REGISTRY_PORT) as registry,
        running_control_plane(base / "cluster", with_kwok=False) as plane,
        running_node(base / "node", plane, registry.host) as node,
    ):
        TIMINGS.append(("real node", "start: containerd, kubelet, kube-proxy until Ready", node.started_in))
        yield RealCluster(plane, node, registry, image)
