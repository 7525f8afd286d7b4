"""AppService: `WebService` with flat, schema-friendly inputs, for programs in other languages.

Pulumi's Python component provider host (`provider/`, `pulumi package add`) infers a package schema from type
annotations, so this component takes plain fields (strings, numbers, lists) that any Pulumi language can pass,
and maps them onto `WebServiceArgs` and the app contract here, in one place. Every value is validated by the same
models as the Python API: a bad one fails the `up` naming the field.
"""

from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema

from webapp_platform.components.labels import standard_labels
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.contract import AppContract, Endpoint
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.settings import ComputeResources, ResourceSettings

PROVIDER_NAME = "webapp"
"""The package's name in other languages: its types are `webapp:index:<Component>`."""
PROVIDER_VERSION = "0.9.0"
"""The package's version in its schema: the distribution's (pyproject.toml; a test holds them equal)."""


class AppServiceArgs(TypedDict):
    """The inputs of `AppService`: the image, its one traffic port and probe paths, its user, its size."""

    namespace: str
    """An existing namespace to deploy into."""
    repository: str
    """The image's repository, without tag (registry.example.com/hello)."""
    tag: str
    """The image's tag: a version, never latest; becomes APP_VERSION."""
    digest: NotRequired[str]
    """The image's sha256 digest, which pins it."""
    port: int
    """The one port the app serves traffic and its probes on."""
    liveness_path: str
    readiness_path: str
    run_as_user: int
    """The image's numeric user (its group is the same)."""
    replicas: int
    cpu: str
    """The CPU request and limit, e.g. 100m."""
    memory: str
    """The memory request and limit, e.g. 64Mi."""
    pre_stop_seconds: NotRequired[int]
    """Seconds the kubelet waits before SIGTERM (the app does not drain itself); the contract's default."""
    image_pull_secrets: NotRequired[list[str]]


class AppService(pulumi.ComponentResource):
    """An app that serves traffic and its probes on one port and finishes in-flight requests on SIGTERM (a preStop
    wait before it): the Deployment, Service, NetworkPolicy and disruption budget of `WebService`."""

    service_name: pulumi.Output[str]
    """The Service's name."""
    deployment_name: pulumi.Output[str]
    """The Deployment's name."""

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{PROVIDER_NAME}:index:AppService", name, None, opts)
        service = WebService(name, web_service_args(name, args), opts=pulumi.ResourceOptions(parent=self))
        self.service_name = service.service_name
        self.deployment_name = service.deployment_name
        self.register_outputs({"service_name": self.service_name, "deployment_name": self.deployment_name})


def web_service_args(name: str, args: AppServiceArgs) -> WebServiceArgs:
    """`AppService`'s flat inputs as `WebServiceArgs`: one port with the probes on it, no metrics, a preStop drain."""
    size = ComputeResources(cpu=args["cpu"], memory=args["memory"])
    user = args["run_as_user"]
    pre_stop: int = args.get("pre_stop_seconds", AppContract.model_fields["pre_stop_seconds"].default)
    return WebServiceArgs(
        namespace=args["namespace"],
        image=ImageSettings(repository=args["repository"], tag=args["tag"], digest=args.get("digest")),
        labels=standard_labels(name, f"{name}-{pulumi.get_stack()}", "web", name),
        object_name=name,
        replicas=args["replicas"],
        resources=ResourceSettings(requests=size, limits=size),
        app=AppContract(
            port=args["port"],
            management_port=None,
            liveness=Endpoint(path=args["liveness_path"], port="traffic"),
            readiness=Endpoint(path=args["readiness_path"], port="traffic"),
            startup=Endpoint(path=args["liveness_path"], port="traffic"),
            run_as_user=user,
            run_as_group=user,
            drain="preStop",
            metrics=None,
            pre_stop_seconds=pre_stop,
            platform_env=["APP_VERSION", "PORT"],
        ),
        image_pull_secrets=tuple(args.get("image_pull_secrets", ())),
    )


def provider_schema() -> dict[str, Any]:
    """The package schema Python's component provider host infers from `AppService` and serves (provider/)."""
    result = Analyzer(PROVIDER_NAME).analyze([AppService])
    schema: dict[str, Any] = generate_schema(
        PROVIDER_NAME,
        PROVIDER_VERSION,
        None,
        result["component_definitions"],
        result["type_definitions"],
        sorted(result["dependencies"], key=lambda d: f"{d.name}{d.version}"),
    ).to_json()
    return schema
