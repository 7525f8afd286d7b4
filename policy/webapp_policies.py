"""Policies for Kubernetes resources: the "Common Mistakes" of the seed, made loud at preview time.

Each policy's validation function takes Pulumi's validation args (only
`resource_type` and `props`, the camelCase Kubernetes object, are read) and
a `report_violation` callback. Props arrive as read-only Mapping/Sequence
proxies; reading a value Pulumi cannot know yet during a preview raises,
and pulumi_policy reports that as an advisory "can't run during preview",
never as a violation. So the functions read only the fields they check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

try:  # imported as the `policy` package (the tests)
    from .webapp_rules import (
        MANAGEMENT_PORT_NAME,
        TEST_ROUTES_ENV,
        annotation_problem,
        credential_problem,
        looks_secret,
        namespace_problem,
        node_selection_problem,
        toleration_problem,
        unpinned_image_problem,
    )
except ImportError:  # run by the CLI, with the pack's own folder on sys.path
    from webapp_rules import (  # type: ignore[no-redef]
        MANAGEMENT_PORT_NAME,
        TEST_ROUTES_ENV,
        annotation_problem,
        credential_problem,
        looks_secret,
        namespace_problem,
        node_selection_problem,
        toleration_problem,
        unpinned_image_problem,
    )

ReportViolation = Callable[..., None]

WORKLOADS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


class ResourceArgs(Protocol):
    """What the validations read from pulumi_policy's ResourceValidationArgs / PolicyResource."""

    resource_type: str
    props: Mapping[str, Any]


class StackArgs(Protocol):
    """What the stack validation reads from pulumi_policy's StackValidationArgs."""

    @property
    def resources(self) -> list[Any]: ...


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _pod(args: ResourceArgs) -> Mapping[str, Any] | None:
    path = WORKLOADS.get(args.resource_type)
    pod = _dig(args.props, *path) if path else None
    return pod if isinstance(pod, Mapping) else None


def _containers(args: ResourceArgs) -> Iterator[Mapping[str, Any]]:
    pod = _pod(args)
    if pod is None:
        return
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for item in pod.get(field) or []:
            if isinstance(item, Mapping):
                yield item


def _kind(args: ResourceArgs) -> str:
    return args.resource_type.rsplit(":", 1)[-1]


