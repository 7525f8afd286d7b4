"""Request IDs and client addresses: taken from the proxy when trusted, returned, and in the request's log lines."""

from __future__ import annotations

import contextvars
import functools
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from app.factory import create_app
from app.jsonlog import JsonFormatter
from app.request_id import request_id_for, with_request_ids
from app.settings import AppSettings
from harness.app_server import RunningServer
from harness.http import get
from harness.processes import wait_until
from tests.conftest import StartServer

GENERATED = re.compile(r"^[0-9a-f]{32}$")


def _client(**env: str) -> Client:
    return Client(create_app({"TESTING": True}, settings=AppSettings.from_env(env)))


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("", False),
        ("3f2a-01:edge.7", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("id with spaces", False),
        ('"}, "level": "error', False),  # no text smuggled into the JSON log lines
    ],
)
def test_a_well_formed_request_id_is_kept_and_any_other_replaced(incoming: str, kept: bool) -> None:
    headers = {"X-Request-ID": incoming} if incoming else {}
    answered = _client().get("/", headers=headers, buffered=True).headers["X-Request-ID"]
    assert answered == incoming if kept else GENERATED.match(answered), answered


def test_every_line_logged_during_a_request_carries_its_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.request_ids")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def inner(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        logger.info("looking up the order")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def serve_then_log() -> TestResponse:
        served = Client(with_request_ids(inner)).get("/", headers={"X-Request-ID": "order-42"}, buffered=True)
        logger.info("between requests")
        return served

    # A context of its own, as each gunicorn request thread has: another module's test client that never closed its
    # response would otherwise leave its own ID behind in this thread's context.
    response = contextvars.Context().run(serve_then_log)
    logger.removeHandler(handler)
    during, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert response.headers["X-Request-ID"] == "order-42"
    assert during["request_id"] == "order-42"
    assert "request_id" not in after, "the ID ends with its request"


@pytest.mark.slow
def test_access_lines_show_the_client_only_through_trusted_proxies(start_app: StartServer) -> None:
    direct = start_app(DRAIN_SECONDS="0")
    behind_one = start_app(DRAIN_SECONDS="0", TRUSTED_PROXIES="1")
    for server in (direct, behind_one):
        server.wait_until_ready()
    for server in (direct, behind_one):
        answer = get(server.port, "/", host_header="webapp.example.com", forwarded_for="203.0.113.7")
        assert answer.status == 200

    def access_lines(server: RunningServer) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in server.stdout().splitlines() if '"event": "access"' in line]
        return [line for line in lines if line["path"] == "/"]

    # A worker writes the access line just after the response, so it may come a moment after the answer.
    for server in (direct, behind_one):
        logged = functools.partial(access_lines, server)
        wait_until("the access line", lambda: len(logged()) == 1, 5.0)  # noqa: B023 - used before the loop moves on
    (direct_line,), (proxied_line,) = access_lines(direct), access_lines(behind_one)
    assert direct_line["remote_addr"] == "127.0.0.1", "an untrusted X-Forwarded-For is ignored"
    assert proxied_line["remote_addr"] == "203.0.113.7"
    assert GENERATED.match(proxied_line["request_id"])


@pytest.mark.parametrize("incoming", ["abc\n", "abc\r\n", "\nabc", "abc\x00"])
def test_an_id_with_a_line_break_or_control_byte_is_replaced(incoming: str) -> None:
    # A `$` pattern accepts a trailing newline; a proxy's header parsing may hand one over.
    assert GENERATED.match(request_id_for(incoming))
