"""The app contract: what the components expect of the container they run, with the bundled app's values as defaults.

The components deploy any HTTP service whose image keeps this contract: which
command runs, which ports it serves, where its probes and metrics are, which
user it runs as, how it drains on SIGTERM, and which of the platform's
environment variables it reads. A stack sets it under `webapp:app`; a program
of its own passes an `AppContract` to `WebServiceArgs`. Committed stacks set
none of it, so they render the bundled app exactly as before.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from webapp_platform.config.app_metrics import BUNDLED_PREFIX
from webapp_platform.config.rules import (
    APP_ENVIRONMENT,
    APP_PORT,
    APP_USER,
    LIVENESS_PATH,
    MANAGEMENT_PORT,
    METRICS_PATH,
    READINESS_PATH,
)
from webapp_platform.config.types import EnvName, MetricPrefix, SettingsModel, UrlPath

PortRole = Literal["traffic", "management"]
"""Which of the app's two ports an endpoint is on: the one the Service routes to, or the one for probes and metrics."""
DrainProtocol = Literal["self", "preStop"]
"""`self`: the app keeps serving for DRAIN_SECONDS after SIGTERM with its readiness failing, then finishes its
in-flight requests (the bundled app). `preStop`: the app merely finishes in-flight requests on SIGTERM, so the
kubelet waits `preStopSeconds` before sending it (a `preStop` sleep), while the endpoints drop the pod."""
Port = Annotated[int, Field(ge=1, le=65535)]
PLATFORM_VARIABLES = tuple(variable.name for variable in APP_ENVIRONMENT)
"""Every variable the platform can set, in the container's order (config.rules.APP_ENVIRONMENT)."""


class Endpoint(SettingsModel):
    """An HTTP path on one of the app's ports: a probe's or the metrics'."""

    path: UrlPath
    port: PortRole = "management"


class MetricsEndpoint(SettingsModel):
    """Where Prometheus scrapes the app, and the prefix of the series the alerts and the dashboard read."""

    path: UrlPath = METRICS_PATH
    port: PortRole = "management"
    prefix: MetricPrefix = BUNDLED_PREFIX
    """The app publishes `<prefix>http_requests_total`, `<prefix>http_request_duration_seconds` and the server's
    series the alerts read (config/app_metrics.py names them all)."""


class AppContract(SettingsModel):
    """What the container must do for the components to run it safely; the defaults are the bundled app's."""

    command: list[str] | None = None
    """The container's command (its ENTRYPOINT); the image's own when not given."""
    args: list[str] | None = None
    """The container's args (its CMD); the image's own when not given."""
    port: Port = APP_PORT
    """The traffic port the Service routes to (the container port named http)."""
    management_port: Port | None = MANAGEMENT_PORT
    """A second port for probes and metrics, answered however busy the traffic port is; none for an app with one."""
    liveness: Endpoint = Endpoint(path=LIVENESS_PATH)
    """Failing for 30 s restarts the container."""
    readiness: Endpoint = Endpoint(path=READINESS_PATH)
    """Failing takes the pod out of the Service's endpoints."""
    startup: Endpoint = Endpoint(path=LIVENESS_PATH)
    """Liveness waits until this answers (up to 60 s)."""
    run_as_user: int = Field(default=APP_USER, ge=1, le=2147483647)
    """The numeric user the image runs as (never root: the pod sets runAsNonRoot)."""
    run_as_group: int = Field(default=APP_USER, ge=1, le=2147483647)
    drain: DrainProtocol = "self"
    pre_stop_seconds: int = Field(default=5, ge=1, le=300)
    """With drain `preStop`: how long the kubelet waits before SIGTERM, while the endpoints drop the pod."""
    metrics: MetricsEndpoint | None = MetricsEndpoint()
    """None for an app that publishes no metrics: no scrape, and alerts or a dashboard are refused."""
    platform_env: list[EnvName] = Field(default_factory=lambda: list(PLATFORM_VARIABLES))
    """The platform's variables the app reads (APP_VERSION, PORT, ... in config.rules.APP_ENVIRONMENT); the
    Deployment sets these and no others."""

    @field_validator("platform_env")
    @classmethod
    def _known_variables(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in PLATFORM_VARIABLES]
        if unknown:
            raise ValueError(f"{unknown} are not variables the platform sets; choose from {list(PLATFORM_VARIABLES)}")
        if len(set(value)) != len(value):
            raise ValueError("a variable is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AppContract:
        problems = []
        if self.management_port is None:
            on_management = [
                name
                for name, endpoint in (
                    ("liveness", self.liveness),
                    ("readiness", self.readiness),
                    ("startup", self.startup),
                    ("metrics", self.metrics),
                )
                if endpoint is not None and endpoint.port == "management"
            ]
            if on_management:
                problems.append(
                    f"{', '.join(on_management)} use the management port, and managementPort is not set; "
                    "set managementPort or give them port: traffic"
                )
            if "MANAGEMENT_PORT" in self.platform_env:
                problems.append("platformEnv lists MANAGEMENT_PORT, and managementPort is not set")
        elif self.management_port == self.port:
            problems.append(f"managementPort {self.management_port} is the traffic port; give it a port of its own")
        else:
            on_traffic = [
                name
                for name, endpoint in (
                    ("liveness", self.liveness),
                    ("readiness", self.readiness),
                    ("startup", self.startup),
                )
                if endpoint.port == "traffic"
            ]
            if on_traffic:
                problems.append(
                    f"{', '.join(on_traffic)} probe the traffic port, where a probe waits behind busy request threads "
                    "and a pod that is only busy gets restarted (the policy pack refuses it); give them port: "
                    "management, or managementPort: null for an app with one port"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def port_number(self, role: PortRole) -> int:
        """The container port of `role` (the management port exists whenever something names it: validated)."""
        if role == "management":
            assert self.management_port is not None
            return self.management_port
        return self.port


BUNDLED_APP = AppContract()
"""The bundled Flask app's contract (app/): what every committed stack runs."""
