"""WebService: a Deployment, its Service and NetworkPolicy, plus a PodDisruptionBudget and autoscaler when they apply.

The pod spec carries what the on-call engineer relies on: probes wired to
the app's /ready and /healthz, a termination grace period that covers the
app's drain and in-flight requests, zero-unavailable rolling updates, a
restricted security context, and the recommended labels. Each object has a
builder of its own below; `WebService.__init__` lists what it creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_kubernetes as k8s

from components.labels import selector_of, workload_labels
from config.monitoring import MetricsSettings
from config.rules import (
    APP_PORT,
    DNS_LABEL,
    LIVENESS_PATH,
    MANAGEMENT_PORT,
    MANAGEMENT_PORT_NAME,
    METRICS_PATH,
    READINESS_PATH,
    ROLLOUT_TIMEOUT_SECONDS,
    TEST_ROUTES_ENV,
    published_metrics_problem,
)
from config.scheduling import SchedulingSettings
from config.settings import (
    AutoscalingSettings,
    ImageSettings,
    ResourceSettings,
    ServerTimings,
    ServiceAccountSettings,
    ServiceSettings,
)

CONTAINER_PORT_NAME = "http"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
RUN_AS_USER = 10001  # the numeric user of app/Dockerfile
PROBE_TIMEOUT_SECONDS = 2
"""Every probe's timeoutSeconds: the app's management port answers in milliseconds however busy it is."""
# Pulumi owns the Deployment: a field someone changed by hand (`kubectl scale`, `kubectl edit`) would
# otherwise make every later `pulumi up` fail with a server-side apply conflict until someone cleans it
# up. With this the next `up` takes the field back (the drift workflow has reported it by then).
FORCE_APPLY = {"pulumi.com/patchForce": "true"}


def scrape_annotations(management_port: int) -> dict[str, str]:
    """The prometheus.io annotations that annotation-based Prometheus configurations discover pods by."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(management_port),
        "prometheus.io/path": METRICS_PATH,
    }


def rollout_await(timeout_seconds: int) -> dict[str, str]:
    """The provider's await timeout for an object a rollout waits on (Deployment ready, Service endpoints, Ingress
    address), so that `pulumi up` fails after `rolloutTimeoutSeconds` on a create as on an update."""
    return {"pulumi.com/timeoutSeconds": str(timeout_seconds)}


