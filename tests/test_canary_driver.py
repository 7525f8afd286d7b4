"""tools/canary.py's decisions, on a stack that records its updates and a Prometheus whose answers the test sets:
promotion after every step, rollback naming the objective and the values, tolerance, silence, a failed update,
an interrupted run resumed or undone, and refused inputs. The real engine, cluster and Prometheus run the same
driver in e2e/test_canary.py; here each decision is isolated. tools/canary_analysis.py's Prometheus client is
fed a real HTTP server's bad answers."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.canary_stand_ins import (
    NEW,
    NEW_DIGEST,
    OTHER,
    STABLE_DIGEST,
    FakeStack,
    Fault,
    PrometheusStandIn,
    run_driver,
    stack_settings,
    version_of,
)
from tools import canary_analysis
from tools.canary_analysis import PrometheusUnavailable, Query, prometheus_query


@pytest.fixture
def stack(tmp_path: Path) -> FakeStack:
    """A canary stack at rest on its stable version (1.0.0, GREETING=Hello)."""
    return FakeStack(stack_settings(), home=tmp_path)


def _prometheus(requests: float = 600.0, failed: float = 0.0, slow: float = 0.0) -> Query:
    def query(expression: str) -> float | None:
        assert 'job="webapp-canary"' in expression, expression
        if "increase(" in expression:
            return requests
        return failed if 'status=~"5.."' in expression else slow

    return query


def test_a_healthy_release_goes_through_every_step_and_is_promoted(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_driver(stack, _prometheus(), "--image", NEW, "--config", "GREETING=Hi")
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
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_driver(stack, _prometheus(failed=0.2), "--image", NEW)
    assert code == 1
    err = capsys.readouterr().err
    assert "rolled back" in err
    assert "availability: 20.00% of 600 requests failed with a 5xx in 10s" in err, err
    assert "burn rate of 200.0 (threshold 14.4" in err
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [20, None]
    assert stack.config["image"]["digest"] == STABLE_DIGEST
    assert "canaryRelease" not in stack.config


def test_a_slow_release_is_rolled_back_naming_latency(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_driver(stack, _prometheus(slow=0.5), "--image", NEW)
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


# (2, 2): both of step 1's checks failed, tolerated, but no check of the step passed: nothing showed it healthy.
@pytest.mark.parametrize(("allowed", "bad", "code"), [(1, 1, 0), (1, 2, 1), (0, 1, 1), (2, 2, 1)])
def test_failed_checks_up_to_max_failed_checks_are_tolerated_and_one_more_rolls_back(
    allowed: int, bad: int, code: int, tmp_path: Path
) -> None:
    stack = FakeStack(stack_settings(maxFailedChecks=allowed), home=tmp_path)
    assert run_driver(stack, _bad_checks(bad), "--image", NEW)[0] == code


def test_a_step_whose_checks_all_saw_too_few_requests_rolls_back(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_driver(stack, _prometheus(requests=3), "--image", NEW)
    assert code == 1
    assert "no check could judge the canary healthy (the last: 3 requests in 10s, fewer than minRequests 20)" in (
        capsys.readouterr().err
    )


def test_a_prometheus_that_does_not_answer_never_promotes(stack: FakeStack, capsys: pytest.CaptureFixture[str]) -> None:
    def down(expression: str) -> float | None:
        raise PrometheusUnavailable("connection refused")

    assert run_driver(stack, down, "--image", NEW)[0] == 1
    assert "Prometheus did not answer (connection refused)" in capsys.readouterr().err


def test_a_failed_update_rolls_back_with_the_engines_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack(stack_settings(), home=tmp_path, failing_ups=(1,))
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 1
    assert "step 2's update failed: error: the Deployment's rollout failed: CrashLoopBackOff" in capsys.readouterr().err
    assert stack.ups[-1]["canary"] is None
    assert "canaryRelease" not in stack.config


def test_an_interrupted_run_of_the_same_release_resumes_at_its_step(tmp_path: Path) -> None:
    deployed = {"image": NEW, "appConfig": {"GREETING": "Hello"}, "weight": 50}
    stack = FakeStack(stack_settings(), home=tmp_path, deployed=deployed)
    code, lines = run_driver(stack, _prometheus(), "--image", NEW)
    assert code == 0
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [50, None]
    assert any("resuming the interrupted canary" in line for line in lines)


def test_an_interrupted_run_of_another_release_is_rolled_back_first(tmp_path: Path) -> None:
    deployed = {"image": OTHER, "appConfig": {"GREETING": "Hello"}, "weight": 20}
    stack = FakeStack(stack_settings(), home=tmp_path, deployed=deployed)
    code, _ = run_driver(stack, _prometheus(), "--image", NEW)
    assert code == 0
    assert [up["canary"] and up["canary"]["weight"] for up in stack.ups] == [None, 20, 50, None]


def test_abort_rolls_back_what_is_in_progress_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = FakeStack(stack_settings(), home=tmp_path / "busy", deployed={"image": NEW, "appConfig": {}, "weight": 20})
    assert run_driver(stack, _prometheus(), "--abort")[0] == 0
    assert stack.ups == [{"image": "1.0.0", "canary": None}]
    idle = FakeStack(stack_settings(), home=tmp_path / "idle")
    assert run_driver(idle, _prometheus(), "--abort")[0] == 0
    assert idle.ups == []
    assert "no canary in progress" in capsys.readouterr().out


def test_releasing_what_already_runs_updates_nothing(stack: FakeStack) -> None:
    assert run_driver(stack, _prometheus(), "--image", f"ghcr.io/example/webapp:1.0.0@{STABLE_DIGEST}")[0] == 0
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
    argv: list[str], expected: str, stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_driver(stack, _prometheus(), *argv)[0] == 1
    assert expected in capsys.readouterr().err
    assert stack.ups == []


def test_a_stack_without_canary_enabled_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = stack_settings()
    raw["canary"] = {"enabled": False}
    stack = FakeStack(raw, home=tmp_path)
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 1
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


# The holes an adversarial review found (issue 35: F4-F8), each as the sequence that showed it.


def _agrees_on_the_stable_version(stack: FakeStack) -> None:
    stable = version_of(stack_settings()["image"], {"GREETING": "Hello"})
    assert stack.disagreement(stable) == []


def test_abort_after_a_failed_promotion_and_a_failed_rollback_ends_at_the_version_stable_before_it(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F4: the promotion writes the release into the stack file before its `up`; that `up` failing (and the
    rollback's after it) must not leave `--abort` to roll the stable pods onto the release."""
    stack.failing_ups = (2, 3)  # the promotion's update, then the rollback's
    code, _ = run_driver(stack, _prometheus(), "--image", NEW)
    assert code == 1
    assert "was rolled back" not in capsys.readouterr().err
    assert run_driver(stack, _prometheus(), "--abort")[0] == 0
    assert f"the stack runs ghcr.io/example/webapp:1.0.0@{STABLE_DIGEST}" in capsys.readouterr().out
    _agrees_on_the_stable_version(stack)


