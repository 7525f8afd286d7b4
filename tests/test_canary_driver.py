"""tools/canary.py's decisions, on a stack that records its updates and a Prometheus whose answers the test sets:
promotion after every step, rollback naming the objective and the values, tolerance, silence, a failed update,
an interrupted run resumed or undone, and refused inputs. The real engine, cluster and Prometheus run the same
driver in e2e/test_canary.py; here each decision is isolated. tools/canary_analysis.py's Prometheus client is
fed a real HTTP server's bad answers."""

from __future__ import annotations

import copy
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.stack_values import valid_config
from tools import canary as driver
from tools.canary import Release
from tools.canary_analysis import PrometheusUnavailable, Query, prometheus_query
from webapp_platform.config.loading import parse_settings_only
from webapp_platform.config.settings import StackSettings

STABLE_DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64
NEW = f"ghcr.io/example/webapp:2.0.0@{NEW_DIGEST}"
OTHER = f"ghcr.io/example/webapp:3.0.0@{'sha256:' + 'c' * 64}"


def _settings(**analysis: Any) -> dict[str, Any]:
    raw = valid_config(
        image={"repository": "ghcr.io/example/webapp", "tag": "1.0.0", "digest": STABLE_DIGEST},
        metrics={"serviceMonitor": True},
        appConfig={"GREETING": "Hello"},
        canary={
            "enabled": True,
            "steps": [{"weight": 20, "seconds": 20}, {"weight": 50, "seconds": 20}],
            "analysis": {"intervalSeconds": 10, "minRequests": 20, **analysis},
        },
    )
    raw.pop("secrets", None)
    return raw


@dataclass
class RecordingStack:
    """A stack that keeps its config as a stack file would and records what each `up` deployed."""

    config: dict[str, Any]
    deployed: dict[str, Any] | None = None
    ups: list[dict[str, Any]] = field(default_factory=list)
    fail_up_at: int | None = None
    recovered: list[bool] = field(default_factory=list)

    def settings(self) -> StackSettings:
        return parse_settings_only(self.config)

    def in_progress(self) -> dict[str, Any] | None:
        return self.deployed

    def set_release(self, release: Release, weight: int) -> None:
        self.config["canaryRelease"] = release.setting(weight)

    def clear_release(self) -> None:
        self.config.pop("canaryRelease", None)

    def adopt(self, release: Release) -> None:
        image = release.image
        self.config["image"] = {"repository": image.repository, "tag": image.tag, "digest": image.digest}
        self.config["appConfig"] = dict(release.app_config)

    def recover(self, *, cancel_stale: bool) -> list[str]:
        self.recovered.append(cancel_stale)
        return []

    def up(self) -> None:
        self.settings()  # the program validates what it is given
        if self.fail_up_at is not None and len(self.ups) == self.fail_up_at:
            self.ups.append({"failed": True})
            raise driver.UpFailed("error: the Deployment's rollout failed: CrashLoopBackOff")
        release = self.config.get("canaryRelease")
        self.ups.append({"image": self.config["image"]["tag"], "canary": copy.deepcopy(release)})
        self.deployed = (
            None
            if release is None
            else {
                "image": f"{release['image']['repository']}:{release['image']['tag']}@{release['image']['digest']}",
                "appConfig": release["appConfig"],
                "weight": release["weight"],
            }
        )


def _prometheus(requests: float = 600.0, failed: float = 0.0, slow: float = 0.0) -> Query:
    def query(expression: str) -> float | None:
        assert 'job="webapp-canary"' in expression, expression
        if "increase(" in expression:
            return requests
        return failed if 'status=~"5.."' in expression else slow

    return query


