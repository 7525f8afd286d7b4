"""A bad release of the bundled app, for the e2e's monitoring and canary tests: every fifth `GET /` is answered
500, or (RELEASE_FAULT=slow, set through the release's appConfig) every `GET /` answers after SLOW_SECONDS.

Not a switch in the shipped app: e2e/releases/Dockerfile builds it on top of the built image, and this module
wraps the app the image ships (`python -m failing_release` instead of `python -m app`). The failures go through
Flask, so the app's own metrics count them as any 5xx.
"""

import itertools
import os
import runpy
import threading
import time

from flask import Response, request

import app.factory

FAIL_EVERY = 5
SLOW_SECONDS = 0.8
"""Above every latency objective a stack may set below 1 s (the committed stacks': 0.5 s)."""
FAULT = os.environ.get("RELEASE_FAULT", "fail")
_shipped = app.factory.create_app


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """The shipped app, with one `GET /` in FAIL_EVERY answered 500 (or every one slow)."""
    flask_app = _shipped(*args, **kwargs)
    counter = itertools.count(1)
    lock = threading.Lock()

    def fail_a_share() -> Response | None:
        if request.path != "/":
            return None
        if FAULT == "slow":
            time.sleep(SLOW_SECONDS)
            return None
        with lock:
            number = next(counter)
        if number % FAIL_EVERY:
            return None
        return Response('{"error": "a bad release"}', status=500, mimetype="application/json")

    flask_app.before_request(fail_a_share)
    return flask_app


app.factory.create_app = create_app
runpy.run_module("app", run_name="__main__", alter_sys=True)