def validate_requests_and_limits(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """Every container sets cpu and memory requests and limits (no resource limits: a noisy neighbour)."""
    for container in _containers(args):
        resources = container.get("resources") or {}
        missing = [
            f"{section}.{resource}"
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if not _dig(resources, section, resource)
        ]
        if missing:
            report_violation(
                f"{_kind(args)} container {container.get('name')!r} sets no {', '.join(missing)}; "
                "set requests and limits for cpu and memory."
            )


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned, or None when it is (a version tag or a digest)."""
    if not isinstance(image, str) or not image:
        return None if image is None else "has no image"
    return unpinned_image_problem(image)


def validate_image_pinned(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No container runs `latest` or an untagged image: what runs must be traceable and reversible."""
    for container in _containers(args):
        problem = image_problem(container.get("image"))
        if problem:
            report_violation(
                f"{_kind(args)} container {container.get('name')!r}: {problem}; pin a semantic version or digest."
            )


def validate_readiness_probe(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """Every Deployment container has a readiness probe, so traffic waits for ready pods."""
    if args.resource_type != DEPLOYMENT:
        return
    pod = _dig(args.props, "spec", "template", "spec") or {}
    for container in pod.get("containers") or []:
        if isinstance(container, Mapping) and not container.get("readinessProbe"):
            report_violation(
                f"Deployment container {container.get('name')!r} has no readinessProbe; "
                "traffic would reach it before it is ready."
            )


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def validate_probes_use_the_management_port(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """A container with a management port is probed there: on the traffic port a probe waits behind busy
    request threads, times out, and gets a pod that was only busy restarted."""
    for container in _containers(args):
        ports = [port for port in container.get("ports") or [] if isinstance(port, Mapping)]
        management = [port for port in ports if port.get("name") == MANAGEMENT_PORT_NAME]
        if not management:
            continue
        allowed = {MANAGEMENT_PORT_NAME, management[0].get("containerPort")}
        for probe in PROBES:
            http_get = _dig(container, probe, "httpGet")
            if isinstance(http_get, Mapping) and http_get.get("port") not in allowed:
                report_violation(
                    f"{_kind(args)} container {container.get('name')!r}: {probe} calls {http_get.get('path')!r} on "
                    f"port {http_get.get('port')!r}, where it waits behind busy request threads; "
                    f"probe the {MANAGEMENT_PORT_NAME!r} port."
                )


def validate_no_secrets_in_configmap(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """ConfigMap keys never look like secrets and no value holds a credential: ConfigMaps sit unencrypted in etcd,
    readable by whoever may read the namespace's configuration."""
    if args.resource_type != CONFIG_MAP:
        return
    for field in ("data", "binaryData"):
        for key in _dig(args.props, field) or {}:
            if looks_secret(str(key)):
                report_violation(f"ConfigMap key {key!r} looks like a secret; put it in a Secret instead.")
    for key, value in (_dig(args.props, "data") or {}).items():
        credential = credential_problem(value) if isinstance(value, str) else None
        if credential:
            report_violation(f"ConfigMap key {key!r} holds {credential}; put it in a Secret instead.")


def _is_kubernetes(args: ResourceArgs) -> bool:
    return args.resource_type.startswith("kubernetes:")


def validate_no_controller_snippets(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No object carries a configuration snippet: raw text an ingress controller pastes into the configuration it
    shares with every host it serves."""
    if not _is_kubernetes(args):
        return
    for key in _dig(args.props, "metadata", "annotations") or {}:
        problem = annotation_problem(str(key))
        if problem:
            report_violation(f"{_kind(args)} annotation {problem}.")


def validate_outside_the_clusters_namespaces(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No object lives in (and no Namespace object is) one of the cluster's own namespaces: default, kube-system,
    kube-public, kube-node-lease or any other kube-*."""
    if not _is_kubernetes(args):
        return
    field = "name" if _kind(args) == "Namespace" else "namespace"
    namespace = _dig(args.props, "metadata", field)
    problem = namespace_problem(namespace) if isinstance(namespace, str) else None
    if problem:
        report_violation(f"{_kind(args)} {_dig(args.props, 'metadata', 'name')!r}: {problem}.")


def _node_affinity_terms(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    node_affinity = _dig(pod, "affinity", "nodeAffinity") or {}
    yield from _dig(node_affinity, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms") or []
    for preferred in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        yield _dig(preferred, "preference") or {}


def validate_off_the_control_plane(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No pod selects the control plane's nodes or tolerates their taint, and no toleration tolerates every taint:
    the app's pods never run beside the API server and etcd."""
    pod = _pod(args)
    if pod is None:
        return
    problems = [node_selection_problem(str(key)) for key in pod.get("nodeSelector") or {}]
    problems += [
        node_selection_problem(str(requirement.get("key")), str(requirement.get("operator")))
        for term in _node_affinity_terms(pod)
        for requirement in _dig(term, "matchExpressions") or []
        if isinstance(requirement, Mapping)
    ]
    problems += [
        toleration_problem(toleration.get("key"), str(toleration.get("operator", "Equal")))
        for toleration in pod.get("tolerations") or []
        if isinstance(toleration, Mapping)
    ]
    for problem in problems:
        if problem:
            report_violation(f"{_kind(args)} pod: {problem}.")


def validate_no_test_routes(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No container turns on the app's test routes, and no ConfigMap carries the switch (test stacks only)."""
    for container in _containers(args):
        for variable in container.get("env") or []:
            turned_on = isinstance(variable, Mapping) and variable.get("value") != "false"
            if isinstance(variable, Mapping) and variable.get("name") == TEST_ROUTES_ENV and turned_on:
                report_violation(
                    f"{_kind(args)} container {container.get('name')!r} sets {TEST_ROUTES_ENV}="
                    f"{variable.get('value')!r}: the test routes let anonymous clients hold request threads for 30 s "
                    "each. Only test stacks set enableTestRoutes, and never under this policy pack."
                )
    if args.resource_type == CONFIG_MAP and TEST_ROUTES_ENV in (_dig(args.props, "data") or {}):
        report_violation(f"ConfigMap sets {TEST_ROUTES_ENV}: the test routes are for test stacks only.")


def validate_images_by_digest(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """Every container runs an image pinned by digest: the deploy workflow ships only what was built and tested."""
    for container in _containers(args):
        image = str(container.get("image") or "")
        if "@sha256:" not in image:
            report_violation(
                f"{_kind(args)} container {container.get('name')!r} runs {image!r} by tag only; the deploy workflow "
                "ships digests: promote one with `python -m tools.promote` (see README, Shipping an image)."
            )


HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
"""What Kubernetes' restricted Pod Security Standard lets a container add back after dropping ALL."""


def validate_pods_share_nothing_with_the_node(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """No pod joins the node's network, process or IPC namespace, mounts a node path or binds a node port: each
    hands a compromised container the node (the Pod Security Standards' baseline)."""
    pod = _pod(args)
    if pod is None:
        return
    shared = [field for field in HOST_NAMESPACES if pod.get(field) is True]
    if shared:
        report_violation(f"{_kind(args)} pod sets {', '.join(shared)}: it would share the node's namespaces.")
    for volume in pod.get("volumes") or []:
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            path = _dig(volume, "hostPath", "path")
            report_violation(
                f"{_kind(args)} volume {volume.get('name')!r} mounts the node's {path!r} (hostPath); use an "
                "emptyDir, a ConfigMap, a Secret or a PersistentVolumeClaim."
            )
    for container in _containers(args):
        for port in container.get("ports") or []:
            if isinstance(port, Mapping) and port.get("hostPort"):
                report_violation(
                    f"{_kind(args)} container {container.get('name')!r} binds the node's port {port.get('hostPort')} "
                    "(hostPort); reach it through a Service."
                )


def _container_problems(container: Mapping[str, Any], pod_context: Mapping[str, Any]) -> list[str]:
    context = container.get("securityContext") or {}
    problems = []
    if context.get("privileged") is True:
        problems.append("runs privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("does not set allowPrivilegeEscalation: false")
    added = sorted(set(_dig(context, "capabilities", "add") or []) - ALLOWED_CAPABILITIES)
    if added:
        problems.append(f"adds the capabilities {', '.join(added)}")
    if "ALL" not in (_dig(context, "capabilities", "drop") or []):
        problems.append("does not drop ALL capabilities")
    run_as_user = context.get("runAsUser", pod_context.get("runAsUser"))
    if run_as_user == 0:
        problems.append("runs as root (runAsUser: 0)")
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        problems.append("does not set runAsNonRoot: true")
    return problems


def validate_containers_run_unprivileged(args: ResourceArgs, report_violation: ReportViolation) -> None:
    """Every container runs as a non-root user, unprivileged, unable to gain privileges, with every capability
    dropped but NET_BIND_SERVICE (the Pod Security Standards' restricted profile)."""
    pod = _pod(args)
    if pod is None:
        return
    pod_context = pod.get("securityContext") or {}
    for container in _containers(args):
        problems = _container_problems(container, pod_context)
        if problems:
            report_violation(f"{_kind(args)} container {container.get('name')!r} {'; '.join(problems)}.")


def _replicas(deployment: Any, hpas: list[Any]) -> int:
    replicas = _dig(deployment.props, "spec", "replicas")
    count = int(replicas) if isinstance(replicas, int | float) else 1
    for hpa in hpas:
        target = _dig(hpa.props, "spec", "scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == _dig(deployment.props, "metadata", "name"):
            minimum = _dig(hpa.props, "spec", "minReplicas")
            if isinstance(minimum, int | float):
                count = max(count, int(minimum))
    return count


def _covers(pdb: Any, labels: Mapping[str, Any]) -> bool:
    selector = _dig(pdb.props, "spec", "selector", "matchLabels")
    return isinstance(selector, Mapping) and bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def validate_disruption_budgets(args: StackArgs, report_violation: ReportViolation) -> None:
    """A Deployment running more than one replica has a PodDisruptionBudget selecting its pods."""
    resources = list(args.resources)
    pdbs = [r for r in resources if r.resource_type == PDB]
    hpas = [r for r in resources if r.resource_type == HPA]
    for deployment in (r for r in resources if r.resource_type == DEPLOYMENT):
        replicas = _replicas(deployment, hpas)
        labels = _dig(deployment.props, "spec", "template", "metadata", "labels") or {}
        if replicas > 1 and not any(_covers(pdb, labels) for pdb in pdbs):
            report_violation(
                f"Deployment {deployment.name!r} runs {replicas} replicas but no PodDisruptionBudget selects "
                "its pods; a node drain could evict them all at once.",
                getattr(deployment, "urn", None),
            )


RESOURCE_CHECKS: dict[str, tuple[str, Callable[[ResourceArgs, ReportViolation], None]]] = {
    "containers-set-requests-and-limits": (
        "Containers set cpu and memory requests and limits.",
        validate_requests_and_limits,
    ),
    "images-are-pinned": (
        "Container images carry a version tag or digest, never latest or none.",
        validate_image_pinned,
    ),
    "deployments-have-readiness-probes": ("Deployment containers have a readiness probe.", validate_readiness_probe),
    "configmaps-hold-no-secrets": (
        "ConfigMap keys do not look like secrets, and no value holds a credential.",
        validate_no_secrets_in_configmap,
    ),
    "no-test-routes": ("No workload turns on the app's test routes.", validate_no_test_routes),
    "probes-use-the-management-port": (
        "Containers with a management port are probed on it, never behind request threads.",
        validate_probes_use_the_management_port,
    ),
    "pods-share-nothing-with-the-node": (
        "Pods use no host namespace, hostPath volume or hostPort.",
        validate_pods_share_nothing_with_the_node,
    ),
    "containers-run-unprivileged": (
        "Containers run as non-root, unprivileged, without privilege escalation, with capabilities dropped.",
        validate_containers_run_unprivileged,
    ),
    "no-controller-snippets": (
        "No object carries a configuration snippet for a shared ingress controller.",
        validate_no_controller_snippets,
    ),
    "outside-the-clusters-namespaces": (
        "No object lives in default, kube-system, kube-public, kube-node-lease or another kube-* namespace.",
        validate_outside_the_clusters_namespaces,
    ),
    "pods-stay-off-the-control-plane": (
        "Pods neither select nor tolerate the control plane's nodes, and tolerate no taint by a key-less toleration.",
        validate_off_the_control_plane,
    ),
}
"""Each resource policy's name, description and validation, for the pack and for tests that run them all."""

STACK_CHECKS: dict[str, tuple[str, Callable[[StackArgs, ReportViolation], None]]] = {
    "replicated-deployments-have-disruption-budgets": (
        "Deployments with more than one replica have a PodDisruptionBudget.",
        validate_disruption_budgets,
    ),
}
"""Each stack policy's name, description and validation."""

DIGEST_POLICY = "images-by-digest"
"""Off in the pack; `policy/deploy-config.json` turns it on, mandatory, wherever the workflows run the pack."""
DEPLOY_CONFIG = "deploy-config.json"

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    *(
        ResourceValidationPolicy(name=name, description=description, validate=validate)
        for name, (description, validate) in RESOURCE_CHECKS.items()
    ),
    *(
        StackValidationPolicy(name=name, description=description, validate=validate)
        for name, (description, validate) in STACK_CHECKS.items()
    ),
    ResourceValidationPolicy(
        name=DIGEST_POLICY,
        description="Container images are pinned by digest (enabled by policy/deploy-config.json).",
        validate=validate_images_by_digest,
        enforcement_level=EnforcementLevel.DISABLED,
    ),
]
