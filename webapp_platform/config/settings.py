"""What a stack may set: the typed models of its settings, their defaults and their naming rules.

Defaults live here, in the models below, and nowhere else; README.md's
settings reference mirrors them (a test holds the two together).
`config.loading` reads the runtime's config into these models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from webapp_platform.config.app_config import PROJECT, checked_app_config
from webapp_platform.config.canary import CanaryRelease, CanarySettings
from webapp_platform.config.contract import AppContract
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.monitoring import MetricsSettings
from webapp_platform.config.quantity import parse_cpu, parse_memory
from webapp_platform.config.routing import HttpRouteSettings, IngressSettings
from webapp_platform.config.rules import (
    DRAIN_SECONDS,
    GRACEFUL_TIMEOUT_SECONDS,
    KEEPALIVE_SECONDS,
    MANAGED_ENV,
    ROLLOUT_TIMEOUT_SECONDS,
    STALL_SECONDS,
    TERMINATION_MARGIN_SECONDS,
    app_variable,
    namespace_problem,
    published_metrics_problem,
    service_type_problem,
)
from webapp_platform.config.scheduling import SchedulingSettings
from webapp_platform.config.types import (
    Annotations,
    Cpu,
    DnsLabel,
    EnvName,
    EnvValue,
    Memory,
    SecretName,
    SettingsModel,
)


def _app_field(name: str) -> Any:
    """A stack setting that becomes the app's variable `name`: its default and range from the app's contract."""
    variable = app_variable(name)
    return Field(default=variable.default, ge=variable.minimum, le=variable.maximum)


@dataclass(frozen=True)
class ServerTimings:
    """The app's four server timings, which travel together from the stack file to the pod's env and grace period."""

    drain_seconds: int = DRAIN_SECONDS
    """DRAIN_SECONDS: serving on after SIGTERM, /ready at 503, so the endpoints drop the pod first."""
    graceful_timeout_seconds: int = GRACEFUL_TIMEOUT_SECONDS
    """GRACEFUL_TIMEOUT_SECONDS: then, for in-flight requests to finish."""
    keepalive_seconds: int = KEEPALIVE_SECONDS
    """KEEPALIVE_SECONDS: idle keep-alive, above the proxies' own."""
    stall_seconds: int = STALL_SECONDS
    """STALL_SECONDS: every thread busy, nothing finishing, this long fails liveness."""

    def env(self) -> dict[str, str]:
        """The app's environment variables for these timings."""
        return {
            "KEEPALIVE_SECONDS": str(self.keepalive_seconds),
            "STALL_SECONDS": str(self.stall_seconds),
            "DRAIN_SECONDS": str(self.drain_seconds),
            "GRACEFUL_TIMEOUT_SECONDS": str(self.graceful_timeout_seconds),
        }

    def termination_grace_seconds(self, wait_seconds: int | None = None) -> int:
        """How long Kubernetes waits before SIGKILL: the wait before the server stops accepting (the app's own drain,
        or `wait_seconds` when something else waits, such as a preStop sleep), then in-flight requests, plus a
        margin."""
        wait = self.drain_seconds if wait_seconds is None else wait_seconds
        return wait + self.graceful_timeout_seconds + TERMINATION_MARGIN_SECONDS


class ComputeResources(SettingsModel):
    """CPU and memory, both required."""

    cpu: Cpu
    memory: Memory


class ResourceSettings(SettingsModel):
    """Container requests and limits; limits must not be below requests."""

    requests: ComputeResources
    limits: ComputeResources

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> ResourceSettings:
        problems = []
        if parse_cpu(self.limits.cpu) < parse_cpu(self.requests.cpu):
            problems.append(f"limits.cpu {self.limits.cpu} is below requests.cpu {self.requests.cpu}")
        if parse_memory(self.limits.memory) < parse_memory(self.requests.memory):
            problems.append(f"limits.memory {self.limits.memory} is below requests.memory {self.requests.memory}")
        if problems:
            raise ValueError("; ".join(problems) + "; raise the limit or lower the request")
        return self


