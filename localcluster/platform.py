"""What a platform team hands a stack before its first `pulumi up`, and the settings that point it at the local
registry: shared by `make up` and the real-node e2e, so both deploy the same way.

- the namespace, labelled Pod Security `restricted`;
- the registry's pull Secret (`kubernetes.io/dockerconfigjson`), named in the stack's `imagePullSecrets`;
- a TLS Secret per `ingress.tls` entry, signed by the cluster's CA;
- the image by the digest the push printed, the namespace not created by the stack, the stack's secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from localcluster.kubectl import Kubectl
from localcluster.pki import Pki, issue
from localcluster.pulumi_cli import Workspace
from localcluster.registry import Login
from tools.stack_config import stack_file_config

PULL_SECRET = "registry-login"
INGRESS_CLASSES = ("nginx",)
"""The ingressClassName the staging and prod stacks use; whichever controller the cluster runs implements it."""
GATEWAY = {"name": "shared", "namespace": "gateway", "listener": "http"}
"""The platform team's shared Gateway the dev stack's HTTPRoute names."""
GATEWAY_CLASS = "platform"


@dataclass(frozen=True)
class ImageReference:
    """An image as the stacks name it: repository (with the registry's host), tag and digest."""

    repository: str
    tag: str
    digest: str


def install_routing(kubectl: Kubectl, ingress_controller: str, gateway_controller: str, listener_port: int) -> None:
    """The routing a platform team provides: the IngressClass the stacks name and the shared Gateway (admitting
    routes from every namespace), both implemented by the named controllers (none need run for them to exist)."""
    for name in INGRESS_CLASSES:
        kubectl.apply(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": name},
                "spec": {"controller": ingress_controller},
            }
        )
    kubectl.apply(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": gateway_controller},
        }
    )
    _create_or_apply(kubectl, "namespace", GATEWAY["namespace"])
    kubectl.apply(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY["name"], "namespace": GATEWAY["namespace"]},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": GATEWAY["listener"],
                        "port": listener_port,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
    )


def _create_or_apply(kubectl: Kubectl, *create_args: str, stdin: str | None = None) -> None:
    """`kubectl create ...` rendered client-side and applied: the same object whether or not it exists already."""
    rendered = kubectl.run("create", *create_args, "--dry-run=client", "-o", "json", stdin=stdin).stdout
    kubectl.run("apply", "-f", "-", stdin=rendered)


def prepare_namespace(
    kubectl: Kubectl,
    pki: Pki,
    stack: str,
    namespace: str,
    registry: tuple[str, Login] | None,
) -> None:
    """The namespace as a platform team hands it over: Pod Security `restricted`, the pull Secret for `registry`
    (host and login; none without it), and the TLS Secrets the stack's Ingress names."""
    _create_or_apply(kubectl, "namespace", namespace)
    kubectl.run("label", "--overwrite", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    if registry is not None:
        host, login = registry
        config = json.dumps(login.docker_config(host))
        _create_or_apply(
            kubectl,
            "secret",
            "docker-registry",
            PULL_SECRET,
            "-n",
            namespace,
            "--from-file=.dockerconfigjson=/dev/stdin",
            stdin=config,
        )
    for entry in tls_entries(stack):
        hosts = tuple(entry["hosts"])
        pair = issue(pki, f"{namespace}-{entry['secretName']}", hosts[0], dns_names=hosts)
        _create_or_apply(
            kubectl, "secret", "tls", entry["secretName"], "-n", namespace, f"--cert={pair.cert}", f"--key={pair.key}"
        )


def tls_entries(stack: str) -> list[dict[str, Any]]:
    """The stack file's `ingress.tls` entries (secretName, hosts)."""
    entries: list[dict[str, Any]] = stack_file_config(stack).get("webapp:ingress", {}).get("tls", [])
    return entries


def set_image(ws: Workspace, image: ImageReference) -> None:
    """Point the stack at `image`, by digest."""
    ws.run(f"pulumi config set --path 'webapp:image.repository' '{image.repository}'")
    ws.run(f"pulumi config set --path 'webapp:image.tag' '{image.tag}'")
    ws.run(f"pulumi config set --path 'webapp:image.digest' '{image.digest}'")


def configure_stack(ws: Workspace, stack: str, image: ImageReference, secret_value: str) -> None:
    """Select (or create) `stack` in `ws` and set what a platform-prepared namespace needs: the image by digest,
    the pull Secret, the namespace left to the platform, and every secret the stack lists set to `secret_value`."""
    ws.run(f"pulumi stack select --create {stack}")
    set_image(ws, image)
    ws.run(f"pulumi config set --path 'webapp:imagePullSecrets[0]' {PULL_SECRET}")
    ws.run("pulumi config set webapp:createNamespace false")
    for name in stack_file_config(stack).get("webapp:secretKeys", []):
        # `--`: a value may begin with "-", which the CLI would otherwise read as a flag (`-s` is --stack).
        ws.run(f"pulumi config set --secret --path 'webapp:secrets.{name}' -- '{secret_value}'")


def public_hosts(stack: str) -> list[str]:
    """The host names `stack` is reached by from outside the cluster: its Ingress hosts or HTTPRoute hostnames."""
    file = stack_file_config(stack)
    ingress, route = file.get("webapp:ingress", {}), file.get("webapp:httpRoute", {})
    hosts: list[str] = ingress["hosts"] if ingress.get("enabled") else route.get("hostnames", [])
    if not hosts:
        raise ValueError(f"stack {stack} is not reachable from outside the cluster (no Ingress hosts or route names)")
    return hosts
