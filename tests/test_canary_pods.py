"""What the canary's analysis reads from the Kubernetes API: its pods' restarts and readiness. The combination with
Prometheus's verdict (tools/canary_analysis.py `with_pods`) on its own; the driver rolling back a release whose pods
restart or are never Ready, and keeping a step's restart baseline across a resumed run; AutomationTarget's pod
listing against a real HTTP stand-in Kubernetes API through the official client."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.canary_stand_ins import NEW, FakeStack, Fault, run_driver, stack_settings
from tools import canary as driver
from tools.canary_analysis import Check, restarts_since, with_pods
from tools.canary_automation import AutomationTarget
from tools.canary_state import Release, ReleaseState, StateFile, Version
from tools.canary_target import PodState, PodsUnavailable
from tools.promote import Image
from webapp_platform.config.loading import parse_settings_only

PASSED = Check("passed", 600.0, 0.0, 0.0, "600 requests, 0.00% failed, 0.00% slower than 0.5 s")
FAILED = Check("failed", 600.0, 0.2, 0.0, "availability: 20.00% of 600 requests failed with a 5xx in 10s")
FEW = Check("inconclusive", 3.0, 0.0, 0.0, "3 requests in 10s, fewer than minRequests 20")
READY = (PodState("canary-a", True, 2), PodState("canary-b", True, 0))


def test_pods_ready_and_not_restarted_leave_prometheus_verdict_standing() -> None:
    for check in (PASSED, FAILED, FEW):
        assert with_pods(check, READY, {"canary-a": 2, "canary-b": 0}) == check


def test_a_restart_since_the_step_began_fails_the_check_naming_the_count_and_the_pods() -> None:
    pods = (PodState("canary-a", True, 4), PodState("canary-b", True, 0), PodState("canary-c", True, 1))
    judged = with_pods(PASSED, pods, {"canary-a": 2, "canary-b": 0})
    assert judged.verdict == "failed"
    # canary-c was created after the baseline: all its restarts count.
    assert judged.reason == "the canary's pods restarted 3 time(s) (canary-a, canary-c)"
    assert restarts_since(pods, {"canary-a": 2}) == {"canary-a": 2, "canary-c": 1}


def test_a_restart_with_a_failing_prometheus_names_both() -> None:
    judged = with_pods(FAILED, (PodState("canary-a", True, 1),), {"canary-a": 0})
    assert judged.verdict == "failed"
    assert judged.reason == f"the canary's pods restarted 1 time(s) (canary-a); {FAILED.reason}"


def test_restarts_before_the_baseline_do_not_count() -> None:
    assert with_pods(PASSED, (PodState("canary-a", True, 7),), {"canary-a": 7}) == PASSED


def test_a_pod_not_ready_makes_a_passed_check_inconclusive() -> None:
    pods = (PodState("canary-a", True, 0), PodState("canary-b", False, 0))
    judged = with_pods(PASSED, pods, {})
    assert judged.verdict == "inconclusive"
    assert judged.reason.startswith("1 of 2 canary pods not Ready (canary-b); Prometheus: 600 requests")


def test_a_failure_prometheus_measured_stands_whatever_the_pods_readiness_or_the_api() -> None:
    assert with_pods(FAILED, (PodState("canary-a", False, 0),), {}) == FAILED
    assert with_pods(FAILED, "the Kubernetes API answered 403 Forbidden", {}) == FAILED


def test_pods_that_cannot_be_read_or_none_at_all_are_never_healthy() -> None:
    unread = with_pods(PASSED, "cannot load the kubeconfig (no such file)", {})
    assert unread.verdict == "inconclusive"
    assert unread.reason.startswith("the canary's pods could not be read: cannot load the kubeconfig (no such file)")
    none = with_pods(PASSED, (), {})
    assert (none.verdict, none.reason.split(";")[0]) == ("inconclusive", "no canary pods found")


def test_the_selector_is_the_canarys_labels_through_a_route_or_the_service() -> None:
    settings = parse_settings_only(stack_settings())
    assert driver.canary_pod_selector(settings, "prod") == {
        "app.kubernetes.io/name": "webapp",
        "app.kubernetes.io/instance": "webapp-prod-canary" if settings.canary_weighted_by_route else "webapp-prod",
        "track": "canary",
    }


def test_the_restart_baseline_is_kept_in_the_release_state_and_an_older_record_reads(tmp_path: Path) -> None:
    release = Release(Image.parse(NEW, "test"), {"GREETING": "Hi"})
    state = ReleaseState(release, Version("r", "1", None, {}), restart_baseline={"canary-a": 3})
    file = StateFile(tmp_path / "prod.json")
    assert file.save(state) == file.load()
    record = state.to_json()
    del record["restartBaseline"]
    assert ReleaseState.from_json(record).restart_baseline is None


def _healthy(expression: str) -> float | None:
    return 600.0 if "increase(" in expression else 0.0


def _run(stack: FakeStack, *argv: str) -> tuple[int, list[str]]:
    """A release of NEW that Prometheus sees healthy throughout: only the pods can fail it."""
    return run_driver(stack, _healthy, "--image", NEW, *argv)


def test_a_release_whose_pod_restarts_is_rolled_back_though_prometheus_saw_it_healthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack(stack_settings(), home=tmp_path, pod_script=["fine", "restart"])
    code, lines = _run(stack)
    assert code == 1
    err = capsys.readouterr().err
    # The fake names a pod after the `up` that made it (the first) and its number.
    assert (
        "1 failed check(s), more than maxFailedChecks 0: the canary's pods restarted 1 time(s) (webapp-dev-canary-1-0)"
        in err
    )
    assert [line.split(":")[1].strip() for line in lines if "check:" in line] == ["passed", "failed"]
    assert stack.disagreement(stack.cluster.stable) == []


def test_a_release_whose_pod_is_never_ready_in_a_step_is_rolled_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack(stack_settings(), home=tmp_path, pod_script=["not ready", "not ready"])
    assert _run(stack)[0] == 1
    assert "no check could judge the canary healthy (the last: 1 of 1 canary pods not Ready" in capsys.readouterr().err


def test_a_kubernetes_api_error_is_never_healthy_and_never_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack(stack_settings(), home=tmp_path, pod_script=["error", "error"])
    assert _run(stack)[0] == 1
    assert "the canary's pods could not be read: the Kubernetes API answered 503" in capsys.readouterr().err


def test_a_resumed_run_still_sees_a_restart_from_before_its_kill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The step's baseline is kept in the release state: taken again after the resumed run's update, it would
    include the restart, and the resumed step pass."""
    stack = FakeStack(
        stack_settings(maxFailedChecks=1),
        home=tmp_path,
        pod_script=["restart"],
        fault=Fault("sleep", 1, "kill before"),
    )
    assert _run(stack)[0] == 130  # the restart failed one check (tolerated), then killed
    stack.fault = None
    assert _run(stack, "--cancel-stale-update")[0] == 1
    assert "2 failed check(s), more than maxFailedChecks 1" in capsys.readouterr().err