@dataclass(frozen=True)
class WebServiceArgs:
    """Inputs of `WebService`."""

    namespace: pulumi.Input[str]
    """Namespace for every object."""
    image: ImageSettings
    """The image: its reference (tag, digest) runs, its tag is the version label and APP_VERSION."""
    labels: dict[str, str]
    """The service's recommended labels (`components.labels.standard_labels`); its selector is a subset of them."""
    object_name: str
    """metadata.name of the Deployment, Service, NetworkPolicy, PDB and HPA: fixed, so the in-cluster address
    (`http://<object_name>.<namespace>.svc.cluster.local`) is known before deploying and survives replacements."""
    replicas: int
    """Pod count (the autoscaler's minimum takes over when autoscaling is on)."""
    resources: ResourceSettings
    """Container requests and limits."""
    service: ServiceSettings
    """How the Service exposes the pods: its type and port."""
    timings: ServerTimings
    """The app's drain, graceful timeout, keep-alive and stall limit: its env and the pod's grace period."""
    autoscaling: AutoscalingSettings
    """CPU autoscaling."""
    max_unavailable: int
    """The disruption budget's maxUnavailable, when more than one pod runs."""
    metrics: MetricsSettings
    """Prometheus scraping: pod annotations always; a ServiceMonitor and a Service port when enabled."""
    service_account: ServiceAccountSettings = field(default_factory=ServiceAccountSettings)
    """The pods' own ServiceAccount (token never mounted); its annotations carry cloud workload identity."""
    scheduling: SchedulingSettings = field(default_factory=SchedulingSettings)
    """Node selector, tolerations, and how strictly the pods spread over zones."""
    config_map_name: pulumi.Input[str] | None = None
    """ConfigMap to load the environment from, if any."""
    secret_name: pulumi.Input[str] | None = None
    """Secret to load the environment from, if any."""
    container_port: int = APP_PORT
    """Port the app serves traffic on (its PORT)."""
    management_port: int = MANAGEMENT_PORT
    """Port of the app's probes and /metrics (its MANAGEMENT_PORT), answered by its master process."""
    trusted_proxies: int = 0
    """The app's TRUSTED_PROXIES: proxies in front whose X-Forwarded-* headers it believes."""
    proxy_namespaces: tuple[str, ...] = ()
    """Namespaces of the proxies in front: when given, the only ones the NetworkPolicy admits to the traffic port."""
    enable_test_routes: bool = False
    """Set the app's ENABLE_TEST_ROUTES=true (test stacks only; the policy pack refuses it)."""
    image_pull_secrets: tuple[str, ...] = ()
    """Names of `kubernetes.io/dockerconfigjson` Secrets the kubelet pulls the image with (private registries)."""
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS
    """Seconds a rollout may take: the provider's await (`pulumi.com/timeoutSeconds`) and progressDeadlineSeconds."""

    @property
    def autoscaled(self) -> bool:
        """Whether an autoscaler owns the replica count."""
        return self.autoscaling.enabled

    @property
    def initial_replicas(self) -> int:
        """The Deployment's replicas: the autoscaler's minimum when it owns the count."""
        return self.autoscaling.min_replicas if self.autoscaled else self.replicas

    @property
    def several_pods(self) -> bool:
        """Whether more than one pod may run: then a disruption budget protects them and they spread over nodes."""
        return self.initial_replicas > 1 or (self.autoscaled and self.autoscaling.max_replicas > 1)


@dataclass(frozen=True)
class _Objects:
    """What every object of one WebService shares: its component name, metadata and selector, and its parent."""

    name: str
    args: WebServiceArgs
    opts: pulumi.ResourceOptions
    selector: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "selector", selector_of(self.args.labels))

    def metadata(
        self, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        """The object's name, namespace and labels (the service's own unless given), and any annotations."""
        args = self.args
        return k8s.meta.v1.ObjectMetaArgs(
            name=args.object_name, namespace=args.namespace, labels=labels or args.labels, annotations=annotations
        )

    def match(self) -> k8s.meta.v1.LabelSelectorArgs:
        """A label selector for exactly this service's pods."""
        return k8s.meta.v1.LabelSelectorArgs(match_labels=self.selector)


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
        objects = _Objects(name, args, pulumi.ResourceOptions(parent=self))
        account = _service_account(objects)
        deployment = _deployment(objects, account)
        service = _service(objects)
        _network_policy(objects)
        if args.metrics.service_monitor:
            _service_monitor(objects)
        if args.several_pods:
            _disruption_budget(objects)
        if args.autoscaled:
            _autoscaler(objects, deployment)

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


def _service_account(objects: _Objects) -> k8s.core.v1.ServiceAccount:
    # The stack's own identity instead of the namespace's `default`, so RBAC and cloud workload identity can be
    # granted to this app alone; the pods still never mount its token (the app calls no Kubernetes API).
    return k8s.core.v1.ServiceAccount(
        f"{objects.name}-sa",
        metadata=objects.metadata(annotations=dict(objects.args.service_account.annotations) or None),
        automount_service_account_token=False,
        opts=objects.opts,
    )


def _deployment(objects: _Objects, account: k8s.core.v1.ServiceAccount) -> k8s.apps.v1.Deployment:
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
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=versioned, annotations=scrape_annotations(args.management_port)
                ),
                spec=_pod_spec(objects, account.metadata.name),
            ),
        ),
        # The autoscaler owns the replica count once it exists; `pulumi up` must not reset it.
        opts=pulumi.ResourceOptions.merge(objects.opts, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))
        if args.autoscaled
        else objects.opts,
    )


