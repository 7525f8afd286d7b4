"""The canary driver's stack through Pulumi's Automation API: the project's program run in this process, as
`pulumi up` would, and the stack file written through the CLI's config commands."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.canary_state import Release, Version
from tools.canary_target import PodState, PodsUnavailable, UpFailed
from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.loading import parse_settings_only
from webapp_platform.config.settings import StackSettings

RELEASE_KEY = f"{PROJECT}:canaryRelease"
STATE_DIR = ".canary"
"""Where, in the project's directory, the driver keeps its release state and lock (one pair per stack)."""
KUBERNETES_TIMEOUT_SECONDS = 10
"""The Kubernetes API's answer to the canary's pods within this many seconds (connecting, and each read)."""


class AutomationTarget:
    """A stack through Pulumi's Automation API (satisfies `tools.canary_target.Target`)."""

    def __init__(
        self, stack_name: str, work_dir: Path, policy_packs: Sequence[str], policy_pack_configs: Sequence[str]
    ) -> None:
        from pulumi import automation as auto

        self._auto = auto
        self.work_dir = work_dir
        self.policy_packs = [str(work_dir / pack) for pack in policy_packs]
        self.policy_pack_configs = [str(work_dir / config) for config in policy_pack_configs]
        project = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["name"]
        self.stack = auto.select_stack(
            stack_name,
            project_name=project,
            program=self._program,
            opts=auto.LocalWorkspaceOptions(work_dir=str(work_dir)),
        )

    @property
    def state_dir(self) -> Path:
        """`.canary/` in the project's directory, beside the stack files."""
        return self.work_dir / STATE_DIR

    def _program(self) -> None:
        sys.path.insert(0, str(self.work_dir))
        runpy.run_path(str(self.work_dir / "__main__.py"), run_name="__main__")

    def settings(self) -> StackSettings:
        """The stack file's settings."""
        raw = {
            key.split(":", 1)[1]: value.value
            for key, value in self.stack.get_all_config().items()
            if key.startswith(f"{PROJECT}:")
        }
        return parse_settings_only(raw)

    def deployed_canary(self) -> Mapping[str, Any] | None:
        """The stack's `canary` output."""
        output = self.stack.outputs().get("canary")
        return dict(output.value) if output is not None and output.value else None

    def canary_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodState]:
        """The canary's pods through the official Kubernetes client, in the cluster the stack's program deploys to
        (its `kubernetes:kubeconfig` and `kubernetes:context`, else KUBECONFIG or ~/.kube/config: see
        prerequisites/kubeconfig.py). A pod that is going away (being deleted, or evicted: its phase Failed or
        Succeeded) is left out: it takes no requests and its replacement is listed. PodsUnavailable naming the
        cause when the kubeconfig will not load or the API errs."""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        from prerequisites.kubeconfig import kubeconfig_api

        settings = {key: value.value for key, value in self.stack.get_all_config().items()}
        try:
            api = kubeconfig_api(settings.get("kubernetes:kubeconfig"), settings.get("kubernetes:context"))
        except (config.ConfigException, OSError, TypeError, ValueError, yaml.YAMLError) as error:
            raise PodsUnavailable(f"cannot load the kubeconfig ({error})") from error
        labels = ",".join(f"{name}={value}" for name, value in sorted(selector.items()))
        try:
            with api:
                listed = client.CoreV1Api(api).list_namespaced_pod(
                    namespace, label_selector=labels, _request_timeout=KUBERNETES_TIMEOUT_SECONDS
                )
        except ApiException as error:
            raise PodsUnavailable(
                f"the Kubernetes API answered {error.status} {error.reason} listing pods {labels} in {namespace}"
            ) from error
        except (HTTPError, OSError, ValueError) as error:
            raise PodsUnavailable(f"the Kubernetes API did not answer listing pods in {namespace} ({error})") from error
        pods = []
        for pod in listed.items:
            status, metadata = pod.status, pod.metadata
            if metadata is None or metadata.deletion_timestamp is not None:
                continue
            if status is not None and status.phase in ("Failed", "Succeeded"):
                continue
            conditions = (status and status.conditions) or []
            containers = (status and status.container_statuses) or []
            pods.append(
                PodState(
                    name=str(metadata.name),
                    ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
                    restarts=sum(int(c.restart_count or 0) for c in containers),
                )
            )
        return pods

    def set_release(self, release: Release, weight: int) -> None:
        """`canaryRelease` into the stack file."""
        self.stack.set_config(RELEASE_KEY, self._auto.ConfigValue(json.dumps(release.setting(weight))))

    def write_stable(self, version: Version) -> None:
        """What differs of the version's image and appConfig into the stack file in one write, then what it no
        longer has (stale appConfig keys, an unpinned image's digest, `canaryRelease`) out in another: key by key, so
        the stack file keeps its appConfig a map (and its comments), and a file already right is not rewritten. Run
        again, it finishes what a kill interrupted."""
        now = self.settings()
        image = {"repository": version.repository, "tag": version.tag, "digest": version.digest}
        current = {"repository": now.image.repository, "tag": now.image.tag, "digest": now.image.digest}
        values = {
            f"{PROJECT}:image.{name}": value
            for name, value in image.items()
            if value is not None and value != current[name]
        }
        values |= {
            f"{PROJECT}:appConfig.{name}": value
            for name, value in version.app_config.items()
            if now.app_config.get(name) != value
        }
        stale = [f"{PROJECT}:appConfig.{name}" for name in sorted(set(now.app_config) - set(version.app_config))]
        if version.digest is None and now.image.digest is not None:
            stale.append(f"{PROJECT}:image.digest")
        if now.canary_release is not None:
            stale.append(RELEASE_KEY)
        if values:
            self.stack.set_all_config({key: self._auto.ConfigValue(value) for key, value in values.items()}, path=True)
        if stale:
            self.stack.remove_all_config(stale, path=True)

    def recover(self, *, cancel_stale: bool) -> list[str]:
        """Cancel a killed update's lock (when asked) and refresh away its pending operations."""
        done = []
        if cancel_stale:
            self.stack.cancel()
            done.append("cancelled any update a killed run left holding the stack's lock")
        pending = (self.stack.export_stack().deployment or {}).get("pending_operations") or []
        if pending:
            try:
                self.stack.refresh(clear_pending_creates=True, on_output=print)
            except self._auto.errors.CommandError as error:
                raise UpFailed(str(error)) from error
            done.append(f"refreshed the state, clearing {len(pending)} operation(s) a killed run left pending")
        return done

    def up(self) -> None:
        """`pulumi up` with the policy packs; UpFailed with the engine's message."""
        try:
            self.stack.up(
                policy_packs=self.policy_packs or None,
                policy_pack_configs=self.policy_pack_configs or None,
                on_output=print,
                show_secrets=False,
            )
        except self._auto.errors.CommandError as error:
            raise UpFailed(str(error)) from error
