"""Deploy hello, an app that is not the bundled one, with the webapp-platform components.

Its contract says how it differs: one port (9000) with its probes on it, its own user, no metrics, and no drain
of its own (a preStop wait instead). Everything else (the rolling update that never drops below the replica
count, the disruption budget, the NetworkPolicy, the restricted security context) comes with `WebService`.
"""

import pulumi

from webapp_platform.components.labels import standard_labels
from webapp_platform.components.web_service import WebService, WebServiceArgs
from webapp_platform.config.contract import AppContract, Endpoint
from webapp_platform.config.image import ImageSettings
from webapp_platform.config.settings import ComputeResources, ResourceSettings

config = pulumi.Config()
hello = WebService(
    "hello",
    WebServiceArgs(
        namespace=config.require("namespace"),
        image=ImageSettings(
            repository=config.require("repository"), tag=config.require("tag"), digest=config.get("digest")
        ),
        labels=standard_labels("hello", f"hello-{pulumi.get_stack()}", "web", "hello"),
        object_name="hello",
        replicas=2,
        resources=ResourceSettings(
            requests=ComputeResources(cpu="50m", memory="32Mi"), limits=ComputeResources(cpu="200m", memory="64Mi")
        ),
        app=AppContract(
            port=9000,
            management_port=None,
            liveness=Endpoint(path="/livez", port="traffic"),
            readiness=Endpoint(path="/readyz", port="traffic"),
            startup=Endpoint(path="/livez", port="traffic"),
            run_as_user=20002,
            run_as_group=20002,
            drain="preStop",
            pre_stop_seconds=5,
            metrics=None,
            platform_env=["APP_VERSION", "PORT"],
        ),
        image_pull_secrets=tuple(config.get_object("imagePullSecrets") or ()),
    ),
)

pulumi.export("service_name", hello.service_name)
pulumi.export("deployment_name", hello.deployment_name)