def _service(objects: _Objects) -> k8s.core.v1.Service:
    args = objects.args
    ports = [
        k8s.core.v1.ServicePortArgs(
            name=CONTAINER_PORT_NAME, port=args.service.port, target_port=CONTAINER_PORT_NAME, protocol="TCP"
        )
    ]
    if args.metrics.service_monitor:
        # Only for the ServiceMonitor, which names a Service port; the settings keep it off NodePort and
        # LoadBalancer Services.
        ports.append(
            k8s.core.v1.ServicePortArgs(
                name=MANAGEMENT_PORT_NAME, port=args.management_port, target_port=MANAGEMENT_PORT_NAME, protocol="TCP"
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


def _network_policy(objects: _Objects) -> k8s.networking.v1.NetworkPolicy:
    # Admit traffic on the HTTP port from the proxies' namespaces when they are named (the app may believe their
    # X-Forwarded-For, so no one else may reach it), else from anywhere; the management port (/metrics) from
    # Prometheus' namespace only. kubelet's probes come from the node, which NetworkPolicies do not restrict.
    # Egress stays open (the app calls its database).
    proxies = [_namespace_peer(namespace) for namespace in objects.args.proxy_namespaces]
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
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=MANAGEMENT_PORT_NAME, protocol="TCP")],
                    from_=[_namespace_peer(objects.args.metrics.scrape_namespace)],
                ),
            ],
        ),
        opts=objects.opts,
    )


def _service_monitor(objects: _Objects) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        f"{objects.name}-servicemonitor",
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata=objects.metadata({**objects.args.labels, **objects.args.metrics.labels}),
        spec={
            "selector": {"matchLabels": objects.selector},
            "endpoints": [
                {"port": MANAGEMENT_PORT_NAME, "path": METRICS_PATH, "interval": objects.args.metrics.interval}
            ],
        },
        opts=objects.opts,
    )


def _disruption_budget(objects: _Objects) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        f"{objects.name}-pdb",
        metadata=objects.metadata(),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=objects.args.max_unavailable, selector=objects.match()
        ),
        opts=objects.opts,
    )


def _autoscaler(objects: _Objects, deployment: k8s.apps.v1.Deployment) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    scaling = objects.args.autoscaling
    targets = {"cpu": scaling.target_cpu_utilization, "memory": scaling.target_memory_utilization}
    metrics = [
        k8s.autoscaling.v2.MetricSpecArgs(
            type="Resource",
            resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                name=resource,
                target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=percent),
            ),
        )
        for resource, percent in targets.items()
        if percent is not None
    ]
    # A bounded pace: removing pods waits for load to stay low (no flapping after a spike) and takes a share per
    # minute; adding them takes a few pods per minute, each warming up before the next step.
    behavior = k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
        scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=scaling.scale_down_stabilization_seconds,
            policies=[
                k8s.autoscaling.v2.HPAScalingPolicyArgs(
                    type="Percent", value=scaling.scale_down_max_percent_per_minute, period_seconds=60
                )
            ],
        ),
        scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=0,
            policies=[
                k8s.autoscaling.v2.HPAScalingPolicyArgs(
                    type="Pods", value=scaling.scale_up_max_pods_per_minute, period_seconds=60
                )
            ],
        ),
    )
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{objects.name}-hpa",
        metadata=objects.metadata(),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
            ),
            min_replicas=scaling.min_replicas,
            max_replicas=scaling.max_replicas,
            metrics=metrics,
            behavior=behavior,
        ),
        opts=objects.opts,
    )