def test_a_failed_promotion_is_rolled_back_to_the_stable_version(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F4: the promotion's own `up` failing rolls back, as a step's does."""
    stack.failing_ups = (2,)
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 1
    assert "the promotion's update failed" in capsys.readouterr().err
    _agrees_on_the_stable_version(stack)


@pytest.mark.parametrize("state_kept", [True, False])
def test_abort_finds_a_run_killed_in_its_first_update(
    stack: FakeStack, state_kept: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """F5: killed during its first `up`, a run leaves no `canary` output, but its release in the stack file (and
    its release state, unless lost with a checkout) and its canary in the cluster: `--abort` takes it out."""
    stack.fault = Fault("up", 0, "kill during")
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 130
    assert stack.deployed is None
    assert stack.cluster.canary is not None
    if not state_kept:
        for path in stack.home.glob("*.json"):
            path.unlink()
    stack.fault = None
    capsys.readouterr()
    assert run_driver(stack, _prometheus(), "--abort", "--cancel-stale-update")[0] == 0
    assert "the canary was rolled back" in capsys.readouterr().out
    _agrees_on_the_stable_version(stack)


def test_a_release_whose_latency_series_is_missing_is_never_promoted(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F6: no duration histogram (or not its bucket) is latency never measured, not 0 % slow."""

    def no_latency(expression: str) -> float | None:
        return None if "duration" in expression else _prometheus()(expression)

    assert run_driver(stack, no_latency, "--image", NEW)[0] == 1
    err = capsys.readouterr().err
    assert "latency (webapp_http_request_duration_seconds_bucket at 0.5 s) not measured" in err, err
    _agrees_on_the_stable_version(stack)


def test_the_failed_checks_budget_spans_a_resumedrun_driver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """F8: maxFailedChecks counts over the whole release, not per run: a check failed before a kill still counts."""
    stack = FakeStack(stack_settings(maxFailedChecks=1), home=tmp_path, fault=Fault("sleep", 1, "kill before"))
    assert run_driver(stack, _prometheus(failed=0.2), "--image", NEW)[0] == 130  # one failed check, then killed
    stack.fault = None
    # The resumed run sees one failed check, then healthy ones: with the one before the kill, one too many.
    assert run_driver(stack, _bad_checks(1), "--image", NEW, "--cancel-stale-update")[0] == 1
    assert "2 failed check(s), more than maxFailedChecks 1" in capsys.readouterr().err
    _agrees_on_the_stable_version(stack)


def test_a_run_killed_while_rolling_back_is_rolled_back_by_the_next(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F8: a kill during the rollback's `up` must not let the next run of the same release resume and promote it."""
    stack.fault = Fault("up", 1, "kill during")  # the first step's update, then the rollback's
    assert run_driver(stack, _prometheus(failed=0.2), "--image", NEW)[0] == 130
    stack.fault = None
    code, lines = run_driver(stack, _prometheus(), "--image", NEW, "--cancel-stale-update")
    assert code == 1, lines
    assert "an interrupted run was rolling it back: step 1: 1 failed check(s)" in capsys.readouterr().err
    _agrees_on_the_stable_version(stack)


def test_abort_after_a_promotion_killed_writing_the_stack_file_restores_the_whole_stable_config(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F8: the promotion's config write killed part-way (the image written, not the appConfig) leaves a mixed
    stable config; `--abort` writes the whole stable version back."""
    stack.fault = Fault("write_stable", 0, "kill during")
    assert run_driver(stack, _prometheus(), "--image", NEW, "--config", "GREETING=Hi")[0] == 130
    stack.fault = None
    assert run_driver(stack, _prometheus(), "--abort", "--cancel-stale-update")[0] == 0
    assert f"the stack runs ghcr.io/example/webapp:1.0.0@{STABLE_DIGEST}" in capsys.readouterr().out
    _agrees_on_the_stable_version(stack)


def test_a_second_run_on_a_stack_refuses_to_start_and_changes_nothing(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """F8: two runs on one stack would write `canaryRelease` over each other's and judge each other's canary."""
    refused: list[tuple[int, list[str]]] = []

    def second_run() -> None:
        before = stack.snapshot()
        stack.fault = None
        refused.append(run_driver(stack, _prometheus(), "--image", OTHER))
        assert stack.snapshot() == before

    stack.fault, stack.during = Fault("up", 0, "concurrent"), second_run
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 0
    assert [code for code, _ in refused] == [1]
    assert "another run is releasing on this stack (pid " in capsys.readouterr().err


def test_a_trickled_answer_is_cut_at_the_query_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """F7: the deadline is the whole answer's, not each read's: a byte every 20 ms passes any per-read timeout."""
    monkeypatch.setattr(canary_analysis, "QUERY_TIMEOUT_SECONDS", 0.3)
    with (
        PrometheusStandIn(script=["trickled"], trickle_gap=0.02).running() as prometheus,
        pytest.raises(PrometheusUnavailable, match=r"no whole answer within 0\.3 s"),
    ):
        prometheus_query(prometheus.url)("sum(increase(x[10s]))")


def _killed_in_its_first_step_then_deployed_by_hand(stack: FakeStack) -> None:
    stack.fault = Fault("sleep", 0, "kill before")
    assert run_driver(stack, _prometheus(), "--image", NEW)[0] == 130  # the release state names 2.0.0 over 1.0.0
    assert (stack.home / "prod.json").exists()
    stack.deploy_by_hand(OTHER, {"GREETING": "Hello"})  # 3.0.0, the canary taken out by hand
    assert stack.disagreement(version_of(stack.config["image"], {"GREETING": "Hello"})) == []


def test_abort_discards_a_release_state_a_deploy_made_since_outdated_and_deploys_nothing(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2, defect 1: a release state left by a killed run outlives a deploy made without the driver (no
    `canaryRelease`, no canary deployed, the stack file on neither its release nor the version stable before it);
    `--abort` must discard it, not write its stable version back and undo that deploy."""
    _killed_in_its_first_step_then_deployed_by_hand(stack)
    ups = len(stack.ups)
    capsys.readouterr()
    code, lines = run_driver(stack, _prometheus(), "--abort")
    assert code == 0
    out = capsys.readouterr().out
    assert stack.ups[ups:] == [], "the abort deployed something"
    assert stack.cluster.stable[0] == OTHER, "the abort undid a deploy made after the canary"
    assert stack.disagreement(version_of(stack.config["image"], {"GREETING": "Hello"})) == []
    assert not (stack.home / "prod.json").exists()
    said = "\n".join(lines) + out
    assert f"{stack.home / 'prod.json'}: discarded" in said, said
    assert "nothing was taken out or deployed" in said, said


def test_a_release_after_a_deploy_made_since_a_kill_starts_from_what_the_stack_runs(
    stack: FakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2, defect 1: the next release must not take the leftover state's stable version (1.0.0) for the
    stable one: rolled back, it goes back to what the stack ran before it (3.0.0, deployed by hand)."""
    _killed_in_its_first_step_then_deployed_by_hand(stack)
    ups = len(stack.ups)
    capsys.readouterr()
    code, lines = run_driver(stack, _prometheus(failed=0.2), "--image", NEW)
    assert code == 1
    assert [up["image"] for up in stack.ups[ups:]] == ["3.0.0", "3.0.0"], stack.ups[ups:]  # step 1, its rollback
    assert stack.disagreement(version_of(stack.config["image"], {"GREETING": "Hello"})) == []
    assert stack.cluster.stable[0] == OTHER
    assert not any("resuming the interrupted canary" in line for line in lines), lines
    assert any(f"{stack.home / 'prod.json'}: discarded" in line for line in lines), lines


@pytest.fixture
def unanswered_addresses() -> Iterator[list[tuple[str, int]]]:
    """Ten loopback addresses (127.0.0.2-11) whose connects hang: each a listener that never accepts, its accept
    queue filled first (Linux then drops further SYNs, so a connect waits for its timeout, as to a blackholed
    host)."""
    listeners: list[socket.socket] = []
    held: list[socket.socket] = []
    addresses = []
    for host in (f"127.0.0.{n}" for n in range(2, 12)):
        listener = socket.socket()
        listener.bind((host, 0))
        listener.listen(0)
        listeners.append(listener)
        address = (host, listener.getsockname()[1])
        addresses.append(address)
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            held.append(filler)
    time.sleep(0.2)  # the fillers' handshakes done: the queue is full
    yield addresses
    for sock in held + listeners:
        sock.close()


def test_a_query_deadline_covers_connecting_to_every_address_a_name_resolves_to(
    unanswered_addresses: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 2, defect 2: a name resolving to several addresses none of which answers (a headless Service's
    replicas, unreachable) must not get the query's whole timeout per address: the deadline is the whole answer's,
    connecting included. No DNS: getaddrinfo answers the name with the ten hanging addresses."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "prometheus-operated.monitoring.invalid":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", a) for a in unanswered_addresses]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(canary_analysis, "QUERY_TIMEOUT_SECONDS", 0.5)
    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            prometheus_query("http://prometheus-operated.monitoring.invalid")("up")
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    # The bound under test is the deadline (0.5 s); the join's 3 s is generous for it on a loaded machine, and
    # less than the 5 s that ten addresses of 0.5 s each take.
    asking.join(timeout=3)
    assert not asking.is_alive(), "the query was still connecting after its deadline (0.5 s) and then some"
    assert len(outcome) == 1
    assert isinstance(outcome[0], PrometheusUnavailable), outcome
    assert "no whole answer within 0.5 s" in str(outcome[0])
