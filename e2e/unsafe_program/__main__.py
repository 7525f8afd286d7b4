"""A Deployment with an unpinned image and no probes or resources: the policy pack must stop its preview."""

import pulumi_kubernetes as k8s

k8s.apps.v1.Deployment(
    "unsafe",
    spec=k8s.apps.v1.DeploymentSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app": "unsafe"}),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels={"app": "unsafe"}),
            spec=k8s.core.v1.PodSpecArgs(containers=[k8s.core.v1.ContainerArgs(name="web", image="nginx:latest")]),
        ),
    ),
)
