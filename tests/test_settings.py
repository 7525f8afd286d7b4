"""Stack settings: every bad config is refused with a message naming its key, before any resource exists."""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest

from harness.stack_values import TEST_SECRETS, valid_config
from tests.pulumi_helpers import only, run_main
from tools.mocks import KubernetesMocks
from webapp_platform.config.errors import ConfigError
from webapp_platform.config.loading import parse_settings


def _resources(**limits_requests: Any) -> dict[str, Any]:
    base = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    for path, value in limits_requests.items():
        section, field = path.split("_")
        if value is None:
            base[section].pop(field)
        else:
            base[section][field] = value
    return base


BAD_CONFIGS: list[tuple[str, dict[str, Any], dict[str, str] | str | None, str]] = [
    (
        "empty-tag",
        valid_config(image={"repository": "ghcr.io/example/webapp", "tag": ""}),
        TEST_SECRETS,
        "webapp:image.tag: the image tag is empty",
    ),
    (
        "latest-tag",
        valid_config(image={"repository": "ghcr.io/example/webapp", "tag": "latest"}),
        TEST_SECRETS,
        "webapp:image.tag: 'latest' cannot be tracked or rolled back",
    ),
    (
        "tag-in-repository",
        valid_config(image={"repository": "ghcr.io/example/webapp:1.0.0", "tag": "1.0.0"}),
        TEST_SECRETS,
        "webapp:image.repository: 'ghcr.io/example/webapp:1.0.0' is not an image repository",
    ),
    (
        "malformed-quantity",
        valid_config(resources=_resources(limits_memory="512mb")),
        TEST_SECRETS,
        "webapp:resources.limits.memory: '512mb' is not a Kubernetes quantity",
    ),
    (
        "milli-memory",
        valid_config(resources=_resources(requests_memory="128m")),
        TEST_SECRETS,
        "webapp:resources.requests.memory: '128m' means milli-bytes; write Mi",
    ),
    (
        "limits-below-requests",
        valid_config(resources=_resources(limits_memory="64Mi", limits_cpu="50m")),
        TEST_SECRETS,
        "webapp:resources: limits.cpu 50m is below requests.cpu 100m; limits.memory 64Mi is below requests.memory",
    ),
    (
        "missing-limits",
        valid_config(resources={"requests": {"cpu": "100m", "memory": "128Mi"}}),
        TEST_SECRETS,
        "webapp:resources.limits is required but not set",
    ),
    (
        "missing-request-cpu",
        valid_config(resources=_resources(requests_cpu=None)),
        TEST_SECRETS,
        "webapp:resources.requests.cpu is required but not set",
    ),
    ("missing-resources", {"image": valid_config()["image"]}, None, "webapp:resources is required but not set"),
    (
        "zero-replicas",
        valid_config(replicas=0),
        TEST_SECRETS,
        "webapp:replicas: Input should be greater than or equal to 1",
    ),
    (
        "autoscaling-min-above-max",
        valid_config(autoscaling={"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        TEST_SECRETS,
        "webapp:autoscaling: minReplicas 5 is above maxReplicas 2",
    ),
    (
        "replicas-outside-autoscaling-range",
        valid_config(replicas=5, autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4}),
        TEST_SECRETS,
        "webapp: replicas 5 is outside autoscaling 2..4",
    ),
    (
        "same-name-plain-and-secret",
        valid_config(appConfig={"GREETING": "hi"}, secretKeys=["GREETING"]),
        {"GREETING": "x"},
        "webapp: ['GREETING'] are both in appConfig and secretKeys",
    ),
    (
        "ingress-without-host",
        valid_config(ingress={"enabled": True}),
        TEST_SECRETS,
        "webapp:ingress: an enabled ingress needs hosts",
    ),
    (
        "ingress-single-host-key",
        valid_config(ingress={"enabled": True, "host": "a.example.com", "tlsSecretName": "a-tls"}),
        TEST_SECRETS,
        "webapp:ingress: host became hosts, a list: hosts: [webapp.example.com]; tlsSecretName became tls",
    ),
    (
        "ingress-repeated-host",
        valid_config(ingress={"enabled": True, "hosts": ["a.example.com", "a.example.com"]}),
        TEST_SECRETS,
        "webapp:ingress: ['a.example.com'] appear more than once in hosts",
    ),
    (
        "ingress-tls-for-a-stranger",
        valid_config(
            ingress={
                "enabled": True,
                "hosts": ["a.example.com"],
                "tls": [{"secretName": "b-tls", "hosts": ["b.example.com"]}],
            }
        ),
        TEST_SECRETS,
        "webapp:ingress: tls names ['b.example.com'], which are not in hosts ['a.example.com']",
    ),
    (
        "ingress-host-in-two-certificates",
        valid_config(
            ingress={
                "enabled": True,
                "hosts": ["a.example.com"],
                "tls": [
                    {"secretName": "a-tls", "hosts": ["a.example.com"]},
                    {"secretName": "b-tls", "hosts": ["a.example.com"]},
                ],
            }
        ),
        TEST_SECRETS,
        "webapp:ingress: ['a.example.com'] appear more than once in the tls entries' hosts",
    ),
    (
        "tls-entry-without-hosts",
        valid_config(ingress={"enabled": True, "hosts": ["a.example.com"], "tls": [{"secretName": "a-tls"}]}),
        TEST_SECRETS,
        "webapp:ingress.tls.0.hosts is required but not set",
    ),
    (
        "route-without-gateway",
        valid_config(httpRoute={"enabled": True, "hostnames": ["a.example.com"]}),
        TEST_SECRETS,
        "webapp:httpRoute: an enabled httpRoute needs a gateway",
    ),
    (
        "route-without-hostnames",
        valid_config(httpRoute={"enabled": True, "gateway": {"name": "public"}}),
        TEST_SECRETS,
        "webapp:httpRoute: an enabled httpRoute needs hostnames",
    ),
    (
        "route-bad-gateway-namespace",
        valid_config(
            httpRoute={"enabled": True, "gateway": {"name": "public", "namespace": "Gate"}, "hostnames": ["a.io"]}
        ),
        TEST_SECRETS,
        "webapp:httpRoute.gateway.namespace: 'Gate' is not a DNS label",
    ),
    (
        "route-bad-scheme",
        valid_config(
            httpRoute={"enabled": True, "gateway": {"name": "public"}, "hostnames": ["a.io"], "scheme": "ftp"}
        ),
        TEST_SECRETS,
        "webapp:httpRoute.scheme: Input should be 'http' or 'https'",
    ),
    (
        "ingress-and-route",
        valid_config(
            ingress={"enabled": True, "hosts": ["a.example.com"]},
            httpRoute={"enabled": True, "gateway": {"name": "public"}, "hostnames": ["a.example.com"]},
        ),
        TEST_SECRETS,
        "webapp: ingress and httpRoute are both enabled; route through one of them",
    ),
    (
        "secret-looking-key-in-configmap",
        valid_config(appConfig={"GREETING": "hi", "STRIPE_API_KEY": "sk_live_x"}),
        TEST_SECRETS,
        "webapp:appConfig: STRIPE_API_KEY looks secret and would land in a plain ConfigMap",
    ),
    (
        "test-routes-through-app-config",
        valid_config(appConfig={"ENABLE_TEST_ROUTES": "true"}),
        TEST_SECRETS,
        "webapp:appConfig: ENABLE_TEST_ROUTES cannot be set through appConfig; the test routes are for test stacks "
        "only and are turned on by the setting enableTestRoutes",
    ),
    (
        "secret-as-plain-text",
        valid_config(),
        "PLAIN",
        "webapp:secrets holds plain text",
    ),
    (
        "missing-secret",
        valid_config(),
        {},
        "webapp:secrets.DATABASE_PASSWORD is missing (listed in secretKeys); set it with "
        "`pulumi config set --secret --path 'webapp:secrets.DATABASE_PASSWORD' <value> --stack test`",
    ),
    (
        "undeclared-secret",
        valid_config(),
        {**TEST_SECRETS, "OTHER_TOKEN": "x"},
        "webapp:secrets.OTHER_TOKEN is not listed in webapp:secretKeys",
    ),
    ("unknown-key", valid_config(replica=3), TEST_SECRETS, "webapp:replica is not a known setting"),
    (
        "bad-service-type",
        valid_config(service={"type": "External"}),
        TEST_SECRETS,
        "webapp:service.type: 'External' is not a Service type; expected one of ClusterIP, NodePort, LoadBalancer",
    ),
    (
        "bad-host",
        valid_config(ingress={"enabled": True, "hosts": ["a.example.com", "not a host"]}),
        TEST_SECRETS,
        "webapp:ingress.hosts.1: 'not a host' is not a DNS host name",
    ),
    (
        "alerts-without-service-monitor",
        valid_config(metrics={"alerts": True, "dashboard": True}),
        TEST_SECRETS,
        "webapp:metrics: alerts and dashboard need serviceMonitor: true",
    ),
    (
        "latency-objective-between-buckets",
        valid_config(metrics={"serviceMonitor": True, "alerts": True, "latencyObjectiveSeconds": 0.3}),
        TEST_SECRETS,
        "webapp:metrics.latencyObjectiveSeconds: 0.3 is not a bound of the app's latency histogram, so no series "
        "counts it; use one of 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30",
    ),
    (
        "availability-objective-of-100",
        valid_config(metrics={"serviceMonitor": True, "alerts": True, "availabilityObjective": 100}),
        TEST_SECRETS,
        "webapp:metrics.availabilityObjective: Input should be less than or equal to 99.99",
    ),
    (
        "bad-metrics-label",
        valid_config(metrics={"serviceMonitor": True, "labels": {"release": "kube prometheus"}}),
        TEST_SECRETS,
        "webapp:metrics.labels.release: 'kube prometheus' is not a label value",
    ),
    (
        "bad-annotation-key",
        valid_config(ingress={"enabled": True, "hosts": ["a.example.com"], "annotations": {"not a key": "x"}}),
        TEST_SECRETS,
        "webapp:ingress.annotations: ['not a key'] are not annotation keys",
    ),
    (
        "bad-name",
        valid_config(name="Web_App"),
        TEST_SECRETS,
        "webapp:name: 'Web_App' is not a DNS label",
    ),
    (
        "bad-ingress-path",
        valid_config(ingress={"enabled": True, "hosts": ["webapp.example.com"], "path": "api"}),
        TEST_SECRETS,
        "webapp:ingress.path: 'api' is not a path starting with '/'",
    ),
    (
        "bad-digest",
        valid_config(image={"repository": "ghcr.io/example/webapp", "tag": "1.4.2", "digest": "sha256:abc"}),
        TEST_SECRETS,
        "webapp:image.digest: 'sha256:abc' is not a digest of the form sha256:<64 hex digits>",
    ),
    (
        "bad-secret-key-name",
        valid_config(secretKeys=["DATABASE_PASSWORD", "api-token"]),
        {**TEST_SECRETS, "api-token": "x"},
        "webapp:secretKeys.1: 'api-token' is not an environment variable name (A-Z, 0-9, _)",
    ),
    (
        "bad-service-account-annotation",
        valid_config(serviceAccount={"annotations": {"not a key": "x"}}),
        TEST_SECRETS,
        "webapp:serviceAccount.annotations: ['not a key'] are not annotation keys",
    ),
    (
        "memory-target-too-low",
        valid_config(autoscaling={"enabled": True, "targetMemoryUtilization": 5}),
        TEST_SECRETS,
        "webapp:autoscaling.targetMemoryUtilization: Input should be greater than or equal to 10",
    ),
    (
        "toleration-exists-with-a-value",
        valid_config(scheduling={"tolerations": [{"key": "dedicated", "operator": "Exists", "value": "web"}]}),
        TEST_SECRETS,
        "webapp:scheduling.tolerations.0: operator Exists takes no value",
    ),
    (
        "toleration-seconds-without-no-execute",
        valid_config(scheduling={"tolerations": [{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 30}]}),
        TEST_SECRETS,
        "webapp:scheduling.tolerations.0: tolerationSeconds applies to effect NoExecute only",
    ),
    (
        "affinity-in-without-values",
        valid_config(
            scheduling={
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In"}]}]
                        }
                    }
                }
            }
        ),
        TEST_SECRETS,
        "webapp:scheduling.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0"
        ".matchExpressions.0: operator In needs values",
    ),
    (
        "affinity-gt-not-an-integer",
        valid_config(
            scheduling={
                "affinity": {
                    "nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 10,
                                "preference": {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["x"]}]},
                            }
                        ]
                    }
                }
            }
        ),
        TEST_SECRETS,
        "preference.matchExpressions.0: operator Gt needs exactly one integer value",
    ),
    (
        "affinity-weight-out-of-range",
        valid_config(
            scheduling={
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 0,
                                "podAffinityTerm": {
                                    "labelSelector": {"matchLabels": {"a": "b"}},
                                    "topologyKey": "kubernetes.io/hostname",
                                },
                            }
                        ]
                    }
                }
            }
        ),
        TEST_SECRETS,
        "webapp:scheduling.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight: "
        "Input should be greater than or equal to 1",
    ),
    (
        "affinity-empty-label-selector",
        valid_config(
            scheduling={
                "affinity": {
                    "podAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [
                            {"labelSelector": {}, "topologyKey": "topology.kubernetes.io/zone"}
                        ]
                    }
                }
            }
        ),
        TEST_SECRETS,
        "webapp:scheduling.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution.0.labelSelector: "
        "an empty labelSelector selects every pod",
    ),
    (
        "affinity-unknown-field",
        valid_config(scheduling={"affinity": {"nodeAffinity": {"requiredDuringScheduling": {}}}}),
        TEST_SECRETS,
        "webapp:scheduling.affinity.nodeAffinity.requiredDuringScheduling is not a known field here",
    ),
    (
        "bad-node-selector-value",
        valid_config(scheduling={"nodeSelector": {"pool": "web pool"}}),
        TEST_SECRETS,
        "webapp:scheduling.nodeSelector.pool: 'web pool' is not a label value",
    ),
    (
        "bad-zone-spread",
        valid_config(scheduling={"zoneSpread": "always"}),
        TEST_SECRETS,
        "webapp:scheduling.zoneSpread: Input should be 'preferred' or 'required'",
    ),
    (
        "managed-env-through-app-config",
        valid_config(appConfig={"DRAIN_SECONDS": "9"}),
        TEST_SECRETS,
        "webapp:appConfig: DRAIN_SECONDS is set by the Deployment itself (from drainSeconds), which would override "
        "appConfig; use that setting instead",
    ),
    (
        "test-routes-through-a-secret",
        valid_config(secretKeys=["DATABASE_PASSWORD", "ENABLE_TEST_ROUTES"]),
        {**TEST_SECRETS, "ENABLE_TEST_ROUTES": "true"},
        "webapp:secretKeys: ENABLE_TEST_ROUTES is set by the Deployment itself (from enableTestRoutes); "
        "a Secret cannot set it",
    ),
    (
        "trusted-proxies-through-a-secret",
        valid_config(secretKeys=["TRUSTED_PROXIES"]),
        {"TRUSTED_PROXIES": "5"},
        "webapp:secretKeys: TRUSTED_PROXIES is set by the Deployment itself (from trustedProxies); "
        "a Secret cannot set it",
    ),
    (
        "trusted-proxies-that-anyone-can-reach",
        valid_config(trustedProxies=1),
        TEST_SECRETS,
        "trustedProxies 1 believes X-Forwarded-For from whoever reaches the pods; list the namespaces of the proxies "
        "in front in proxyNamespaces",
    ),
    (
        "trusted-proxies-behind-a-load-balancer",
        valid_config(trustedProxies=1, proxyNamespaces=["ingress-nginx"], service={"type": "LoadBalancer"}),
        TEST_SECRETS,
        "service.type LoadBalancer lets clients reach the pods without the proxies in front, and trustedProxies 1 "
        "would believe the X-Forwarded-For they write",
    ),
    (
        "bad-proxy-namespace",
        valid_config(proxyNamespaces=["ingress nginx"]),
        TEST_SECRETS,
        "webapp:proxyNamespaces.0: 'ingress nginx' is not a DNS label",
    ),
    (
        "service-port-on-the-management-port",
        valid_config(service={"port": 8081}, metrics={"serviceMonitor": True}),
        TEST_SECRETS,
        "service.port 8081 is the management port, which metrics.serviceMonitor adds to the Service as well",
    ),
    (
        "bad-namespace",
        valid_config(namespace="web.app"),
        TEST_SECRETS,
        "webapp:namespace: 'web.app' is not a DNS label",
    ),
    (
        "bad-tls-secret-name",
        valid_config(
            ingress={
                "enabled": True,
                "hosts": ["webapp.example.com"],
                "tls": [{"secretName": "Webapp TLS", "hosts": ["webapp.example.com"]}],
            }
        ),
        TEST_SECRETS,
        "webapp:ingress.tls.0.secretName: 'Webapp TLS' is not a DNS subdomain name",
    ),
    (
        "existing-secret-and-values",
        valid_config(existingSecret="webapp-env"),
        TEST_SECRETS,
        "webapp:existingSecret and webapp:secrets.DATABASE_PASSWORD are both set",
    ),
    (
        "bad-existing-secret-name",
        valid_config(existingSecret="Not A Name"),
        {},
        "webapp:existingSecret: 'Not A Name' is not a DNS subdomain name",
    ),
    (
        "bad-image-pull-secret-name",
        valid_config(imagePullSecrets=["registry-login", "Registry Login"]),
        TEST_SECRETS,
        "webapp:imagePullSecrets.1: 'Registry Login' is not a DNS subdomain name",
    ),
    (
        "rollout-timeout-too-short",
        valid_config(rolloutTimeoutSeconds=5),
        TEST_SECRETS,
        "webapp:rolloutTimeoutSeconds: Input should be greater than or equal to 30",
    ),
    (
        "negative-drain",
        valid_config(drainSeconds="-1"),
        TEST_SECRETS,
        "webapp:drainSeconds: Input should be greater than or equal to 0",
    ),
    (
        "zero-keepalive",
        valid_config(keepaliveSeconds=0),
        TEST_SECRETS,
        "webapp:keepaliveSeconds: Input should be greater than or equal to 1",
    ),
    (
        "bad-scrape-interval",
        valid_config(metrics={"interval": "half a minute"}),
        TEST_SECRETS,
        "webapp:metrics.interval: 'half a minute' is not a Prometheus duration",
    ),
    (
        "bad-scrape-namespace",
        valid_config(metrics={"scrapeNamespace": "Monitoring"}),
        TEST_SECRETS,
        "webapp:metrics.scrapeNamespace: 'Monitoring' is not a DNS label",
    ),
    (
        "service-monitor-on-a-load-balancer",
        valid_config(metrics={"serviceMonitor": True}, service={"type": "LoadBalancer"}),
        TEST_SECRETS,
        "a LoadBalancer Service would publish /metrics outside the cluster",
    ),
    # Issue 35, F9: what a review found rendering with no objection, and what the settings adversary found beside it.
    (
        "ingress-server-snippet",
        valid_config(
            ingress={
                "enabled": True,
                "hosts": ["webapp.example.com"],
                "annotations": {"nginx.ingress.kubernetes.io/server-snippet": "location /admin { allow all; }"},
            }
        ),
        TEST_SECRETS,
        "webapp:ingress.annotations: nginx.ingress.kubernetes.io/server-snippet is a configuration snippet: the "
        "controller pastes its text into its own configuration, shared by every host it serves",
    ),
    (
        "route-configuration-snippet",
        valid_config(
            httpRoute={
                "enabled": True,
                "gateway": {"name": "shared"},
                "hostnames": ["webapp.example.com"],
                "annotations": {"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers 'A: b';"},
            }
        ),
        TEST_SECRETS,
        "webapp:httpRoute.annotations: nginx.ingress.kubernetes.io/configuration-snippet is a configuration snippet",
    ),
    (
        "control-plane-node-selector",
        valid_config(scheduling={"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}),
        TEST_SECRETS,
        "webapp:scheduling.nodeSelector: node-role.kubernetes.io/control-plane selects the control plane's nodes",
    ),
    (
        "master-node-affinity",
        valid_config(
            scheduling={
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]}
                            ]
                        }
                    }
                }
            }
        ),
        TEST_SECRETS,
        "nodeSelectorTerms.0.matchExpressions.0: node-role.kubernetes.io/master selects the control plane's nodes",
    ),
    (
        "toleration-of-every-taint",
        valid_config(scheduling={"tolerations": [{"operator": "Exists"}]}),
        TEST_SECRETS,
        "webapp:scheduling.tolerations.0: a toleration with operator Exists and no key tolerates every taint",
    ),
    (
        "toleration-without-a-key",
        valid_config(scheduling={"tolerations": [{"operator": "Equal", "effect": "NoSchedule"}]}),
        TEST_SECRETS,
        "webapp:scheduling.tolerations.0: a toleration needs a key (Kubernetes refuses operator Equal without one)",
    ),
    (
        "toleration-of-the-control-plane",
        valid_config(
            scheduling={
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
                ]
            }
        ),
        TEST_SECRETS,
        "webapp:scheduling.tolerations.0: node-role.kubernetes.io/control-plane is the control plane's taint",
    ),
    (
        "kube-system-namespace",
        valid_config(namespace="kube-system", createNamespace=False),
        TEST_SECRETS,
        "webapp:namespace: kube-system is the cluster's own namespace",
    ),
    (
        "default-namespace",
        valid_config(namespace="default", createNamespace=False),
        TEST_SECRETS,
        "webapp:namespace: default is the cluster's own namespace",
    ),
    (
        "credentials-in-a-database-url",
        valid_config(appConfig={"DATABASE_URL": "postgres://user:hunter2@db.internal:5432/app"}),
        TEST_SECRETS,
        "webapp:appConfig: DATABASE_URL's value holds a password in a URL (scheme://user:password@host) and would "
        "land in a plain ConfigMap; list it in secretKeys and set it with "
        "`pulumi config set --secret --path 'webapp:secrets.DATABASE_URL' <value>`",
    ),
    (
        "password-in-a-connection-string",
        valid_config(appConfig={"DATABASE_DSN": "host=db user=app password=hunter2 dbname=app"}),
        TEST_SECRETS,
        "webapp:appConfig: DATABASE_DSN's value holds a secret-named parameter (password=...)",
    ),
    (
        "token-in-a-webhook-url",
        valid_config(appConfig={"ALERT_HOOK": "https://hooks.example.com/in?channel=ops&token=hunter2"}),
        TEST_SECRETS,
        "webapp:appConfig: ALERT_HOOK's value holds a secret-named parameter (token=...)",
    ),
    (
        "private-key-in-app-config",
        valid_config(appConfig={"TLS_PEM": "-----BEGIN EC PRIVATE KEY-----\nhunter2\n-----END EC PRIVATE KEY-----"}),
        TEST_SECRETS,
        "webapp:appConfig: TLS_PEM's value holds a private key",
    ),
    (
        "probes-on-the-traffic-port-beside-a-management-port",
        valid_config(app={"readiness": {"path": "/ready", "port": "traffic"}}),
        TEST_SECRETS,
        "webapp:app: readiness probe the traffic port, where a probe waits behind busy request threads",
    ),
]


