"""The inputs of `WebService` and what all of its objects share (name, metadata, selector, parent)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.labels import selector_of
from webapp_platform.config.contract import BUNDLED_APP, AppContract
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.monitoring import MetricsSettings
from webapp_platform.config.rules import ROLLOUT_TIMEOUT_SECONDS
from webapp_platform.config.scheduling import SchedulingSettings
from webapp_platform.config.settings import (
    AutoscalingSettings,
    DisruptionBudgetSettings,
    ResourceSettings,
    ServerTimings,
    ServiceAccountSettings,
    ServiceSettings,
    initial_replicas,
)


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
    resources: ResourceSettings
    """Container requests and limits."""
    replicas: int
    """Pod count (the autoscaler's minimum takes over when autoscaling is on)."""
    app: AppContract = BUNDLED_APP
    """What the image does: command, ports, probes, user, drain protocol, metrics, the platform's variables."""
    service: ServiceSettings = field(default_factory=ServiceSettings)
    """How the Service exposes the pods: its type and port."""
    timings: ServerTimings = field(default_factory=ServerTimings)
    """The app's drain, graceful timeout, keep-alive and stall limit: its env and the pod's grace period."""
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)
    """CPU autoscaling."""
    max_unavailable: int = field(default_factory=lambda: DisruptionBudgetSettings().max_unavailable)
    """The disruption budget's maxUnavailable, when more than one pod runs."""
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Prometheus scraping: pod annotations when the app publishes metrics; a ServiceMonitor when enabled."""
    service_account: ServiceAccountSettings = field(default_factory=ServiceAccountSettings)
    """The pods' own ServiceAccount (token never mounted); its annotations carry cloud workload identity."""
    scheduling: SchedulingSettings = field(default_factory=SchedulingSettings)
    """Node selector, tolerations, and how strictly the pods spread over zones."""
    config_map_name: pulumi.Input[str] | None = None
    """ConfigMap to load the environment from, if any."""
    secret_name: pulumi.Input[str] | None = None
    """Secret to load the environment from, if any."""
    trusted_proxies: int = 0
    """The app's TRUSTED_PROXIES: proxies in front whose X-Forwarded-* headers it believes."""
    proxy_namespaces: tuple[str, ...] = ()
    """Namespaces of the proxies in front: when given, the only ones the NetworkPolicy admits to the traffic port."""
    enable_test_routes: bool = False
    """Set the app's ENABLE_TEST_ROUTES=true (test stacks only; the policy pack refuses it)."""
    image_pull_secrets: tuple[str, ...] = ()
    """Names of `kubernetes.io/dockerconfigjson` Secrets the kubelet pulls the image with (private registries)."""
    own_disruption_budget: bool = True
    """Make a PodDisruptionBudget when several pods run. False where another budget already selects the pods (a
    canary among the stable Service's pods): the eviction API refuses to evict a pod two budgets select."""
    rollout_timeout_seconds: int = ROLLOUT_TIMEOUT_SECONDS
    """Seconds a rollout may take: the provider's await (`pulumi.com/timeoutSeconds`) and progressDeadlineSeconds."""

    @property
    def autoscaled(self) -> bool:
        """Whether an autoscaler owns the replica count."""
        return self.autoscaling.enabled

    @property
    def initial_replicas(self) -> int:
        """The Deployment's replicas: the autoscaler's minimum when it owns the count."""
        return initial_replicas(self.replicas, self.autoscaling)

    @property
    def several_pods(self) -> bool:
        """Whether more than one pod may run: then a disruption budget protects them and they spread over nodes."""
        return self.initial_replicas > 1 or (self.autoscaled and self.autoscaling.max_replicas > 1)


@dataclass(frozen=True)
class ServiceObjects:
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
