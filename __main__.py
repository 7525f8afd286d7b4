"""Deploy the bundled web service to the cluster of the current kubeconfig context.

Read the stack's settings once (all problems reported together, before any
resource exists), check the cluster holds what they expect of it, build the
components, export what an operator needs.
"""

import pulumi
import pulumi_kubernetes as k8s

from prerequisites.cluster import no_cluster, verify, warn_unfinished_canary
from prerequisites.expected import expected
from webapp_platform.components.canary import canary_name
from webapp_platform.components.webapp import WebApp, WebAppArgs
from webapp_platform.config.loading import load_settings

stack = load_settings()
settings = stack.settings
if not no_cluster():  # what the cluster must hold already, checked before any resource exists
    verify(expected(settings, stack.name))
namespace_name = settings.namespace_name(stack.name)
if settings.canary.enabled and settings.canary_release is None and not no_cluster():
    warn_unfinished_canary(namespace_name, canary_name(settings.name))

namespace: pulumi.Input[str] = namespace_name
if settings.create_namespace:
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=namespace_name,
            # Admission rejects any pod in it that is not "restricted"-compliant.
            labels={"pod-security.kubernetes.io/enforce": "restricted", "app.kubernetes.io/managed-by": "pulumi"},
        ),
    ).metadata.name

webapp = WebApp("webapp", WebAppArgs(stack=stack, namespace=namespace))

pulumi.export("namespace", namespace)
pulumi.export("deployment_name", webapp.service.deployment_name)
pulumi.export("service_name", webapp.service.service_name)
pulumi.export("url", webapp.url)
pulumi.export("image", settings.image.reference)
release = settings.canary_release
if webapp.canary is not None and release is not None:
    # What tools/canary.py reads back to find a release in progress after an interruption.
    pulumi.export(
        "canary",
        {
            "image": release.image.reference,
            "tag": release.image.tag,
            "digest": release.image.digest,
            "appConfig": dict(release.app_config),
            "weight": release.weight,
            "effectiveWeight": webapp.canary.weight,
            "replicas": webapp.canary.replicas,
        },
    )