@pytest.mark.parametrize(("raw", "secrets", "message"), [pytest.param(r, s, m, id=i) for i, r, s, m in BAD_CONFIGS])
def test_bad_config_is_refused_before_any_resource(
    raw: dict[str, Any], secrets: Any, message: str, mocks: KubernetesMocks
) -> None:
    plain = secrets == "PLAIN"
    with pytest.raises(ConfigError) as exc:
        run_main(raw, TEST_SECRETS if plain else secrets, mocks=mocks, mark_secret=not plain)
    assert message in str(exc.value), str(exc.value)
    assert mocks.resources == [], "no resource may be registered when the config is invalid"


def test_all_problems_are_reported_together() -> None:
    raw = valid_config(
        image={"repository": "ghcr.io/example/webapp", "tag": "latest"},
        replicas=0,
        ingress={"enabled": True},
        appConfig={"DB_PASSWORD": "x"},
    )
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", raw, set())
    problems = exc.value.problems
    assert len(problems) == 5, problems  # tag, replicas, ingress, appConfig, missing secret
    assert "(5 problem(s))" in str(exc.value)


def test_a_secret_outside_the_secrets_map_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", {**valid_config(), "namespace": "ns"}, {"namespace"})
    assert "webapp:namespace is a secret, but only webapp:secrets.<NAME> may hold secrets" in str(exc.value)


