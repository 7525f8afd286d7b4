"""WebService: a Deployment, its Service and NetworkPolicy, plus a PodDisruptionBudget and autoscaler when they apply.

The pod spec carries what the on-call engineer relies on: probes wired to
the app's /ready and /healthz, a termination grace period that covers the
app's drain and in-flight requests, zero-unavailable rolling updates, a
restricted security context, and the recommended labels. Each object has a
builder of its own: the pod in `components.pod`, the disruption budget and
autoscaler in `components.availability`, the rest below; `WebService.__init__`
lists what it creates.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.availability import autoscaler, disruption_budget
from webapp_platform.components.awaits import FORCE_APPLY, rollout_await
from webapp_platform.components.labels import workload_labels
from webapp_platform.components.pod import CONTAINER_PORT_NAME, pod_spec, port_name, scrape_annotations
from webapp_platform.components.service_args import ServiceObjects, WebServiceArgs
from webapp_platform.config.rules import (
    DNS_LABEL,
    MANAGEMENT_PORT_NAME,
    published_metrics_problem,
)

__all__ = ["WebService", "WebServiceArgs"]


class WebService(pulumi.ComponentResource):
    """A health-checked HTTP service: Deployment, Service, and PDB/HPA when they apply."""

    deployment_name: pulumi.Output[str]
    """Name of the Deployment."""
    service_name: pulumi.Output[str]
    """Name of the Service."""
    selector: dict[str, str]
    """Labels selecting this service's pods."""

    def __init__(self, name: str, args: WebServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("webapp:index:WebService", name, None, opts)
        _check(name, args)
        objects = ServiceObjects(name, args, pulumi.ResourceOptions(parent=self))
        account = _service_account(objects)
        deployment = _deployment(objects, account)
        service = _service(objects)
        _network_policy(objects)
        if args.metrics.service_monitor:
            _service_monitor(objects)
        if args.several_pods and args.own_disruption_budget:
            disruption_budget(objects)
        if args.autoscaled:
            autoscaler(objects, deployment)

        self.selector = objects.selector
        self.deployment_name = deployment.metadata.name
        self.service_name = service.metadata.name
        self.register_outputs(
            {"deployment_name": self.deployment_name, "service_name": self.service_name, "selector": self.selector}
        )


def _check(name: str, args: WebServiceArgs) -> None:
    if not DNS_LABEL.match(args.object_name):
        raise ValueError(f"WebService {name!r}: object_name {args.object_name!r} is not a DNS label, e.g. webapp")
    if args.replicas < 1:
        raise ValueError(f"WebService {name!r}: replicas is {args.replicas}; it must be at least 1")
    problem = published_metrics_problem(args.service.type, args.metrics.service_monitor)
    if problem:
        raise ValueError(f"WebService {name!r}: {problem}")
    if args.metrics.service_monitor and args.app.metrics is None:
        raise ValueError(
            f"WebService {name!r}: metrics.service_monitor scrapes the app's metrics, and its contract says it "
            "publishes none (app.metrics is None); turn the ServiceMonitor off or give app.metrics"
        )


def _service_account(objects: ServiceObjects) -> k8s.core.v1.ServiceAccount:
    # The stack's own identity instead of the namespace's `default`, so RBAC and cloud workload identity can be
    # granted to this app alone; the pods still never mount its token (the app calls no Kubernetes API).
    return k8s.core.v1.ServiceAccount(
        f"{objects.name}-sa",
        metadata=objects.metadata(annotations=dict(objects.args.service_account.annotations) or None),
        automount_service_account_token=False,
        opts=objects.opts,
    )


def _deployment(objects: ServiceObjects, account: k8s.core.v1.ServiceAccount) -> k8s.apps.v1.Deployment:
    args = objects.args
    versioned = workload_labels(args.labels, args.image.tag)
    return k8s.apps.v1.Deployment(
        f"{objects.name}-deploy",
        metadata=objects.metadata(
            versioned,
            # `pulumi up` gives up on a rollout when Kubernetes does, naming the cause (an image that
            # cannot be pulled, a pod that never turns Ready); the previous pods keep serving meanwhile.
            {**FORCE_APPLY, **rollout_await(args.rollout_timeout_seconds)},
        ),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=args.initial_replicas,
            progress_deadline_seconds=args.rollout_timeout_seconds,
            revision_history_limit=5,
            selector=objects.match(),
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=versioned, annotations=scrape_annotations(args.app)),
                spec=pod_spec(objects, account.metadata.name),
            ),
        ),
        # The autoscaler owns the replica count once it exists; `pulumi up` must not reset it.
        opts=pulumi.ResourceOptions.merge(objects.opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))
        if args.autoscaled
        else objects.opts,
    )


