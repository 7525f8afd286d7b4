"""What a stack may set: the typed models of its settings, their defaults and their naming rules.

Defaults live here, in the models below, and nowhere else; README.md's
settings reference mirrors them (a test holds the two together).
`config.loading` reads the runtime's config into these models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from config.quantity import parse_cpu, parse_memory
from config.rules import (
    DIGEST,
    DNS_LABEL,
    DRAIN_SECONDS,
    GRACEFUL_TIMEOUT_SECONDS,
    KEEPALIVE_SECONDS,
    MANAGED_ENV,
    ROLLOUT_TIMEOUT_SECONDS,
    STALL_SECONDS,
    TERMINATION_MARGIN_SECONDS,
    TEST_ROUTES_ENV,
    TRUSTED_PROXIES,
    looks_secret,
    published_metrics_problem,
    service_type_problem,
    unpinned_tag_problem,
)

PROJECT = "webapp"

_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_URL_PATH = re.compile(r"^/")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_PROMETHEUS_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
# A Kubernetes annotation key: an optional DNS-subdomain prefix and "/", then a name of up to 63 characters.
_ANNOTATION_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def _image_tag(tag: str) -> str:
    problem = unpinned_tag_problem(tag)
    if problem:
        raise ValueError(problem)
    return tag


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A check that a string matches `pattern`, refusing it as "'<value>' is not <what>"."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _cpu(value: str) -> str:
    parse_cpu(value)
    return value


def _memory(value: str) -> str:
    parse_memory(value)
    return value


def _scalar_to_string(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Cpu = Annotated[str, AfterValidator(_cpu)]
Memory = Annotated[str, AfterValidator(_memory)]
EnvValue = Annotated[str, BeforeValidator(_scalar_to_string)]
# One type per naming rule, each with one message: every setting that follows the rule uses the type.
DnsLabel = Annotated[
    str,
    _matching(
        DNS_LABEL,
        "a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit), "
        "e.g. webapp",
    ),
]
"""Names Kubernetes holds to DNS labels: namespaces, Services (so every object this program names alike)."""
DnsSubdomain = Annotated[
    str,
    _matching(
        _DNS_SUBDOMAIN,
        "a DNS subdomain name (DNS labels joined by '.', at most 253), e.g. webapp-env or webapp.example.com-tls",
    ),
]
"""Names Kubernetes holds to DNS subdomains: Secrets, IngressClasses (dots allowed, as in webapp.example.com-tls)."""
SecretName = DnsSubdomain
HostName = Annotated[str, _matching(_HOSTNAME, "a DNS host name such as webapp.example.com")]
ImageRepository = Annotated[
    str, _matching(_REPOSITORY, "an image repository such as ghcr.io/example/webapp (no tag here)")
]
ImageDigest = Annotated[str, _matching(DIGEST, "a digest of the form sha256:<64 hex digits>")]
_ENV_NAME_RULE = "an environment variable name (A-Z, 0-9, _)"
EnvName = Annotated[str, _matching(_ENV_NAME, _ENV_NAME_RULE)]
PrometheusDuration = Annotated[str, _matching(_PROMETHEUS_DURATION, "a Prometheus duration such as 30s or 1m")]
UrlPath = Annotated[str, _matching(_URL_PATH, "a path starting with '/'")]


def _annotation_keys(value: dict[str, str]) -> dict[str, str]:
    bad = sorted(key for key in value if len(key) > 316 or not _ANNOTATION_KEY.match(key))
    if bad:
        raise ValueError(f"{bad} are not annotation keys such as nginx.ingress.kubernetes.io/proxy-body-size")
    return value


Annotations = Annotated[dict[str, EnvValue], AfterValidator(_annotation_keys)]
"""Kubernetes annotations: keys an optional DNS-subdomain prefix and a name, values text."""
LabelKey = Annotated[str, _matching(_ANNOTATION_KEY, "a label key such as topology.kubernetes.io/zone or pool")]
LabelValue = Annotated[
    str,
    _matching(_LABEL_VALUE, "a label value (at most 63 of letters, digits, '-', '_', '.', alphanumeric at the ends)"),
]


@dataclass(frozen=True)
class ServerTimings:
    """The app's four server timings, which travel together from the stack file to the pod's env and grace period."""

    drain_seconds: int
    """DRAIN_SECONDS: serving on after SIGTERM, /ready at 503, so the endpoints drop the pod first."""
    graceful_timeout_seconds: int
    """GRACEFUL_TIMEOUT_SECONDS: then, for in-flight requests to finish."""
    keepalive_seconds: int
    """KEEPALIVE_SECONDS: idle keep-alive, above the proxies' own."""
    stall_seconds: int
    """STALL_SECONDS: every thread busy, nothing finishing, this long fails liveness."""

    def env(self) -> dict[str, str]:
        """The app's environment variables for these timings."""
        return {
            "KEEPALIVE_SECONDS": str(self.keepalive_seconds),
            "STALL_SECONDS": str(self.stall_seconds),
            "DRAIN_SECONDS": str(self.drain_seconds),
            "GRACEFUL_TIMEOUT_SECONDS": str(self.graceful_timeout_seconds),
        }

    def termination_grace_seconds(self) -> int:
        """How long Kubernetes waits after SIGTERM before SIGKILL: drain, then in-flight requests, plus a margin."""
        return self.drain_seconds + self.graceful_timeout_seconds + TERMINATION_MARGIN_SECONDS


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, strict=False
    )