def test_defaults() -> None:
    settings = parse_settings("test", valid_config(secretKeys=[]), set()).settings
    assert settings.replicas == 1
    assert settings.service.type == "ClusterIP"
    assert settings.service.port == 80
    assert settings.ingress.enabled is False
    assert settings.drain_seconds == 5
    assert settings.graceful_timeout_seconds == 20
    assert settings.autoscaling.enabled is False
    assert settings.disruption_budget.max_unavailable == 1
    assert settings.namespace_name("test") == "webapp-test"
    assert settings.name == "webapp"
    assert settings.existing_secret is None
    assert (settings.keepalive_seconds, settings.stall_seconds) == (75, 30)
    assert settings.metrics.service_monitor is False
    assert settings.metrics.scrape_namespace == "monitoring"


def test_an_existing_secret_needs_no_secret_values_and_the_program_makes_no_secret() -> None:
    run = run_main(valid_config(existingSecret="webapp-env"), None)
    assert [r.kind for r in run.resources if r.kind == "Secret"] == []
    env_from = only(run, "Deployment").inputs["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "webapp-env"}} in env_from


def test_values_arrive_as_text_like_the_cli_sends_them() -> None:
    raw = valid_config(replicas="3", drainSeconds="7", appConfig='{"WEB_CONCURRENCY": 4, "FEATURE_X": true}')
    settings = parse_settings("test", {**raw, "secretKeys": "[]"}, set()).settings
    assert settings.replicas == 3
    assert settings.drain_seconds == 7
    assert settings.app_config == {"WEB_CONCURRENCY": "4", "FEATURE_X": "true"}


def test_image_reference_pins_digest_when_given() -> None:
    digest = "sha256:" + "a" * 64
    raw = valid_config(image={"repository": "ghcr.io/example/webapp", "tag": "1.4.2", "digest": digest}, secretKeys=[])
    assert parse_settings("t", raw, set()).settings.image.reference == f"ghcr.io/example/webapp:1.4.2@{digest}"


@pytest.mark.parametrize("tag", ["1.4.2", "v1.4.2-rc.1", "sha-860c190", "860c190", "main", "_build", "A" * 128])
def test_any_oci_tag_but_latest_is_deployable(tag: str) -> None:
    raw = valid_config(image={"repository": "ghcr.io/example/webapp", "tag": tag}, secretKeys=[])
    assert parse_settings("dev", raw, set()).settings.image.tag == tag


@pytest.mark.parametrize("tag", [".hidden", "-rc", "1.4.2+build", "a b", "A" * 129, "LATEST", "Latest"])
def test_tags_outside_the_oci_grammar_and_latest_are_refused(tag: str) -> None:
    raw = valid_config(image={"repository": "ghcr.io/example/webapp", "tag": tag}, secretKeys=[])
    with pytest.raises(ConfigError, match=r"webapp:image\.tag: .*(not an image tag|'latest' cannot be tracked)"):
        parse_settings("dev", raw, set())


def test_prod_never_deploys_without_a_digest() -> None:
    raw = valid_config(image={"repository": "ghcr.io/example/webapp", "tag": "1.4.2"}, secretKeys=[])
    assert parse_settings("staging", raw, set()).settings.image.digest is None
    with pytest.raises(ConfigError, match=r"webapp:image\.digest: stack prod deploys only by digest"):
        parse_settings("prod", raw, set())
    digest = "sha256:" + "b" * 64
    pinned = valid_config(
        image={"repository": "ghcr.io/example/webapp", "tag": "1.4.2", "digest": digest}, secretKeys=[]
    )
    assert parse_settings("prod", pinned, set()).settings.image.digest == digest


def test_secret_and_ingress_class_names_may_hold_dots_as_kubernetes_allows() -> None:
    tls = [{"secretName": "webapp.example.com-tls", "hosts": ["webapp.example.com"]}]
    ingress = {"enabled": True, "hosts": ["webapp.example.com"], "tls": tls}
    raw = valid_config(ingress={**ingress, "className": "nginx.internal"}, secretKeys=[])
    values = parse_settings("dev", raw, set()).settings
    assert (values.ingress.tls[0].secret_name, values.ingress.class_name) == (
        "webapp.example.com-tls",
        "nginx.internal",
    )


def test_settings_are_frozen() -> None:
    settings = parse_settings("test", valid_config(secretKeys=[]), set()).settings
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        settings.replicas = 5


def test_reads_config_the_way_the_cli_hands_it_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `pulumi up` the language host passes PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS."""
    import json

    from pulumi.runtime import config as runtime_config

    from webapp_platform.config.loading import read_raw_config

    config_token = runtime_config.CONFIG.set({})  # nothing set in-process: only the environment counts
    secrets_token = runtime_config._SECRET_KEYS.set(set())
    cli_config = {
        "webapp:replicas": "3",
        "webapp:image": json.dumps({"repository": "ghcr.io/example/webapp", "tag": "1.4.2"}),
        "webapp:secrets": json.dumps(TEST_SECRETS),
        "kubernetes:context": "prod",
    }
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(cli_config))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["webapp:secrets"]))
    try:
        raw, secret_keys = read_raw_config()
    finally:
        runtime_config.CONFIG.reset(config_token)
        runtime_config._SECRET_KEYS.reset(secrets_token)
    assert raw == {"replicas": "3", "image": cli_config["webapp:image"], "secrets": cli_config["webapp:secrets"]}
    assert secret_keys == {"secrets"}


@pytest.mark.parametrize(
    "key",
    [
        "nginx.ingress.kubernetes.io/auth-snippet",
        "nginx.ingress.kubernetes.io/stream-snippet",
        "nginx.ingress.kubernetes.io/modsecurity-snippet",
        "nginx.org/location-snippets",
        "haproxy.org/backend-config-snippet",
    ],
)
def test_every_controller_snippet_is_refused_by_name(key: str) -> None:
    ingress = {"enabled": True, "hosts": ["webapp.example.com"], "annotations": {key: "return 200;"}}
    with pytest.raises(ConfigError, match=rf"webapp:ingress\.annotations: {re.escape(key)} is a configuration snippet"):
        parse_settings("test", valid_config(ingress=ingress, secretKeys=[]), set())


@pytest.mark.parametrize("namespace", ["kube-public", "kube-node-lease", "kube-flannel"])
def test_the_clusters_own_namespaces_are_refused_created_or_not(namespace: str) -> None:
    for create in (True, False):
        with pytest.raises(ConfigError, match=rf"webapp:namespace: {namespace} is the cluster's own namespace"):
            parse_settings("test", valid_config(namespace=namespace, createNamespace=create, secretKeys=[]), set())


def test_a_refused_credential_is_never_repeated() -> None:
    # The error goes to the terminal, the CI log and the pull-request comment: it names the key, never the value.
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", valid_config(appConfig={"DATABASE_URL": "postgres://u:hunter2@db/app"}), set())
    assert "webapp:appConfig: DATABASE_URL's value holds a password in a URL" in str(exc.value)
    assert "hunter2" not in str(exc.value)


@pytest.mark.parametrize(
    "value",
    [
        "postgres://app@db.internal:5432/app",  # a user, no password: the password comes from DATABASE_PASSWORD
        "https://cdn.example.com:8443/@team/logo.png",  # a port, then an @ in the path
        "https://api.example.com/v1?page=2&sort=name",
        "Hello from dev",
        "x:y@z",
        "http://[::1]:8080/",
        # Parameters whose names hold a secret word but whose values are none (found by review: refused before).
        "postgresql://db.internal:5432/app?sslmode=verify-full&sslrootcert=/etc/ssl/rds-ca.pem",
        "rediss://redis:6380/0?ssl_cert_reqs=required",
        "mongodb://mongo:27017/app?tls=true&tlsCertificateKeyFile=/etc/tls/client.pem",
        "model=small&max_tokens=256",
        "security.protocol=SSL ssl.keystore.location=/etc/kafka/ks.jks",
    ],
)
def test_values_without_credentials_stay_plain_config(value: str) -> None:
    settings = parse_settings("test", valid_config(appConfig={"UPSTREAM": value}, secretKeys=[]), set()).settings
    assert settings.app_config == {"UPSTREAM": value}


def test_a_node_pool_of_its_own_and_keeping_off_the_control_plane_are_fine() -> None:
    away = {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}
    scheduling = {
        "nodeSelector": {"node-pool": "web"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [away]}]}
            }
        },
    }
    settings = parse_settings("test", valid_config(scheduling=scheduling, secretKeys=[]), set()).settings
    assert settings.scheduling.node_selector == {"node-pool": "web"}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("--password=hunter2", "password=..."),
        ("-Ddb.password=hunter2 -Xmx512m", "Ddb.password=..."),
        ("Server=db;User Id=sa;Password = hunter2;", "Password=..."),
        ('{"user": "app", "password": "hunter2"}', "password=..."),
        ("client_id=web&client_secret=hunter2", "client_secret=..."),
        ("apiKey=hunter2", "apiKey=..."),
    ],
)
def test_credentials_in_other_syntaxes_are_refused(value: str, named: str) -> None:
    # Command-line options, spaces around `=`, JSON and camelCase: each got past the first version of the rule.
    with pytest.raises(ConfigError) as exc:
        parse_settings("test", valid_config(appConfig={"EXTRA": value}), set())
    assert f"webapp:appConfig: EXTRA's value holds a secret-named parameter ({named})" in str(exc.value)
    assert "hunter2" not in str(exc.value)
