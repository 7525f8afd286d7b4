"""Ask the cluster of the current kubeconfig which of a stack's prerequisites are missing, before any resource is
registered: `pulumi preview` and `pulumi up` then fail within seconds naming each missing piece and how to provide
it, instead of a route's or an Ingress's await timing out after the rest was created.

The cluster is the one the default Kubernetes provider uses: `kubernetes:kubeconfig` (a path or the file's text)
and `kubernetes:context` when set, else KUBECONFIG or ~/.kube/config, read by the official Kubernetes client (so
exec plugins and tokens work as in kubectl). Only object metadata is requested (PartialObjectMetadata: a Secret's
data never leaves the API server). Skipped where there is no cluster: the provider's render mode and Pulumi's
mocks. An object the credentials may not read, or a cluster the client cannot reach, is a warning: the provider
then reports what it finds itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_monitor

from prerequisites.expected import Prerequisite
from prerequisites.kubeconfig import kubeconfig_api

REQUEST_TIMEOUT_SECONDS = 5
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

Lookup = Callable[[str], bool | None]
"""An API path -> whether the object exists (None: could not tell)."""


class MissingPrerequisites(pulumi.RunError):
    """The cluster lacks what the stack needs; the message lists each piece and how to provide it."""

    def __init__(self, missing: list[Prerequisite]) -> None:
        self.missing = missing
        lines = "\n".join(f"  - {item.describe()}" for item in missing)
        super().__init__(f"the cluster lacks {len(missing)} thing(s) this stack needs; nothing was created:\n{lines}")


@dataclass(frozen=True)
class Unverified:
    """A prerequisite the check could not tell about, and why."""

    prerequisite: Prerequisite
    reason: str


def find_missing(prerequisites: list[Prerequisite], lookup: Lookup) -> tuple[list[Prerequisite], list[Unverified]]:
    """Split `prerequisites` into those missing and those the lookup could not tell about."""
    missing, unverified = [], []
    for item in prerequisites:
        try:
            found = lookup(item.path)
        except (ApiException, OSError) as error:
            unverified.append(Unverified(item, str(error).splitlines()[0] if str(error) else type(error).__name__))
            continue
        if found is None:
            unverified.append(Unverified(item, "not allowed to read it"))
        elif not found:
            missing.append(item)
    return missing, unverified


def api_lookup(api: client.ApiClient) -> Lookup:
    """A lookup through `api`: 200 is there, 404 is missing, 401/403 cannot tell; any other answer raises."""

    def lookup(path: str) -> bool | None:
        method, url, headers, _, _ = api.param_serialize(
            "GET", path, header_params={"Accept": METADATA_ONLY}, auth_settings=["BearerToken"]
        )
        response = api.call_api(method, url, header_params=headers, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        response.read()  # type: ignore[no-untyped-call]  # the whole (small) body: the connection goes back
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        if response.status in (401, 403):
            return None
        raise OSError(f"GET {path} answered {response.status} {response.reason}")

    return lookup


def _provider_api() -> client.ApiClient:
    """An API client for the cluster the default Kubernetes provider deploys to."""
    settings = pulumi.Config("kubernetes")
    return kubeconfig_api(settings.get("kubeconfig"), settings.get("context"))


def no_cluster() -> bool:
    """True where no cluster is deployed to: the provider's render mode, or the program under Pulumi's mocks."""
    rendering = bool(pulumi.Config("kubernetes").get("renderYamlToDirectory"))
    return rendering or isinstance(get_monitor(), MockMonitor)


def cluster_lookup(unchecked: str) -> Lookup | None:
    """A lookup in the provider's cluster; None, with a warning starting `unchecked`, when its kubeconfig won't load."""
    try:
        return api_lookup(_provider_api())
    except (config.ConfigException, OSError, TypeError, ValueError) as error:
        pulumi.log.warn(f"{unchecked}: cannot load the kubeconfig ({error})")
        return None


def warn_unfinished_canary(namespace: str, deployment: str, lookup: Lookup | None = None) -> bool:
    """Warn when the cluster runs `deployment` (a canary) that the stack's settings no longer describe: a canary run
    was interrupted, and this update would take it out. Returns whether it warned."""
    lookup = lookup or cluster_lookup("unfinished canary not checked")
    if lookup is None:
        return False
    try:
        found = lookup(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
    except OSError as error:
        pulumi.log.warn(f"unfinished canary not checked: {error}")
        return False
    if found:
        pulumi.log.warn(
            f"this stack is in a canary state: Deployment {namespace}/{deployment} runs a release that was neither "
            "promoted nor rolled back (an interrupted `python -m tools.canary`); run it again with the same release "
            "to finish it, or with --abort to roll it back. This update, as it stands, takes the canary out."
        )
    return bool(found)


def verify(prerequisites: list[Prerequisite], lookup: Lookup | None = None) -> None:
    """Raise MissingPrerequisites naming every missing piece; warn about those that could not be checked."""
    if not prerequisites:
        return
    if lookup is None:
        lookup = cluster_lookup("cluster prerequisites not checked")
        if lookup is None:
            return
    missing, unverified = find_missing(prerequisites, lookup)
    for item in unverified:
        pulumi.log.warn(f"could not check {item.prerequisite.what} ({item.reason}); the provider will report it")
    if missing:
        raise MissingPrerequisites(missing)