class ImageSettings(_Model):
    """Which container image to run."""

    repository: ImageRepository
    """Registry and path, without tag: ghcr.io/example/webapp."""
    tag: Annotated[str, AfterValidator(_image_tag)]
    """Any valid OCI tag but `latest` (`1.4.2`, `sha-860c190`). Also becomes APP_VERSION."""
    digest: ImageDigest | None = None
    """`sha256:…` digest, written by tools/promote.py; the image is pinned to it. Required for prod."""

    @property
    def reference(self) -> str:
        """The full image reference for the pod spec."""
        pinned = f"{self.repository}:{self.tag}"
        return f"{pinned}@{self.digest}" if self.digest else pinned


class ComputeResources(_Model):
    """CPU and memory, both required."""

    cpu: Cpu
    memory: Memory


class ResourceSettings(_Model):
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


class ServiceSettings(_Model):
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


class IngressSettings(_Model):
    """An optional networking.k8s.io/v1 Ingress in front of the Service."""

    enabled: bool = False
    host: HostName | None = None
    path: UrlPath = "/"
    class_name: DnsSubdomain | None = None
    tls_secret_name: SecretName | None = None
    annotations: Annotations = Field(default_factory=dict)
    """Annotations for the ingress controller (or cert-manager, or the provider's pulumi.com/skipAwait)."""

    @model_validator(mode="after")
    def _host_when_enabled(self) -> IngressSettings:
        if self.enabled and not self.host:
            raise ValueError("an enabled ingress needs a host, e.g. host: webapp.example.com")
        return self


class AutoscalingSettings(_Model):
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


class MetricsSettings(_Model):
    """Prometheus scraping of the management port's /metrics."""

    service_monitor: bool = False
    """Create a monitoring.coreos.com/v1 ServiceMonitor (needs the Prometheus Operator's CRDs in the cluster)."""
    interval: PrometheusDuration = "30s"
    """How often Prometheus scrapes, as a Prometheus duration."""
    scrape_namespace: DnsLabel = "monitoring"
    """The namespace Prometheus runs in: the NetworkPolicy admits the management port from there only."""


class Toleration(_Model):
    """One pod toleration, as Kubernetes takes it: lets the pods onto nodes with a matching taint."""

    key: LabelKey | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value; leave value out or use operator Equal")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        return self


class SchedulingSettings(_Model):
    """Where the pods may run and how they spread: across zones and across nodes."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Node labels every pod's node must carry, e.g. a node pool."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pods tolerate, e.g. a dedicated node pool's."""
    zone_spread: Literal["preferred", "required"] = "preferred"
    """`required`: two pods never share a zone while another zone has fewer (needs zone-labelled nodes, as every
    cloud cluster has); `preferred`: spread when possible, and still schedule on nodes without zones."""


class ServiceAccountSettings(_Model):
    """The ServiceAccount the pods run as: the stack's own, its token never mounted."""

    annotations: Annotations = Field(default_factory=dict)
    """For cloud workload identity, e.g. eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account."""


class DisruptionBudgetSettings(_Model):
    """The PodDisruptionBudget made whenever more than one replica runs."""

    max_unavailable: int = Field(default=1, ge=1)