class ServiceSettings(SettingsModel):
    """How the Service exposes the pods."""

    type: str = "ClusterIP"
    port: int = Field(default=80, ge=1, le=65535)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        problem = service_type_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class AutoscalingSettings(SettingsModel):
    """An optional autoscaling/v2 HorizontalPodAutoscaler on CPU (and memory), with a bounded pace."""

    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=5, ge=1)
    target_cpu_utilization: int = Field(default=70, ge=10, le=100)
    target_memory_utilization: int | None = Field(default=None, ge=10, le=100)
    """Percent of the memory request; also scales on memory when set (the larger of the two wins)."""
    scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=3600)
    """How long load must stay low before pods are removed (Kubernetes' own default): no flapping after a spike."""
    scale_down_max_percent_per_minute: int = Field(default=50, ge=1, le=100)
    """At most this share of the pods is removed per minute."""
    scale_up_max_pods_per_minute: int = Field(default=4, ge=1, le=100)
    """At most this many pods are added per minute (each new pod must warm up before the next step)."""

    @model_validator(mode="after")
    def _min_below_max(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}; "
                "minReplicas must be at most maxReplicas"
            )
        return self


def initial_replicas(replicas: int, autoscaling: AutoscalingSettings) -> int:
    """A Deployment's replicas: the autoscaler's minimum when it owns the count, else `replicas`."""
    return autoscaling.min_replicas if autoscaling.enabled else replicas


class ServiceAccountSettings(SettingsModel):
    """The ServiceAccount the pods run as: the stack's own, its token never mounted."""

    annotations: Annotations = Field(default_factory=dict)
    """For cloud workload identity, e.g. eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account."""


class DisruptionBudgetSettings(SettingsModel):
    """The PodDisruptionBudget made whenever more than one replica runs."""

    max_unavailable: int = Field(default=1, ge=1)


