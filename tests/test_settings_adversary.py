"""The settings adversary (issue 35, item 2c): generated stack settings, rendered offline, refused or safe.

Hypothesis generates whole stack settings, within the schema and just outside it, with the shapes a careless or
hostile stack file takes (controller snippets among the annotations, control-plane node selectors and catch-all
tolerations, the cluster's own namespaces, credentials inside appConfig values), and runs the real program on
each under the mocks, as the other tests do (`tests.pulumi_helpers.run_main`). Each case must end one of two ways:

- refused before any resource exists, every problem naming the setting at fault (`webapp:<key path>...`), and
  every setting the generator knows is outside the schema among them; or
- rendered into manifests that pass the strict Kubernetes schemas, the restricted Pod Security Standard, every
  policy of the pack, and the isolation invariants below; and, for a handful of them in one scan, checkov.

The isolation invariants are stated here in Kubernetes' terms (taint matching, the namespaces a cluster starts
with, where a planted credential may appear), independently of the rules in webapp_platform/config/rules.py on
purpose: an oracle built from the rules would pass whatever the rules miss.

Seeded and reproducible: `ADVERSARY_SEED=<n>` replays a run (the seed is printed either way), and
`ADVERSARY_EXAMPLES=<n>` searches longer than CI's default. Every case it has found is an `@example` below.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, seed, settings
from hypothesis import strategies as st

from harness.stack_values import TEST_SECRETS, valid_config
from tests.pulumi_helpers import run_main
from tools.manifests import Manifest, to_manifests
from tools.mocks import ProgramRun
from tools.policy_checks import pack_violations
from tools.render import Rendered, check_stacks, write_manifests
from tools.validate import CheckovScan, schema_problems
from webapp_platform.config.errors import ConfigError

SEED = int(os.environ.get("ADVERSARY_SEED", "35"))
"""The search's seed: CI's fixed one, or the one a run printed."""
EXAMPLES = int(os.environ.get("ADVERSARY_EXAMPLES", "200"))
"""How many generated stacks one run tries (about 0.1 s each on a loaded 2-core machine; 20-35 s in all, with
checkov's scan)."""
CHECKOV_SAMPLE = 4
"""How many of the rendered stacks checkov scans, in one run (it takes seconds to start)."""

PLANTED = "Pz9"
"""Every credential the generator plants in a plain setting starts so; none may reach a manifest but a Secret."""

# ---------------------------------------------------------------------------------------------------------------
# The oracles
# ---------------------------------------------------------------------------------------------------------------

POD_PATHS = {"Deployment": ("spec", "template", "spec"), "Pod": ("spec",)}
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
"""The volume types the restricted Pod Security Standard allows."""


def _pod_spec(manifest: Manifest) -> Mapping[str, Any] | None:
    value: Any = manifest.body
    for key in POD_PATHS.get(manifest.kind, ("-",)):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else None


def restricted_problems(pod: Mapping[str, Any]) -> list[str]:
    """Where a pod spec breaks the restricted Pod Security Standard (baseline included), as the admission controller
    of a namespace labelled `pod-security.kubernetes.io/enforce: restricted` would judge it."""
    problems = [f"sets {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    problems += [
        f"volume {volume.get('name')!r} is not of a restricted type"
        for volume in pod.get("volumes") or []
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES
    ]
    pod_context = pod.get("securityContext") or {}
    if pod_context.get("sysctls"):
        problems.append("sets sysctls")
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers") for c in pod.get(key) or []]
    for container in containers:
        context = container.get("securityContext") or {}
        name = container.get("name")

        def either(key: str, context: Mapping[str, Any] = context) -> Any:
            return context.get(key, pod_context.get(key))

        capabilities = context.get("capabilities") or {}
        checks = {
            "is privileged": context.get("privileged") is True,
            "may escalate privileges": context.get("allowPrivilegeEscalation") is not False,
            "does not drop ALL capabilities": "ALL" not in (capabilities.get("drop") or []),
            "adds a capability beyond NET_BIND_SERVICE": bool(
                set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
            ),
            "may run as root": either("runAsNonRoot") is not True or either("runAsUser") == 0,
            "has no RuntimeDefault or Localhost seccomp profile": (either("seccompProfile") or {}).get("type")
            not in ("RuntimeDefault", "Localhost"),
            "binds a host port": any(port.get("hostPort") for port in container.get("ports") or []),
            "sets a procMount": context.get("procMount", "Default") != "Default",
        }
        problems += [f"container {name!r} {what}" for what, broken in checks.items() if broken]
    return problems


CONTROL_PLANE_TAINTS = (
    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
)
"""The taints kubeadm (and most distributions) put on control-plane nodes; `master` until Kubernetes 1.24."""
CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""The namespaces a Kubernetes cluster starts with: its own, never a namespace of one app's."""


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    """Kubernetes' own matching (k8s.io/api/core/v1 Toleration.ToleratesTaint)."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and (toleration.get("value") or "") == taint.get("value", "")


def _requires_control_plane(pod: Mapping[str, Any]) -> bool:
    labels = {taint["key"] for taint in CONTROL_PLANE_TAINTS}  # kubeadm labels those nodes with the same keys
    if labels & set(pod.get("nodeSelector") or {}):
        return True
    affinity = ((pod.get("affinity") or {}).get("nodeAffinity")) or {}
    terms = [
        *((affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []),
        *(p["preference"] for p in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []),
    ]
    return any(
        e["key"] in labels and e["operator"] in ("In", "Exists")
        for term in terms
        for e in term.get("matchExpressions") or []
    )


def isolation_problems(
    manifests: list[Manifest], outputs: Mapping[str, Any], planted: list[str]
) -> dict[str, list[str]]:
    """Where the rendered stack breaks what the issue says a stack must never do, by invariant: sit in the cluster's
    own namespaces, hand a shared controller raw configuration, run on the control plane, or show a credential
    outside a Secret."""
    found: dict[str, list[str]] = {
        "namespace": [],
        "snippet": [],
        "tolerates the control plane": [],
        "selects the control plane": [],
        "credential": [],
    }
    for manifest in manifests:
        where = f"{manifest.kind} {manifest.name}"
        metadata = manifest.body.get("metadata") or {}
        namespace = manifest.name if manifest.kind == "Namespace" else metadata.get("namespace")
        if namespace in CLUSTER_NAMESPACES or str(namespace).startswith("kube-"):
            found["namespace"].append(f"{where} is in the cluster's own namespace {namespace}")
        found["snippet"] += [
            f"{where} carries the controller snippet {key}"
            for key in metadata.get("annotations") or {}
            if "snippet" in key.rsplit("/", 1)[-1].lower()
        ]
        pod = _pod_spec(manifest)
        if pod is not None:
            tolerations = pod.get("tolerations") or []
            tolerated = [t["key"] for t in CONTROL_PLANE_TAINTS if any(_tolerates(x, t) for x in tolerations)]
            if tolerated:
                found["tolerates the control plane"].append(f"{where}'s pods tolerate the taints {tolerated}")
            if _requires_control_plane(pod):
                found["selects the control plane"].append(f"{where}'s pods select control-plane nodes")
        if manifest.kind != "Secret":
            text = json.dumps(manifest.body)
            found["credential"] += [f"{where} shows the credential {secret}" for secret in planted if secret in text]
    outputs_text = json.dumps(outputs, default=str)
    found["credential"] += [f"the stack outputs show {secret}" for secret in planted if secret in outputs_text]
    return found


SETTING_IN_PROBLEM = re.compile(r"^webapp:(?P<path>[A-Za-z][A-Za-z0-9_.\-/*]*)")


def unnamed_problems(problems: list[str], raw: Mapping[str, Any]) -> list[str]:
    """The problems that do not name a setting this stack set: each must start `webapp:<key>` with one of its keys,
    or, for a check across keys (`webapp: ...`), name one of them in its text."""
    keys = {*raw, "secrets"}
    unnamed = []
    for problem in problems:
        match = SETTING_IN_PROBLEM.match(problem)
        if match:
            named = match.group("path").split(".")[0] in keys
        else:
            named = problem.startswith("webapp: ") and any(re.search(rf"\b{re.escape(k)}\b", problem) for k in keys)
        if not named:
            unnamed.append(problem)
    return unnamed


# ---------------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One generated stack: its settings, the settings the generator knows are outside the schema, and the
    credentials it planted in plain settings."""

    raw: dict[str, Any]
    wrong: list[str] = field(default_factory=list)
    """Setting paths outside the schema: the stack must be refused, naming each."""
    planted: list[str] = field(default_factory=list)

    def set(self, key: str, value: Any, wrong: str | None = None) -> None:
        """Set a top-level setting; `wrong`: the path (under `key`) that makes it invalid."""
        self.raw[key] = value
        if wrong is not None:
            self.wrong.append(wrong)


Draw = Callable[[st.SearchStrategy[Any]], Any]
RARELY = st.integers(0, 9).map(lambda i: i == 7)
"""True one time in ten (Hypothesis favours the ends of a range, so not 0 or 9)."""


def valid_or(draw: Draw, valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> tuple[Any, bool]:
    """A value from `valid`, or now and then one from `invalid`; and whether it is the invalid one."""
    bad = draw(RARELY)
    return draw(invalid if bad else valid), bad


LABEL_KEYS = st.sampled_from(
    [
        "pool",
        "kubernetes.io/os",
        "node-pool",
        "topology.kubernetes.io/zone",
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/worker",
    ]
)
LABEL_VALUES = st.sampled_from(["", "web", "linux", "general", "true", "a-1"])
HOSTS = st.sampled_from(["webapp.example.com", "www.webapp.example.com", "a.io", "api.dev.example.com"])
BAD_HOSTS = st.sampled_from(["not a host", "UPPER.example.com", "localhost", "a..b.com"])
PATHS = st.one_of(
    st.sampled_from(["/", "/api", "/v1/", "/a-b_c"]),
    st.text(string.ascii_letters + string.digits + "-_~", min_size=1, max_size=8).map(lambda s: f"/{s}"),
)
BAD_PATHS = st.sampled_from(["api", "/a b", "", "/é"])
ANNOTATIONS = st.dictionaries(
    st.sampled_from(
        [
            "nginx.ingress.kubernetes.io/proxy-body-size",
            "cert-manager.io/cluster-issuer",
            "pulumi.com/skipAwait",
            "nginx.ingress.kubernetes.io/server-snippet",
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "nginx.ingress.kubernetes.io/auth-snippet",
            "nginx.ingress.kubernetes.io/stream-snippet",
            "nginx.org/server-snippets",
            "haproxy.org/backend-config-snippet",
            "example.com/note",
        ]
    ),
    st.sampled_from(["8m", "letsencrypt", "true", "location /admin { allow all; }", "content_by_lua_block {}"]),
    max_size=3,
)
ENV_NAMES = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,11}\Z").filter(lambda n: n not in ("PORT", "KEY"))
SECRET_TEXT = st.text(string.ascii_letters + string.digits, min_size=8, max_size=12).map(lambda s: PLANTED + s)


@st.composite
def app_config_values(draw: Draw) -> tuple[str, str | None]:
    """An appConfig value, and the credential planted in it, if any."""
    secret = draw(SECRET_TEXT)
    host = draw(st.sampled_from(["db", "db.internal:5432", "10.0.0.7", "cache.example.com:6379"]))
    shapes = {
        "plain": (draw(st.sampled_from(["Hello", "info", "3", "true", "a=b", "sort=asc", "x:y@z"])), None),
        "url without password": (f"postgres://app@{host}/app", None),
        "url with a port and an @ in the path": (f"https://{host}/@team", None),
        "query without secrets": (f"https://{host}/v1?page=2&sort=name", None),
        "url with a password": (
            f"{draw(st.sampled_from(['postgres', 'mysql', 'redis', 'amqps', 'https']))}://app:{secret}@{host}/x",
            secret,
        ),
        "url with only a password": (f"redis://:{secret}@{host}/0", secret),
        "query with a token": (f"https://{host}/hook?channel=ops&token={secret}", secret),
        "dsn with a password": (f"host={host} user=app password={secret} dbname=app", secret),
        "private key": (f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----", secret),
    }
    value: tuple[str, str | None] = shapes[draw(st.sampled_from(sorted(shapes)))]
    return value


@st.composite
def tolerations(draw: Draw) -> dict[str, Any]:
    """A toleration, catch-all and control-plane ones among them."""
    toleration: dict[str, Any] = {"operator": draw(st.sampled_from(["Equal", "Exists"]))}
    key = draw(
        st.one_of(st.none(), st.sampled_from(["dedicated", "node-role.kubernetes.io/control-plane"]), LABEL_KEYS)
    )
    if key is not None:
        toleration["key"] = key
    if toleration["operator"] == "Equal" and draw(st.booleans()):
        toleration["value"] = draw(LABEL_VALUES)
    effect = draw(st.sampled_from([None, "NoSchedule", "PreferNoSchedule", "NoExecute"]))
    if effect:
        toleration["effect"] = effect
    return toleration


def _replicas(draw: Draw, case: Case) -> None:
    """Replicas, now and then out of range or not a number."""
    value, bad = valid_or(draw, st.integers(1, 100), st.sampled_from([0, -1, 101, "three"]))
    case.set("replicas", value, "replicas" if bad else None)


def _resources(draw: Draw, case: Case) -> None:
    """Requests and limits of any size, a malformed limit now and then."""
    cpu = st.one_of(st.integers(1, 4000).map(lambda m: f"{m}m"), st.sampled_from(["0.5", "1", "2", "1e0"]))
    memory = st.one_of(st.integers(16, 4096).map(lambda m: f"{m}Mi"), st.sampled_from(["1Gi", "256M", "1e9"]))
    requests = {"cpu": draw(cpu), "memory": draw(memory)}
    # Mostly the requests themselves (limits below requests are refused, by name); now and then drawn apart.
    limits = {"cpu": draw(cpu), "memory": draw(memory)} if draw(RARELY) else dict(requests)
    bad_value, bad = valid_or(draw, st.none(), st.sampled_from(["512mb", "128m", "0", "-1", ""]))
    if bad:
        limits["memory"] = bad_value
    case.set("resources", {"requests": requests, "limits": limits}, "resources.limits.memory" if bad else None)


def _namespace(draw: Draw, case: Case) -> None:
    """A namespace of the app's own or one of the cluster's, created or not; now and then not a DNS label."""
    value, bad = valid_or(
        draw,
        st.sampled_from(["team-a", "webapp-qa", "kube-system", "kube-public", "kube-node-lease", "default"]),
        st.sampled_from(["Web", "a" * 64, "web.app", "-web"]),
    )
    case.set("namespace", value, "namespace" if bad else None)
    case.set("createNamespace", draw(st.booleans()))


def _service(draw: Draw, case: Case) -> None:
    """The Service's type and port."""
    port, bad = valid_or(draw, st.integers(1, 65535), st.sampled_from([0, 65536]))
    service_type = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]))
    case.set("service", {"type": service_type, "port": port}, "service.port" if bad else None)