class StackSettings(_Model):
    """Everything one stack configures, validated; built by `load_settings()`."""

    image: ImageSettings
    resources: ResourceSettings
    name: DnsLabel = PROJECT
    """metadata.name of the Deployment, Service, Ingress, PDB, HPA and NetworkPolicy (stable, known before `up`)."""
    replicas: int = Field(default=1, ge=1, le=100)
    namespace: DnsLabel | None = None
    create_namespace: bool = True
    service: ServiceSettings = ServiceSettings()
    ingress: IngressSettings = IngressSettings()
    app_config: dict[str, EnvValue] = Field(default_factory=dict)
    secret_keys: list[EnvName] = Field(default_factory=list)
    existing_secret: SecretName | None = None
    """A Secret that something else (External Secrets, sealed-secrets, Vault) writes into the namespace."""
    image_pull_secrets: list[SecretName] = Field(default_factory=list)
    """`kubernetes.io/dockerconfigjson` Secrets in the namespace that log the kubelet in to a private registry."""
    drain_seconds: int = Field(default=DRAIN_SECONDS, ge=0, le=300)
    graceful_timeout_seconds: int = Field(default=GRACEFUL_TIMEOUT_SECONDS, ge=1, le=600)
    keepalive_seconds: int = Field(default=KEEPALIVE_SECONDS, ge=1, le=3600)
    """The app's idle keep-alive: keep it above the idle timeout of the proxies in front (60 s for most)."""
    stall_seconds: int = Field(default=STALL_SECONDS, ge=1, le=3600)
    """Liveness fails once a worker has had every thread busy, finishing nothing, for this long."""
    trusted_proxies: int = Field(default=TRUSTED_PROXIES, ge=0, le=5)
    """Proxies in front (an ingress controller: 1) whose X-Forwarded-For/-Proto/-Host the app believes, so its logs
    show the client's address; 0 believes none (a client could claim any address)."""
    enable_test_routes: bool = False
    """Mount the app's /debug test routes: for test stacks only; the policy pack refuses it and appConfig cannot."""
    rollout_timeout_seconds: int = Field(default=ROLLOUT_TIMEOUT_SECONDS, ge=30, le=3600)
    """How long a rollout may take: `pulumi up` fails after it (a bad image, a pod that never turns Ready)."""
    metrics: MetricsSettings = MetricsSettings()
    autoscaling: AutoscalingSettings = AutoscalingSettings()
    disruption_budget: DisruptionBudgetSettings = DisruptionBudgetSettings()
    service_account: ServiceAccountSettings = ServiceAccountSettings()
    scheduling: SchedulingSettings = SchedulingSettings()

    @property
    def server_timings(self) -> ServerTimings:
        """The four timings, whole: what the pod's env and its grace period are made from."""
        return ServerTimings(
            self.drain_seconds, self.graceful_timeout_seconds, self.keepalive_seconds, self.stall_seconds
        )

    @field_validator("app_config")
    @classmethod
    def _app_config(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        for name in value:
            if not _ENV_NAME.match(name):  # a key, so not the EnvName type (its error would point into the key)
                problems.append(f"{name!r} is not {_ENV_NAME_RULE}")
            elif name == TEST_ROUTES_ENV:
                problems.append(
                    f"{name} cannot be set through appConfig; the test routes are for test stacks only and are "
                    "turned on by the setting enableTestRoutes, which the policy pack refuses"
                )
            elif name in MANAGED_ENV:
                problems.append(
                    f"{name} is set by the Deployment itself (from {MANAGED_ENV[name]}), which would override "
                    "appConfig; use that setting instead"
                )
            elif looks_secret(name):
                problems.append(
                    f"{name} looks secret and would land in a plain ConfigMap; "
                    f"list it in secretKeys and set it with "
                    f"`pulumi config set --secret --path '{PROJECT}:secrets.{name}' <value>`"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> StackSettings:
        clash = sorted(set(self.app_config) & set(self.secret_keys))
        if clash:
            raise ValueError(f"{clash} are both in appConfig and secretKeys; keep each in one place")
        published = published_metrics_problem(self.service.type, self.metrics.service_monitor)
        if published:
            raise ValueError(published)
        scaling = self.autoscaling
        explicit_replicas = "replicas" in self.model_fields_set
        if scaling.enabled and explicit_replicas and not scaling.min_replicas <= self.replicas <= scaling.max_replicas:
            raise ValueError(
                f"replicas {self.replicas} is outside autoscaling {scaling.min_replicas}..{scaling.max_replicas}; "
                "the autoscaler owns the count, so set replicas within that range or leave it out"
            )
        return self

    def namespace_name(self, stack: str) -> str:
        """The namespace to deploy into: the configured one, else `webapp-<stack>`."""
        return self.namespace or f"{PROJECT}-{stack}"
