"""Availability of a WebService's pods: the disruption budget when several run, and the autoscaler."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from webapp_platform.components.service_args import ServiceObjects


def disruption_budget(objects: ServiceObjects) -> k8s.policy.v1.PodDisruptionBudget:
    """At most `max_unavailable` pods out at once through voluntary disruptions (node drains)."""
    return k8s.policy.v1.PodDisruptionBudget(
        f"{objects.name}-pdb",
        metadata=objects.metadata(),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=objects.args.max_unavailable, selector=objects.match()
        ),
        opts=objects.opts,
    )


def autoscaler(
    objects: ServiceObjects, deployment: k8s.apps.v1.Deployment
) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    """An autoscaling/v2 autoscaler of the Deployment on CPU (and memory), at a bounded pace."""
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