def _pod_spec(objects: _Objects, service_account_name: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    args = objects.args
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account_name,
        automount_service_account_token=False,
        enable_service_links=False,
        image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=n) for n in args.image_pull_secrets] or None,
        termination_grace_period_seconds=args.timings.termination_grace_seconds(),
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            fs_group=RUN_AS_USER,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        containers=[_container(objects.name, args)],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="64Mi")
            )
        ],
        node_selector=dict(args.scheduling.node_selector) or None,
        tolerations=[
            k8s.core.v1.TolerationArgs(
                key=toleration.key,
                operator=toleration.operator,
                value=toleration.value,
                effect=toleration.effect,
                toleration_seconds=toleration.toleration_seconds,
            )
            for toleration in args.scheduling.tolerations
        ]
        or None,
        # The settings' model mirrors the API's Affinity field by field, so its camelCase form is the manifest's; the
        # SDK passes a dict in the API's shape through wherever it takes an Args object.
        affinity=cast(k8s.core.v1.AffinityArgs, args.scheduling.affinity.manifest())
        if args.scheduling.affinity
        else None,
        topology_spread_constraints=_spread(objects) if args.several_pods else None,
    )


def _spread(objects: _Objects) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Pods spread over zones (required or preferred, as the stack says) and over nodes (preferred)."""
    zone_rule = "DoNotSchedule" if objects.args.scheduling.zone_spread == "required" else "ScheduleAnyway"
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable=rule, label_selector=objects.match()
        )
        for key, rule in ((ZONE_LABEL, zone_rule), (HOSTNAME_LABEL, "ScheduleAnyway"))
    ]


def _container(name: str, args: WebServiceArgs) -> k8s.core.v1.ContainerArgs:
    env = {
        "APP_VERSION": args.image.tag,
        "PORT": str(args.container_port),
        "MANAGEMENT_PORT": str(args.management_port),
        **args.timings.env(),
    }
    # Set whatever their values: the container's env wins over its envFrom, so no Secret (existingSecret holds
    # keys this program never sees) can turn on the test routes or make the app believe forged addresses.
    env["TRUSTED_PROXIES"] = str(args.trusted_proxies)
    env[TEST_ROUTES_ENV] = "true" if args.enable_test_routes else "false"
    env_from = []
    if args.config_map_name is not None:
        env_from.append(
            k8s.core.v1.EnvFromSourceArgs(config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=args.config_map_name))
        )
    if args.secret_name is not None:
        env_from.append(
            k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=args.secret_name))
        )
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=args.image.reference,
        image_pull_policy="IfNotPresent",
        ports=[
            k8s.core.v1.ContainerPortArgs(name=CONTAINER_PORT_NAME, container_port=args.container_port, protocol="TCP"),
            k8s.core.v1.ContainerPortArgs(
                name=MANAGEMENT_PORT_NAME, container_port=args.management_port, protocol="TCP"
            ),
        ],
        env=[k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in env.items()],
        env_from=env_from,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.resources.requests.cpu, "memory": args.resources.requests.memory},
            limits={"cpu": args.resources.limits.cpu, "memory": args.resources.limits.memory},
        ),
        # Every probe goes to the management port, which the app's master answers however busy the workers are.
        # Generous start-up window; liveness only starts once the app has answered.
        startup_probe=_probe(LIVENESS_PATH, period=2, timeout=PROBE_TIMEOUT_SECONDS, failures=30),
        # Restart a process that stopped answering, or whose worker has been stalled for STALL_SECONDS
        # (then restarted within STALL_SECONDS + 30 s at most).
        liveness_probe=_probe(LIVENESS_PATH, period=10, timeout=PROBE_TIMEOUT_SECONDS, failures=3),
        # Leave the Service's endpoints within seconds of /ready turning 503, well inside the drain.
        readiness_probe=_probe(READINESS_PATH, period=2, timeout=PROBE_TIMEOUT_SECONDS, failures=1),
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
    )


def _probe(path: str, *, period: int, timeout: int, failures: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=MANAGEMENT_PORT_NAME),
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
        success_threshold=1,
    )