def _service(objects: ServiceObjects) -> k8s.core.v1.Service:
    args = objects.args
    ports = [
        k8s.core.v1.ServicePortArgs(
            name=CONTAINER_PORT_NAME, port=args.service.port, target_port=CONTAINER_PORT_NAME, protocol="TCP"
        )
    ]
    metrics = args.app.metrics
    if args.metrics.service_monitor and metrics is not None and metrics.port == "management":
        # Only for the ServiceMonitor, which names a Service port; the settings keep it off NodePort and
        # LoadBalancer Services.
        ports.append(
            k8s.core.v1.ServicePortArgs(
                name=MANAGEMENT_PORT_NAME,
                port=args.app.port_number("management"),
                target_port=MANAGEMENT_PORT_NAME,
                protocol="TCP",
            )
        )
    return k8s.core.v1.Service(
        f"{objects.name}-svc",
        # On a create the provider waits for the Service's endpoints too: the same bound as the Deployment's.
        metadata=objects.metadata(annotations=rollout_await(args.rollout_timeout_seconds)),
        spec=k8s.core.v1.ServiceSpecArgs(type=args.service.type, selector=objects.selector, ports=ports),
        opts=objects.opts,
    )


def _namespace_peer(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": namespace})
    )


def _network_policy(objects: ServiceObjects) -> k8s.networking.v1.NetworkPolicy:
    # Admit traffic on the HTTP port from the proxies' namespaces when they are named (the app may believe their
    # X-Forwarded-For, so no one else may reach it), else from anywhere; the management port (/metrics) from
    # Prometheus' namespace only. kubelet's probes come from the node, which NetworkPolicies do not restrict.
    # Egress stays open (the app calls its database).
    proxies = [_namespace_peer(namespace) for namespace in objects.args.proxy_namespaces]
    management = (
        [
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=MANAGEMENT_PORT_NAME, protocol="TCP")],
                from_=[_namespace_peer(objects.args.metrics.scrape_namespace)],
            )
        ]
        if objects.args.app.management_port is not None
        else []
    )
    return k8s.networking.v1.NetworkPolicy(
        f"{objects.name}-netpol",
        metadata=objects.metadata(),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=objects.match(),
            policy_types=["Ingress"],
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=CONTAINER_PORT_NAME, protocol="TCP")],
                    from_=proxies or None,
                ),
                *management,
            ],
        ),
        opts=objects.opts,
    )


def _service_monitor(objects: ServiceObjects) -> k8s.apiextensions.CustomResource:
    metrics = objects.args.app.metrics
    assert metrics is not None  # _check refuses a ServiceMonitor for an app without metrics
    return k8s.apiextensions.CustomResource(
        f"{objects.name}-servicemonitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata=objects.metadata({**objects.args.labels, **objects.args.metrics.labels}),
        spec={
            "selector": {"matchLabels": objects.selector},
            "endpoints": [
                {"port": port_name(metrics.port), "path": metrics.path, "interval": objects.args.metrics.interval}
            ],
        },
        opts=objects.opts,
    )
