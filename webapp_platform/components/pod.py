"""The pod of a WebService: its spec, the app's container (ports, env, probes, resources, hardened security
context) and how the pods spread over zones and nodes."""

from __future__ import annotations

from typing import cast

import pulumi
import pulumi_kubernetes as k8s

from webapp_platform.components.service_args import ServiceObjects, WebServiceArgs
from webapp_platform.config.contract import AppContract, Endpoint, PortRole
from webapp_platform.config.rules import (
    APP_ENVIRONMENT,
    MANAGEMENT_PORT_NAME,
    TEST_ROUTES_ENV,
)

CONTAINER_PORT_NAME = "http"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
PROBE_TIMEOUT_SECONDS = 2
"""Every probe's timeoutSeconds: the app's management port answers in milliseconds however busy it is."""


def port_name(role: PortRole) -> str:
    """The container port name of one of the app's ports: the probes, the Service and the ServiceMonitor name it."""
    return MANAGEMENT_PORT_NAME if role == "management" else CONTAINER_PORT_NAME


def scrape_annotations(app: AppContract) -> dict[str, str] | None:
    """The prometheus.io annotations that annotation-based Prometheus configurations discover pods by, when the app
    publishes metrics."""
    if app.metrics is None:
        return None
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(app.port_number(app.metrics.port)),
        "prometheus.io/path": app.metrics.path,
    }


def termination_grace_seconds(args: WebServiceArgs) -> int:
    """How long Kubernetes waits, from the pod's deletion, before SIGKILL: the drain (the app's own, or the preStop
    wait before SIGTERM), then the in-flight requests, plus a margin."""
    return args.timings.termination_grace_seconds(args.app.pre_stop_seconds if args.app.drain == "preStop" else None)


def pod_spec(objects: ServiceObjects, service_account_name: pulumi.Input[str]) -> k8s.core.v1.PodSpecArgs:
    """The pod spec: its own ServiceAccount (no token), the grace period that covers the drain, a restricted
    security context, a memory-backed /tmp, the stack's scheduling, and a spread when several pods run."""
    args = objects.args
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account_name,
        automount_service_account_token=False,
        enable_service_links=False,
        image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=n) for n in args.image_pull_secrets] or None,
        termination_grace_period_seconds=termination_grace_seconds(args),
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=args.app.run_as_user,
            run_as_group=args.app.run_as_group,
            fs_group=args.app.run_as_group,
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


def _spread(objects: ServiceObjects) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Pods spread over zones (required or preferred, as the stack says) and over nodes (preferred)."""
    zone_rule = "DoNotSchedule" if objects.args.scheduling.zone_spread == "required" else "ScheduleAnyway"
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1, topology_key=key, when_unsatisfiable=rule, label_selector=objects.match()
        )
        for key, rule in ((ZONE_LABEL, zone_rule), (HOSTNAME_LABEL, "ScheduleAnyway"))
    ]


def app_env(args: WebServiceArgs) -> dict[str, str]:
    """The app's environment the Deployment sets itself: the variables its contract reads, in `APP_ENVIRONMENT`'s
    order.

    Set whatever their values: the container's env wins over its envFrom, so no Secret (existingSecret holds
    keys this program never sees) can turn on the test routes or make the app believe forged addresses.
    """
    values = {
        "APP_VERSION": args.image.tag,
        "PORT": str(args.app.port),
        "MANAGEMENT_PORT": str(args.app.management_port),
        **args.timings.env(),
        "TRUSTED_PROXIES": str(args.trusted_proxies),
        TEST_ROUTES_ENV: "true" if args.enable_test_routes else "false",
    }
    unknown = sorted(set(values) - {variable.name for variable in APP_ENVIRONMENT})
    if unknown:
        raise ValueError(
            f"{unknown} are not in webapp_platform.config.rules.APP_ENVIRONMENT, the app's environment contract"
        )
    wanted = set(args.app.platform_env)
    return {variable.name: values[variable.name] for variable in APP_ENVIRONMENT if variable.name in wanted}


def _container(name: str, args: WebServiceArgs) -> k8s.core.v1.ContainerArgs:
    env = app_env(args)
    env_from = []
    if args.config_map_name is not None:
        env_from.append(
            k8s.core.v1.EnvFromSourceArgs(config_map_ref=k8s.core.v1.ConfigMapEnvSourceArgs(name=args.config_map_name))
        )
    if args.secret_name is not None:
        env_from.append(
            k8s.core.v1.EnvFromSourceArgs(secret_ref=k8s.core.v1.SecretEnvSourceArgs(name=args.secret_name))
        )
    app = args.app
    ports = [k8s.core.v1.ContainerPortArgs(name=CONTAINER_PORT_NAME, container_port=app.port, protocol="TCP")]
    if app.management_port is not None:
        ports.append(
            k8s.core.v1.ContainerPortArgs(name=MANAGEMENT_PORT_NAME, container_port=app.management_port, protocol="TCP")
        )
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=args.image.reference,
        image_pull_policy="IfNotPresent",
        command=app.command,
        args=app.args,
        ports=ports,
        env=[k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in env.items()] or None,
        env_from=env_from,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.resources.requests.cpu, "memory": args.resources.requests.memory},
            limits={"cpu": args.resources.limits.cpu, "memory": args.resources.limits.memory},
        ),
        # The bundled app answers every probe on its management port, from its master, however busy the workers
        # are. Generous start-up window; liveness only starts once the app has answered.
        startup_probe=_probe(app.startup, period=2, timeout=PROBE_TIMEOUT_SECONDS, failures=30),
        # Restart a process that stopped answering, or whose worker has been stalled for STALL_SECONDS
        # (then restarted within STALL_SECONDS + 30 s at most).
        liveness_probe=_probe(app.liveness, period=10, timeout=PROBE_TIMEOUT_SECONDS, failures=3),
        # Leave the Service's endpoints within seconds of /ready turning 503, well inside the drain.
        readiness_probe=_probe(app.readiness, period=2, timeout=PROBE_TIMEOUT_SECONDS, failures=1),
        # An app that does not drain itself gets the wait here: SIGTERM comes once the endpoints have dropped it.
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(sleep=k8s.core.v1.SleepActionArgs(seconds=app.pre_stop_seconds))
        )
        if app.drain == "preStop"
        else None,
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=app.run_as_user,
            run_as_group=app.run_as_group,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
    )


def _probe(endpoint: Endpoint, *, period: int, timeout: int, failures: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=endpoint.path, port=port_name(endpoint.port)),
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
        success_threshold=1,
    )