# AutomationTarget.canary_pods through the official client against a stand-in API server.


def _pod(name: str, ready: str, restarts: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "webapp-prod", **extra},
        "status": {
            "phase": extra.pop("phase", "Running"),
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [
                {"name": f"c{i}", "restartCount": n, "ready": True, "image": "x", "imageID": "y"}
                for i, n in enumerate(restarts)
            ],
        },
    }


@contextmanager
def _kubernetes_api(status: int, items: list[dict[str, Any]], seen: list[str]) -> Iterator[str]:
    """An API server on 127.0.0.1 answering pod lists with `status` and `items`; the paths asked in `seen`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps(
                {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
                if status == 200
                else {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": status}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Value:
    def __init__(self, value: str) -> None:
        self.value = value


class _Stack:
    """The Automation API stack's config, as AutomationTarget reads it."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config

    def get_all_config(self) -> dict[str, _Value]:
        return {key: _Value(value) for key, value in self.config.items()}


def _target(config: dict[str, str]) -> AutomationTarget:
    target = AutomationTarget.__new__(AutomationTarget)
    target.stack = _Stack(config)  # type: ignore[assignment]
    return target


def _kubeconfig(server: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [
                {"name": "other", "context": {"cluster": "none", "user": "u"}},
                {"name": "here", "context": {"cluster": "c", "user": "u"}},
            ],
            "current-context": "other",
        }
    )


SELECTOR = {"app.kubernetes.io/name": "webapp", "track": "canary"}


def test_automation_target_lists_the_canarys_pods_from_the_stacks_kubeconfig_and_context() -> None:
    items = [
        _pod("canary-a", "True", [1, 2]),
        _pod("canary-b", "False", []),
        _pod("canary-gone", "False", [9], deletionTimestamp="2026-01-01T00:00:00Z"),
        _pod("canary-evicted", "False", [0], phase="Failed"),
    ]
    seen: list[str] = []
    with _kubernetes_api(200, items, seen) as server:
        target = _target({"kubernetes:kubeconfig": _kubeconfig(server), "kubernetes:context": "here"})
        pods = target.canary_pods("webapp-prod", SELECTOR)
    assert pods == [PodState("canary-a", True, 3), PodState("canary-b", False, 0)]
    assert seen[0].startswith("/api/v1/namespaces/webapp-prod/pods?")
    assert urllib.parse.unquote(seen[0]).endswith("?labelSelector=app.kubernetes.io/name=webapp,track=canary"), seen


def test_automation_target_reads_a_kubeconfig_path_and_names_an_api_refusal(tmp_path: Path) -> None:
    with _kubernetes_api(403, [], []) as server:
        path = tmp_path / "kubeconfig"
        path.write_text(_kubeconfig(server).replace('"current-context": "other"', '"current-context": "here"'))
        with pytest.raises(PodsUnavailable, match=r"answered 403 .* in webapp-prod"):
            _target({"kubernetes:kubeconfig": str(path)}).canary_pods("webapp-prod", SELECTOR)


@pytest.mark.parametrize(
    "config",
    [{"kubernetes:kubeconfig": "/nonexistent/kubeconfig"}, {"kubernetes:kubeconfig": "apiVersion: [unclosed"}],
)
def test_automation_target_names_a_kubeconfig_that_will_not_load(config: dict[str, str]) -> None:
    with pytest.raises(PodsUnavailable, match="cannot load the kubeconfig"):
        _target(config).canary_pods("webapp-prod", SELECTOR)


def test_automation_target_names_an_api_that_does_not_answer() -> None:
    with _kubernetes_api(200, [], []) as server:
        pass  # closed: nothing listens there now
    target = _target({"kubernetes:kubeconfig": _kubeconfig(server), "kubernetes:context": "here"})
    with pytest.raises(PodsUnavailable, match="did not answer"):
        target.canary_pods("webapp-prod", SELECTOR)
