"""The rules and defaults shared by the settings, the components and the policy pack: each exists here once.

Standard library only: the policy pack runs in its own virtualenv and gets this
file as `policy/webapp_rules.py`, a copy `make policy-rules` writes and a test
keeps identical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DRAIN_SECONDS = 5
"""Default seconds the app keeps serving after SIGTERM, with /ready at 503 (the app's DRAIN_SECONDS)."""
GRACEFUL_TIMEOUT_SECONDS = 20
"""Default seconds in-flight requests get after the drain (the app's GRACEFUL_TIMEOUT_SECONDS)."""

APP_PORT = 8080
"""The port the app serves traffic on (the app's PORT default; the container port named http)."""
MANAGEMENT_PORT = 8081
"""Default port of the probes and /metrics, answered by the app's master process (the app's MANAGEMENT_PORT)."""
MANAGEMENT_PORT_NAME = "management"
"""The container port name of the management port: the probes and the ServiceMonitor name it."""
APP_USER = 10001
"""The numeric user and group app/Dockerfile runs the bundled app as."""
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/ready"
METRICS_PATH = "/metrics"
"""The management port's paths; the app serves the probes on its traffic port too, never /metrics."""
TRUSTED_PROXIES = 0
"""Default number of proxies in front whose X-Forwarded-* headers the app believes (the app's TRUSTED_PROXIES)."""
TERMINATION_MARGIN_SECONDS = 5
"""Seconds the pod's terminationGracePeriodSeconds adds to the drain and the graceful timeout before SIGKILL."""
KEEPALIVE_SECONDS = 75
"""Default idle keep-alive of the app, above the 60 s of ingress-nginx and cloud load balancers."""
STALL_SECONDS = 30
"""Default seconds a worker may have every thread busy, finishing nothing, before liveness fails."""
ROLLOUT_TIMEOUT_SECONDS = 600
"""Default seconds a rollout may take before `pulumi up` fails and the Deployment reports ProgressDeadlineExceeded
(Kubernetes' and the provider's own default)."""

TEST_ROUTES_ENV = "ENABLE_TEST_ROUTES"
"""The app's switch for its /debug routes, which let anonymous clients hold request threads for 30 s each: set only
by a stack's `enableTestRoutes` (the e2e's test stacks), never through appConfig, and refused by the policy pack."""


@dataclass(frozen=True)
class AppVariable:
    """One variable of the app's environment that the Deployment sets itself: its name, the stack setting it comes
    from, and, for a number, the app's default and the range both the app and the stack settings accept."""

    name: str
    setting: str
    default: int | None = None
    minimum: int | None = None
    maximum: int | None = None


APP_ENVIRONMENT = (
    AppVariable("APP_VERSION", "image.tag"),
    AppVariable("PORT", "(fixed: the container port)", APP_PORT, 1, 65535),
    AppVariable("MANAGEMENT_PORT", "(fixed: the management port)", MANAGEMENT_PORT, 1, 65535),
    AppVariable("KEEPALIVE_SECONDS", "keepaliveSeconds", KEEPALIVE_SECONDS, 1, 3600),
    AppVariable("STALL_SECONDS", "stallSeconds", STALL_SECONDS, 1, 3600),
    AppVariable("DRAIN_SECONDS", "drainSeconds", DRAIN_SECONDS, 0, 300),
    AppVariable("GRACEFUL_TIMEOUT_SECONDS", "gracefulTimeoutSeconds", GRACEFUL_TIMEOUT_SECONDS, 1, 600),
    AppVariable("TRUSTED_PROXIES", "trustedProxies", TRUSTED_PROXIES, 0, 5),
    AppVariable(TEST_ROUTES_ENV, "enableTestRoutes"),
)
"""The app's environment contract, in the order the container's `env` lists it: the settings take their ranges
from it, the container's env is built in its order (a variable without a value fails the render), the managed-env
guard below refuses its names, and the app's own parsing is tested against it."""

MANAGED_ENV = {variable.name: variable.setting for variable in APP_ENVIRONMENT}
"""The app's variables the Deployment sets itself, each from the stack setting named here. The container's `env`
wins over the ConfigMap it loads, so the same name in appConfig would be silently ignored: the settings refuse it."""


def app_variable(name: str) -> AppVariable:
    """The contract's entry for `name`."""
    return next(variable for variable in APP_ENVIRONMENT if variable.name == name)


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
"""The Service types a stack may choose."""

SECRET_WORDS = ("PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "PRIVATE", "CERT")
"""Words that make an environment variable name look secret."""

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""A Kubernetes name that must also be a DNS label (Services, namespaces)."""


def looks_secret(name: str) -> bool:
    """True when a variable name suggests a secret (...PASSWORD, API_KEY, TOKEN...), in any case."""
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:[^\s/?#@]+@")
_SECRET_PARAMETER = re.compile(r"""(?:^|[?&;,{\s"'-])([A-Za-z_][A-Za-z0-9_.-]*)["']?\s*[=:]\s*["']?[^\s&;"',}]""")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "access_token",
        "auth_token",
        "client_secret",
        "sslpassword",
        "private_key",
        "secret_key",
        "access_key",
    }
)
"""Parameter names whose value is a credential, whatever the syntax around them: `password=` in a query string or a
connection string, `--password=` or `-Ddb.password=` on a command line, `"password": ` in JSON. Whole names (after
the last `.`, `-` read as `_`, any case), never substrings: `sslrootcert`, `ssl_cert_reqs` and `max_tokens` are
plain settings."""
_SECRET_PARAMETER_SUFFIXES = tuple(f"_{name}" for name in ("password", "passwd", "secret", "token", "api_key"))


def secret_parameter(name: str) -> bool:
    """True when a parameter named `name` holds a credential (`password`, `db.password`, `DB_PASSWORD`, `apiKey`)."""
    last = name.rsplit(".", 1)[-1].replace("-", "_")
    lowered = last.lower()
    camel_split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", last).lower()
    return any(
        candidate in SECRET_PARAMETERS or candidate.endswith(_SECRET_PARAMETER_SUFFIXES)
        for candidate in (lowered, camel_split)
    )


def credential_problem(value: str) -> str | None:
    """Which credential a plain value holds (a URL's password, a credential parameter such as `password=`,
    `--token=` or `"secret": ` in a query string, a connection string, a command line or JSON, a private key), or
    None. Never repeats the value."""
    if _URL_PASSWORD.search(value):
        return "a password in a URL (scheme://user:password@host)"
    named = list(dict.fromkeys(m.group(1) for m in _SECRET_PARAMETER.finditer(value) if secret_parameter(m.group(1))))
    if named:
        return f"a secret-named parameter ({', '.join(f'{name}=...' for name in named)})"
    if _PRIVATE_KEY.search(value):
        return "a private key"
    return None


SNIPPET = "snippet"
"""What ingress controllers name the annotations whose value they paste into their own configuration:
ingress-nginx's server-, configuration-, auth-, stream- and modsecurity-snippet, NGINX Inc's server-snippets and
location-snippets, HAProxy's backend-config-snippet."""


def annotation_problem(key: str) -> str | None:
    """Why an object may not carry the annotation `key` (a controller snippet), or None."""
    if SNIPPET in key.rsplit("/", 1)[-1].lower():
        return (
            f"{key} is a configuration snippet: the controller pastes its text into its own configuration, shared by "
            "every host it serves (and able to read its credentials); use the controller's dedicated annotations "
            "(e.g. nginx.ingress.kubernetes.io/proxy-body-size) or ask the platform team"
        )
    return None


CONTROL_PLANE_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
"""The label and the taint key of control-plane nodes (kubeadm and most distributions; `master` before 1.24)."""
_NODE_POOL_HINT = "tolerate the taint of a node pool of the app's own instead, e.g. key: dedicated, value: web"


def toleration_problem(key: str | None, operator: str) -> str | None:
    """Why pods may not carry this toleration (one without a key, which tolerates every taint, or one of the
    control plane's taint), or None."""
    if not key and operator == "Exists":
        return (
            "a toleration with operator Exists and no key tolerates every taint: the control plane's, and the "
            f"NoExecute taints that evict pods from failing nodes; {_NODE_POOL_HINT}"
        )
    if not key:
        return f"a toleration needs a key (Kubernetes refuses operator {operator} without one); {_NODE_POOL_HINT}"
    if key in CONTROL_PLANE_KEYS:
        return (
            f"{key} is the control plane's taint: the app's pods never run beside the API server and etcd; "
            f"{_NODE_POOL_HINT}"
        )
    return None


def node_selection_problem(key: str, operator: str = "In") -> str | None:
    """Why pods may not select nodes by this label and operator (the control plane's nodes), or None; a nodeSelector
    entry is operator In."""
    if key in CONTROL_PLANE_KEYS and operator not in ("NotIn", "DoesNotExist"):
        return (
            f"{key} selects the control plane's nodes: the app's pods never run beside the API server and etcd; "
            "select a node pool of the app's own (e.g. node-pool: web), or keep away with NotIn or DoesNotExist"
        )
    return None


CLUSTER_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""The namespaces every cluster starts with; `kube-` is reserved for Kubernetes' own."""


def namespace_problem(namespace: str) -> str | None:
    """Why a stack may not deploy into `namespace` (the cluster's own), or None."""
    if namespace in CLUSTER_NAMESPACES or namespace.startswith("kube-"):
        return (
            f"{namespace} is the cluster's own namespace: the app would share it with the cluster's components and "
            "their credentials, without the restricted Pod Security admission a namespace of its own gets; leave "
            "namespace out (webapp-<stack>, created restricted) or name one of the app's own, such as webapp-prod"
        )
    return None


OCI_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
"""The OCI distribution spec's tag grammar: what registries accept (`1.4.2`, `sha-860c190`, `main`)."""
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
"""An image digest as registries and the build report it."""
DIGEST_REQUIRED_STACKS = ("prod",)
"""Stacks that never deploy without an image digest: they run only what an earlier stage ran (tools/promote.py)."""


def unpinned_tag_problem(tag: str) -> str | None:
    """Why an image tag cannot be deployed (empty, `latest` in any case, or not a tag at all), or None."""
    if not tag.strip():
        return "the image tag is empty; pin a version such as 1.4.2 or a build tag such as sha-860c190"
    if tag.lower() == "latest":
        return "'latest' cannot be tracked or rolled back; pin a version such as 1.4.2 or a build tag (sha-860c190)"
    if not OCI_TAG.match(tag):
        return (
            f"{tag!r} is not an image tag (OCI: up to 128 letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-')"
        )
    return None


def missing_digest_problem(stack: str, digest: str | None) -> str | None:
    """Why `stack` cannot deploy this image (a stack in DIGEST_REQUIRED_STACKS without a digest), or None."""
    if stack in DIGEST_REQUIRED_STACKS and not digest:
        return (
            f"stack {stack} deploys only by digest: set image.digest by promoting what the previous stage ran "
            "(python -m tools.promote --from staging --to prod)"
        )
    return None


def unpinned_image_problem(image: str) -> str | None:
    """Why an image reference is not pinned (no tag, or an unpinned one), or None for a tag or a digest."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (it means latest)"
    problem = unpinned_tag_problem(last.rsplit(":", 1)[1])
    return f"image {image!r}: {problem}" if problem else None


def service_type_problem(service_type: str) -> str | None:
    """Why a Service type is not one a stack may use, or None."""
    if service_type not in SERVICE_TYPES:
        return f"{service_type!r} is not a Service type; expected one of {', '.join(SERVICE_TYPES)}"
    return None


def published_metrics_problem(service_type: str, service_monitor: bool) -> str | None:
    """Why a ServiceMonitor cannot go with this Service type (it adds the management port to the Service), or None."""
    if service_monitor and service_type != "ClusterIP":
        return (
            f"metrics.serviceMonitor adds the management port to the Service, and a {service_type} Service would "
            "publish /metrics outside the cluster; use service.type ClusterIP"
        )
    return None