def _routing(draw: Draw, case: Case) -> None:
    """An Ingress or an HTTPRoute: hosts, path, TLS and annotations, controller snippets among them."""
    hosts = draw(st.lists(HOSTS, min_size=1, max_size=3, unique=True))
    path, bad_path = valid_or(draw, PATHS, BAD_PATHS)
    annotations = draw(ANNOTATIONS)
    if draw(st.booleans()):
        ingress: dict[str, Any] = {"enabled": True, "hosts": hosts, "path": path, "annotations": annotations}
        if draw(st.booleans()):
            ingress["tls"] = [{"secretName": "webapp-tls", "hosts": hosts[:1]}]
        case.set("ingress", ingress, "ingress.path" if bad_path else None)
    else:
        gateway = {"name": "shared", "namespace": "gateway"}
        route = {"enabled": True, "gateway": gateway, "hostnames": hosts, "path": path, "annotations": annotations}
        case.set("httpRoute", route, "httpRoute.path" if bad_path else None)
    if draw(RARELY):
        key = "ingress" if "ingress" in case.raw else "httpRoute"
        hosts_key = "hosts" if key == "ingress" else "hostnames"
        case.raw[key][hosts_key].append(draw(BAD_HOSTS))
        case.wrong.append(f"{key}.{hosts_key}")


