"""The value types of the settings: one annotated type per naming rule, each with one message, and the base model.

Every setting that follows a rule (a DNS label, a host name, a label key...)
uses its type here, so a rule and its error message exist once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from webapp_platform.config.quantity import parse_cpu, parse_memory
from webapp_platform.config.rules import DIGEST, DNS_LABEL, annotation_problem, unpinned_tag_problem

_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_URL_PATH = re.compile(r"^/[!-~]*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_PROMETHEUS_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
# A Kubernetes annotation key: an optional DNS-subdomain prefix and "/", then a name of up to 63 characters.
_ANNOTATION_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def _image_tag(tag: str) -> str:
    problem = unpinned_tag_problem(tag)
    if problem:
        raise ValueError(problem)
    return tag


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    """A check that a string matches `pattern`, refusing it as "'<value>' is not <what>"."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _cpu(value: str) -> str:
    parse_cpu(value)
    return value


def _memory(value: str) -> str:
    parse_memory(value)
    return value


def _scalar_to_string(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Cpu = Annotated[str, AfterValidator(_cpu)]
Memory = Annotated[str, AfterValidator(_memory)]
EnvValue = Annotated[str, BeforeValidator(_scalar_to_string)]
# One type per naming rule, each with one message: every setting that follows the rule uses the type.
DnsLabel = Annotated[
    str,
    _matching(
        DNS_LABEL,
        "a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit), "
        "e.g. webapp",
    ),
]
"""Names Kubernetes holds to DNS labels: namespaces, Services (so every object this program names alike)."""
DnsSubdomain = Annotated[
    str,
    _matching(
        _DNS_SUBDOMAIN,
        "a DNS subdomain name (DNS labels joined by '.', at most 253), e.g. webapp-env or webapp.example.com-tls",
    ),
]
"""Names Kubernetes holds to DNS subdomains: Secrets, IngressClasses (dots allowed, as in webapp.example.com-tls)."""
SecretName = DnsSubdomain
HostName = Annotated[str, _matching(_HOSTNAME, "a DNS host name such as webapp.example.com")]
ImageRepository = Annotated[
    str, _matching(_REPOSITORY, "an image repository such as ghcr.io/example/webapp (no tag here)")
]
ImageTag = Annotated[str, AfterValidator(_image_tag)]
"""Any valid OCI tag but `latest`."""
ImageDigest = Annotated[str, _matching(DIGEST, "a digest of the form sha256:<64 hex digits>")]
ENV_NAME_RULE = "an environment variable name (A-Z, 0-9, _)"
EnvName = Annotated[str, _matching(ENV_NAME, ENV_NAME_RULE)]
PrometheusDuration = Annotated[str, _matching(_PROMETHEUS_DURATION, "a Prometheus duration such as 30s or 1m")]
UrlPath = Annotated[str, _matching(_URL_PATH, "a path starting with '/', printable ASCII without spaces")]
MetricPrefix = Annotated[
    str, _matching(re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$"), "a Prometheus metric name prefix such as webapp_")
]


def _annotations(value: dict[str, str]) -> dict[str, str]:
    bad = sorted(key for key in value if len(key) > 316 or not _ANNOTATION_KEY.match(key))
    problems = [f"{bad} are not annotation keys such as nginx.ingress.kubernetes.io/proxy-body-size"] if bad else []
    problems += [problem for key in sorted(value) if (problem := annotation_problem(key))]
    if problems:
        raise ValueError("; ".join(problems))
    return value


Annotations = Annotated[dict[str, EnvValue], AfterValidator(_annotations)]
"""Kubernetes annotations: keys an optional DNS-subdomain prefix and a name, values text; no controller snippets."""
LabelKey = Annotated[str, _matching(_ANNOTATION_KEY, "a label key such as topology.kubernetes.io/zone or pool")]
LabelValue = Annotated[
    str,
    _matching(_LABEL_VALUE, "a label value (at most 63 of letters, digits, '-', '_', '.', alphanumeric at the ends)"),
]


class SettingsModel(BaseModel):
    """The base of every settings model: immutable, unknown keys refused, camelCase keys as in the stack files."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, strict=False
    )