class StackSettings(SettingsModel):
    """Everything one stack configures, validated; built by `load_settings()`."""

    image: ImageSettings
    resources: ResourceSettings
    name: DnsLabel = PROJECT
    """metadata.name of the Deployment, Service, Ingress, PDB, HPA and NetworkPolicy (stable, known before `up`)."""
    replicas: int = Field(default=1, ge=1, le=100)
    namespace: DnsLabel | None = None
    """The namespace to deploy into, `webapp-<stack>` when left out; never one of the cluster's own."""
    create_namespace: bool = True
    service: ServiceSettings = ServiceSettings()
    ingress: IngressSettings = IngressSettings()
    http_route: HttpRouteSettings = HttpRouteSettings()
    """A Gateway API HTTPRoute instead of the Ingress (needs the Gateway API CRDs and a Gateway in the cluster)."""
    app_config: dict[str, EnvValue] = Field(default_factory=dict)
    secret_keys: list[EnvName] = Field(default_factory=list)
    existing_secret: SecretName | None = None
    """A Secret that something else (External Secrets, sealed-secrets, Vault) writes into the namespace."""
    image_pull_secrets: list[SecretName] = Field(default_factory=list)
    """`kubernetes.io/dockerconfigjson` Secrets in the namespace that log the kubelet in to a private registry."""
    drain_seconds: int = _app_field("DRAIN_SECONDS")
    graceful_timeout_seconds: int = _app_field("GRACEFUL_TIMEOUT_SECONDS")
    keepalive_seconds: int = _app_field("KEEPALIVE_SECONDS")
    """The app's idle keep-alive: keep it above the idle timeout of the proxies in front (60 s for most)."""
    stall_seconds: int = _app_field("STALL_SECONDS")
    """Liveness fails once a worker has had every thread busy, finishing nothing, for this long."""
    trusted_proxies: int = _app_field("TRUSTED_PROXIES")
    """Proxies in front (an ingress controller: 1) whose X-Forwarded-For/-Proto/-Host the app believes, so its logs
    show the client's address; 0 believes none (a client could claim any address). Needs proxyNamespaces."""
    proxy_namespaces: list[DnsLabel] = Field(default_factory=list)
    """The namespaces the proxies in front run in (the ingress controller's, the Gateway's): when set, the
    NetworkPolicy admits the traffic port from these only. Required with trustedProxies, since any client that
    reaches a pod directly could write the X-Forwarded-For the app then believes."""
    enable_test_routes: bool = False
    """Mount the app's /debug test routes: for test stacks only; the policy pack refuses it and appConfig cannot."""
    rollout_timeout_seconds: int = Field(default=ROLLOUT_TIMEOUT_SECONDS, ge=30, le=3600)
    """How long a rollout may take: `pulumi up` fails after it (a bad image, a pod that never turns Ready)."""
    metrics: MetricsSettings = MetricsSettings()
    autoscaling: AutoscalingSettings = AutoscalingSettings()
    disruption_budget: DisruptionBudgetSettings = DisruptionBudgetSettings()
    service_account: ServiceAccountSettings = ServiceAccountSettings()
    scheduling: SchedulingSettings = SchedulingSettings()
    app: AppContract = AppContract()
    canary: CanarySettings = CanarySettings()
    """Releases through a canary judged by Prometheus (`python -m tools.canary`) instead of a plain rolling update."""
    canary_release: CanaryRelease | None = None
    """The canary release in progress: tools/canary.py writes it while it runs and removes it at the end."""
    """What the image does (command, ports, probes, user, drain, metrics, the platform's variables it reads): the
    bundled app's unless set, for another image built to the contract."""

    @property
    def server_timings(self) -> ServerTimings:
        """The four timings, whole: what the pod's env and its grace period are made from."""
        return ServerTimings(
            self.drain_seconds, self.graceful_timeout_seconds, self.keepalive_seconds, self.stall_seconds
        )

    @field_validator("app_config")
    @classmethod
    def _app_config(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_app_config(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        problem = namespace_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("secret_keys")
    @classmethod
    def _secret_keys(cls, value: list[str]) -> list[str]:
        managed = [name for name in value if name in MANAGED_ENV]
        if managed:
            raise ValueError(
                "; ".join(
                    f"{name} is set by the Deployment itself (from {MANAGED_ENV[name]}); a Secret cannot set it"
                    for name in managed
                )
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> StackSettings:
        clash = sorted(set(self.app_config) & set(self.secret_keys))
        if clash:
            raise ValueError(f"{clash} are both in appConfig and secretKeys; keep each in one place")
        if self.ingress.enabled and self.http_route.enabled:
            raise ValueError(
                "ingress and httpRoute are both enabled; route through one of them (an HTTPRoute replaces the Ingress)"
            )
        if self.metrics.service_monitor and self.service.port == self.app.management_port:
            raise ValueError(
                f"service.port {self.service.port} is the management port, which metrics.serviceMonitor adds to the "
                "Service as well; choose another service.port"
            )
        metrics = self.metrics
        monitored = [
            key
            for key, on in (
                ("alerts", metrics.alerts),
                ("dashboard", metrics.dashboard),
                ("serviceMonitor", metrics.service_monitor),
            )
            if on
        ]
        if self.app.metrics is None and monitored:
            raise ValueError(
                f"metrics.{' and metrics.'.join(monitored)} read the app's metrics, and app.metrics says it "
                "publishes none; turn them off or describe its metrics endpoint under app.metrics"
            )
        published = published_metrics_problem(self.service.type, self.metrics.service_monitor)
        if published:
            raise ValueError(published)
        if self.trusted_proxies:
            if not self.proxy_namespaces:
                raise ValueError(
                    f"trustedProxies {self.trusted_proxies} believes X-Forwarded-For from whoever reaches the pods; "
                    "list the namespaces of the proxies in front in proxyNamespaces (e.g. [ingress-nginx]) so the "
                    "NetworkPolicy admits the traffic port from them only, or set trustedProxies: 0"
                )
            if self.service.type != "ClusterIP":
                raise ValueError(
                    f"service.type {self.service.type} lets clients reach the pods without the proxies in front, "
                    f"and trustedProxies {self.trusted_proxies} would believe the X-Forwarded-For they write; "
                    "use ClusterIP behind the ingress, or trustedProxies: 0"
                )
        self._canary_checks()
        scaling = self.autoscaling
        explicit_replicas = "replicas" in self.model_fields_set
        if scaling.enabled and explicit_replicas and not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise ValueError(
                f"replicas {self.replicas} is outside autoscaling {scaling.min_replicas}..{scaling.max_replicas}; "
                "the autoscaler owns the count, so set replicas within that range or leave it out"
            )
        return self

    def _canary_checks(self) -> None:
        if self.canary_release is not None and not self.canary.enabled:
            raise ValueError(
                "canaryRelease is set and canary.enabled is not; canaryRelease is tools/canary.py's state of a "
                "release in progress: enable canary, or remove canaryRelease (`pulumi config rm webapp:canaryRelease`)"
            )
        if self.canary.enabled and not self.metrics.service_monitor:
            raise ValueError(
                "canary.enabled needs metrics.serviceMonitor: true: the analysis reads the canary's series by the job "
                "its ServiceMonitor gives them (<name>-canary)"
            )

    @property
    def initial_replicas(self) -> int:
        """The stable Deployment's pod count: the autoscaler's minimum when it owns the count."""
        return initial_replicas(self.replicas, self.autoscaling)

    @property
    def canary_weighted_by_route(self) -> bool:
        """Whether the HTTPRoute splits the traffic by weight; else the Service does, by the share of ready pods."""
        return self.http_route.enabled

    def namespace_name(self, stack: str) -> str:
        """The namespace to deploy into: the configured one, else `webapp-<stack>`."""
        return self.namespace or f"{PROJECT}-{stack}"