def _app_config(draw: Draw, case: Case) -> None:
    """Plain variables, and values with credentials planted in them."""
    config: dict[str, str] = {}
    for name in draw(st.lists(ENV_NAMES, max_size=3, unique=True)):
        value, secret = draw(app_config_values())
        config[name] = value
        if secret:
            case.planted.append(secret)
    case.set("appConfig", config)


def _scheduling(draw: Draw, case: Case) -> None:
    """Node selectors, tolerations and node affinity, control-plane ones among them."""
    scheduling: dict[str, Any] = {
        "nodeSelector": draw(st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=2)),
        "tolerations": draw(st.lists(tolerations(), max_size=2)),
        "zoneSpread": draw(st.sampled_from(["preferred", "required"])),
    }
    if draw(st.booleans()):
        operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
        expression = {"key": draw(LABEL_KEYS), "operator": operator}
        if operator in ("In", "NotIn"):
            expression["values"] = ["general"]
        terms = {"nodeSelectorTerms": [{"matchExpressions": [expression]}]}
        scheduling["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}
    case.set("scheduling", scheduling)


def _autoscaling(draw: Draw, case: Case) -> None:
    """An autoscaler, which then owns the replica count."""
    low, high = sorted((draw(st.integers(1, 20)), draw(st.integers(1, 20))))
    target, bad = valid_or(draw, st.integers(10, 100), st.sampled_from([0, 5, 101]))
    scaling = {"enabled": True, "minReplicas": low, "maxReplicas": high, "targetCpuUtilization": target}
    case.set("autoscaling", scaling, "autoscaling.targetCpuUtilization" if bad else None)
    case.raw.pop("replicas", None)
    case.wrong = [path for path in case.wrong if path != "replicas"]


def _app(draw: Draw, case: Case) -> None:
    """The app contract: ports, probes and drain."""
    port, bad = valid_or(draw, st.integers(1024, 65535), st.sampled_from([0, 70000]))
    management = draw(st.sampled_from([8081, 9090]).filter(lambda p: p != port))
    probes = {
        probe: {"path": draw(PATHS), "port": draw(st.sampled_from(["traffic", "management"]))}
        for probe in ("liveness", "readiness", "startup")
    }
    drain = draw(st.sampled_from(["self", "preStop"]))
    case.set("app", {"port": port, "managementPort": management, "drain": drain, **probes}, "app.port" if bad else None)


def _timings(draw: Draw, case: Case) -> None:
    """The server timings, in range and just outside it."""
    for key, low, high in (("drainSeconds", 0, 300), ("gracefulTimeoutSeconds", 1, 600), ("stallSeconds", 1, 3600)):
        value, bad = valid_or(draw, st.integers(low, high), st.sampled_from([low - 1, high + 1]))
        case.set(key, value, key if bad else None)


def _metrics(draw: Draw, case: Case) -> None:
    """A ServiceMonitor and alerts."""
    monitor = draw(st.booleans())
    case.set("metrics", {"serviceMonitor": monitor, "alerts": monitor and draw(st.booleans())})


def _proxies(draw: Draw, case: Case) -> None:
    """Trusted proxies and their namespaces."""
    namespaces = st.sampled_from(["ingress-nginx", "gateway", "kube-system"])
    case.set("proxyNamespaces", draw(st.lists(namespaces, min_size=0 if draw(RARELY) else 1, max_size=2, unique=True)))
    case.set("trustedProxies", draw(st.integers(0, 5)))


PARTS: dict[str, Callable[[Draw, Case], None]] = {
    "replicas": _replicas,
    "resources": _resources,
    "namespace": _namespace,
    "service": _service,
    "routing": _routing,
    "appConfig": _app_config,
    "scheduling": _scheduling,
    "autoscaling": _autoscaling,
    "app": _app,
    "timings": _timings,
    "metrics": _metrics,
    "proxies": _proxies,
}
"""The parts of a stack the generator varies, each drawn or left out."""


IMAGE = {"repository": "ghcr.io/example/webapp", "tag": "1.4.2", "digest": "sha256:" + "d" * 64}
"""By digest, as the deploy workflow's policy config demands (the pack's images-by-digest is one of the oracles)."""


def base_case(planted: tuple[str, ...] = (), **settings: Any) -> Case:
    """The tests' smallest valid stack (harness.stack_values), by digest, with `settings` added."""
    return Case(valid_config(image=IMAGE, **settings), planted=list(planted))


@st.composite
def stack_cases(draw: Draw) -> Case:
    """A whole stack's settings: each part left out, valid, or (now and then) outside the schema."""
    case = base_case()
    for name in sorted(draw(st.sets(st.sampled_from(sorted(PARTS)), max_size=6)), key=list(PARTS).index):
        PARTS[name](draw, case)
    return case


# ---------------------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------------------

ACCEPTED: list[tuple[ProgramRun, dict[str, Any]]] = []
"""Every stack the search rendered, and its settings: checkov scans the most varied of them afterwards."""


class OracleBroken(AssertionError):
    """An oracle's verdict on a generated stack; each oracle raises a subclass of its own, so that Hypothesis
    reports every distinct hole of one run (and shrinks each) rather than the first one only."""


ORACLES = (
    "problem naming no setting",
    "invalid setting not named",
    "refusal shows a credential",
    "invalid setting rendered",
    "schema",
    "pod security",
    "policy pack",
    "namespace",
    "snippet",
    "tolerates the control plane",
    "selects the control plane",
    "credential",
)
BROKEN = {name: type(f"Broken({name})", (OracleBroken,), {}) for name in ORACLES}


def _verdict(found: Mapping[str, list[str]]) -> None:
    """Raise the first oracle's error that found something."""
    for name, problems in found.items():
        if problems:
            raise BROKEN[name](f"{name}: " + "\n".join(problems))


def judge(case: Case) -> None:
    """Render one generated stack and hold the outcome to the oracles; an `OracleBroken` names what broke."""
    note(f"settings: {json.dumps(case.raw, sort_keys=True)}")
    try:
        run: ProgramRun = run_main(case.raw, TEST_SECRETS)
    except ConfigError as error:
        problems = error.problems
        _verdict(
            {
                "problem naming no setting": unnamed_problems(problems, case.raw),
                "invalid setting not named": [
                    f"{path} is not named by {problems}"
                    for path in case.wrong
                    if not any(f"webapp:{path}" in problem for problem in problems)
                ],
                "refusal shows a credential": [p for p in problems if any(secret in p for secret in case.planted)],
            }
        )
        return
    _verdict({"invalid setting rendered": [f"{path} is outside the schema" for path in case.wrong]})
    manifests = to_manifests(run.resources)
    _verdict(
        {
            "schema": schema_problems(manifests),
            "pod security": [
                f"{m.kind} {m.name}: {p}"
                for m in manifests
                if (pod := _pod_spec(m)) is not None
                for p in restricted_problems(pod)
            ],
            "policy pack": pack_violations(run),
            **isolation_problems(manifests, run.outputs, case.planted),
        }
    )
    ACCEPTED.append((run, case.raw))


@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Every hole the search found, kept as a case it always tries first (issue 35, F9, on the code before the fix).
@example(  # seed 35: a controller snippet among a route's annotations
    base_case(
        httpRoute={
            "enabled": True,
            "gateway": {"name": "shared", "namespace": "gateway"},
            "hostnames": ["webapp.example.com"],
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
                "nginx.ingress.kubernetes.io/server-snippet": "8m",
            },
        }
    )
)
@example(  # seed 35: a password in a connection string, in appConfig
    base_case(("Pz900000000",), appConfig={"A": "host=db user=app password=Pz900000000 dbname=app"})
)
@example(base_case(namespace="kube-system", createNamespace=False))  # seed 35: the cluster's own namespace
@example(  # seed 35, the control-plane rules alone reverted: a nodeSelector of the control plane
    base_case(scheduling={"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}})
)
@example(base_case(scheduling={"tolerations": [{"operator": "Exists"}]}))  # seed 35, the toleration rule reverted
@example(  # the review's shape: the control plane selected, and every taint tolerated
    base_case(
        scheduling={
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
            "tolerations": [{"operator": "Exists"}],
        }
    )
)
@example(  # seeds 1, 2, 3 and 35: probes on the traffic port beside a management port, refused by the pack only
    base_case(
        app={
            "port": 1024,
            "managementPort": 8081,
            "drain": "self",
            "liveness": {"path": "/", "port": "traffic"},
            "readiness": {"path": "/", "port": "traffic"},
            "startup": {"path": "/", "port": "traffic"},
        }
    )
)
@given(stack_cases())
def search(case: Case) -> None:
    """Hypothesis's search over generated stacks (called by the test below, which then runs checkov)."""
    judge(case)


def test_generated_settings_are_refused_by_name_or_render_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The search (its seed printed first), then checkov once over the most varied stacks it rendered."""
    with capsys.disabled():
        print(f"\nsettings adversary: seed {SEED}, {EXAMPLES} examples (ADVERSARY_SEED={SEED} replays this run)")
    ACCEPTED.clear()
    search()
    assert ACCEPTED, "the search rendered no stack at all"
    # The stacks that set the most, each under a name of its own, in one checkov run over their common root.
    varied = sorted(ACCEPTED, key=lambda accepted: len(json.dumps(accepted[1])))[-CHECKOV_SAMPLE:]
    sample = {
        f"case{i}": (Rendered(f"case{i}", run, to_manifests(run.resources)), raw) for i, (run, raw) in enumerate(varied)
    }
    rendered = {name: stack for name, (stack, _) in sample.items()}
    written = {name: write_manifests(stack, tmp_path) for name, stack in rendered.items()}
    with CheckovScan() as checkov:
        found = check_stacks(rendered, written, tmp_path, checkov)
    failed = {name: (sample[name][1], problems) for name, problems in found.items() if problems}
    assert failed == {}, f"checkov failed these stacks (settings, findings): {failed}"