def _run(stack: RecordingStack, query: Query, *argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    original = driver.Canary.__init__

    def quiet(self: driver.Canary, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.query, self.log, self.sleep = query, lines.append, lambda seconds: None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver.Canary, "__init__", quiet)
        code = driver.main(["--stack", "prod", "--prometheus", "http://prometheus.invalid", *argv], lambda a: stack)
    return code, lines


def test_a_healthy_release_goes_through_every_step_and_is_promoted(capsys: pytest.CaptureFixture[str]) -> None:
    stack = RecordingStack(_settings())
    code, lines = _run(stack, _prometheus(), "--image", NEW, "--config", "GREETING=Hi")
    assert code == 0, capsys.readouterr().err
    assert [(up["image"], up["canary"] and up["canary"]["weight"]) for up in stack.ups] == [
        ("1.0.0", 20),
        ("1.0.0", 50),
        ("2.0.0", None),
    ]
    assert stack.ups[0]["canary"]["appConfig"] == {"GREETING": "Hi"}
    # The stack file ends as what runs: the release's image and config, no release in progress.
    assert stack.config["image"]["digest"] == NEW_DIGEST
    assert stack.config["appConfig"] == {"GREETING": "Hi"}
    assert "canaryRelease" not in stack.config
    assert stack.deployed is None
    assert sum("check: passed" in line for line in lines) == 4
    assert "promoted" in capsys.readouterr().out


def test_a_release_failing_a_fifth_of_its_requests_is_rolled_back_naming_availability_and_the_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack = RecordingStack(_settings())
    code, _ = _run(stack, _prometheus(failed=0.2), "--image", NEW)
    assert code == 1
    err = capsys.readouterr().err
    assert "rolled back" in err
    assert "availability: 20.00% of 600 requests failed with a 5xx in 10s" in err, err
    assert "burn rate of 200.0 (threshold 14.4" in err
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [20, None]
    assert stack.config["image"]["digest"] == STABLE_DIGEST
    assert "canaryRelease" not in stack.config


def test_a_slow_release_is_rolled_back_naming_latency(capsys: pytest.CaptureFixture[str]) -> None:
    stack = RecordingStack(_settings())
    code, _ = _run(stack, _prometheus(slow=0.5), "--image", NEW)
    assert code == 1
    err = capsys.readouterr().err
    assert "latency: 50.00% of 600 requests took longer than 0.5 s" in err, err
    assert "availability" not in err


def _bad_checks(count: int) -> Query:
    """A canary whose first `count` checks fail (a fifth of its requests), then pass."""
    answers = iter([0.2] * count + [0.0] * 20)

    def query(expression: str) -> float | None:
        if "increase(" in expression:
            return 600.0
        return next(answers) if 'status=~"5.."' in expression else 0.0

    return query


@pytest.mark.parametrize(("allowed", "bad", "code"), [(1, 1, 0), (1, 2, 1), (0, 1, 1), (2, 2, 0)])
def test_failed_checks_up_to_max_failed_checks_are_tolerated_and_one_more_rolls_back(
    allowed: int, bad: int, code: int
) -> None:
    assert _run(RecordingStack(_settings(maxFailedChecks=allowed)), _bad_checks(bad), "--image", NEW)[0] == code


def test_a_step_whose_checks_all_saw_too_few_requests_rolls_back(capsys: pytest.CaptureFixture[str]) -> None:
    stack = RecordingStack(_settings())
    code, _ = _run(stack, _prometheus(requests=3), "--image", NEW)
    assert code == 1
    assert "no check could judge the canary (the last: 3 requests in 10s, fewer than minRequests 20)" in (
        capsys.readouterr().err
    )


def test_a_prometheus_that_does_not_answer_never_promotes(capsys: pytest.CaptureFixture[str]) -> None:
    def down(expression: str) -> float | None:
        raise PrometheusUnavailable("connection refused")

    assert _run(RecordingStack(_settings()), down, "--image", NEW)[0] == 1
    assert "Prometheus did not answer (connection refused)" in capsys.readouterr().err


def test_a_failed_update_rolls_back_with_the_engines_message(capsys: pytest.CaptureFixture[str]) -> None:
    stack = RecordingStack(_settings(), fail_up_at=1)
    assert _run(stack, _prometheus(), "--image", NEW)[0] == 1
    assert "step 2's update failed: error: the Deployment's rollout failed: CrashLoopBackOff" in capsys.readouterr().err
    assert stack.ups[-1]["canary"] is None
    assert "canaryRelease" not in stack.config


def test_an_interrupted_run_of_the_same_release_resumes_at_its_step() -> None:
    stack = RecordingStack(_settings(), deployed={"image": NEW, "appConfig": {"GREETING": "Hello"}, "weight": 50})
    code, lines = _run(stack, _prometheus(), "--image", NEW)
    assert code == 0
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [50, None]
    assert any("resuming the interrupted canary" in line for line in lines)


def test_an_interrupted_run_of_another_release_is_rolled_back_first() -> None:
    stack = RecordingStack(_settings(), deployed={"image": OTHER, "appConfig": {"GREETING": "Hello"}, "weight": 20})
    code, _ = _run(stack, _prometheus(), "--image", NEW)
    assert code == 0
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [None, 20, 50, None]


def test_abort_rolls_back_what_is_in_progress_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    stack = RecordingStack(_settings(), deployed={"image": NEW, "appConfig": {}, "weight": 20})
    assert _run(stack, _prometheus(), "--abort")[0] == 0
    assert stack.ups == [{"image": "1.0.0", "canary": None}]
    idle = RecordingStack(_settings())
    assert _run(idle, _prometheus(), "--abort")[0] == 0
    assert idle.ups == []
    assert "no canary in progress" in capsys.readouterr().out


def test_releasing_what_already_runs_updates_nothing() -> None:
    stack = RecordingStack(_settings())
    assert _run(stack, _prometheus(), "--image", f"ghcr.io/example/webapp:1.0.0@{STABLE_DIGEST}")[0] == 0
    assert stack.ups == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--image", "ghcr.io/example/webapp:2.0.0"], "--image is 'ghcr.io/example/webapp:2.0.0', not an image pinned"),
        (["--image", f"ghcr.io/example/webapp:latest@{NEW_DIGEST}"], "--image: "),
        (["--image", NEW, "--config", "GREETING"], "--config 'GREETING' is not KEY=VALUE"),
        (["--image", NEW, "--config", "PORT=9000"], "PORT is set by the Deployment itself"),
        (["--image", NEW, "--config", "API_TOKEN=x"], "API_TOKEN looks secret"),
        (["--image", NEW, "--config", "bad name=x"], "'bad name' is not an environment variable name"),
        (["--image", NEW, "--unset-config", "NOPE"], "--unset-config ['NOPE']: not in the stack's appConfig"),
    ],
)
def test_bad_arguments_are_refused_before_any_update(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = RecordingStack(_settings())
    assert _run(stack, _prometheus(), *argv)[0] == 1
    assert expected in capsys.readouterr().err
    assert stack.ups == []


def test_a_stack_without_canary_enabled_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    raw = _settings()
    raw["canary"] = {"enabled": False}
    stack = RecordingStack(raw)
    assert _run(stack, _prometheus(), "--image", NEW)[0] == 1
    assert "canary.enabled is not set" in capsys.readouterr().err
    assert stack.ups == []


class _Answers(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus_server() -> Iterator[tuple[str, type[_Answers]]]:
    class Answers(_Answers):
        pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Answers
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"not json"),
        (200, b'{"status": "error", "error": "parse error"}'),
        (200, b"[1, 2]"),
        (503, b"overloaded"),
        (200, b'{"status": "success", "data": {"result": [{"value": [0, "' + b"9" * 2_000_000 + b'"]}]}}'),
        (200, b'{"status": "success", "data": {"res'),
        (200, b'{"status": "success", "data": {"result": [{}]}}'),
        (200, b'{"status": "success", "data": {"result": [{"value": []}]}}'),
        (200, b'{"status": "success", "data": []}'),
        (200, b'{"status": "success", "data": {"result": [{"value": [1, "not a number"]}]}}'),
    ],
)
def test_the_prometheus_client_turns_every_bad_answer_into_unavailable(
    prometheus_server: tuple[str, type[_Answers]], status: int, body: bytes
) -> None:
    url, answers = prometheus_server
    answers.status, answers.body = status, body
    with pytest.raises(PrometheusUnavailable):
        prometheus_query(url)("up")


def test_the_prometheus_client_reads_a_value_and_treats_nan_and_nothing_as_none(
    prometheus_server: tuple[str, type[_Answers]],
) -> None:
    url, answers = prometheus_server
    answers.body = b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "0.25"]}]}}'
    assert prometheus_query(url)("up") == 0.25
    answers.body = b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "NaN"]}]}}'
    assert prometheus_query(url)("up") is None
    answers.body = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
    assert prometheus_query(url)("up") is None
    with pytest.raises(PrometheusUnavailable):
        prometheus_query("http://127.0.0.1:9")("up")
