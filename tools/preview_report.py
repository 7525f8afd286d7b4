"""A pull request's view of one stack's `pulumi preview`: passed or failed, why, and every policy finding.

    python -m tools.preview_report STACK OUTCOME LOGFILE EVENTLOG > report.md

pulumi/actions comments on a pull request only when the preview succeeds
(pulumi/actions#1373), so a preview stopped by a mandatory policy or a bad
setting shows only in the job log. The preview workflow runs the CLI itself
with `--event-log` and posts this report (to the job summary and as the
stack's pull-request comment) whatever the outcome. The findings come from
the engine's structured events, never from its human text: each policy
event (policy, enforcement level, resource, message), mandatory ones as what
stopped the preview and advisory ones listed whether it passed or not, and
each error diagnostic, whose setting problems (`- webapp:<key>: ...`) are
named by key. The human output's tail follows.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_COLOR_TAG = re.compile(r"<\{%[^%]*%\}>")
"""The engine's colour markup in event messages (`<{%fg 1%}>`, `<{%reset%}>`)."""
_SETTING = re.compile(r"^\s*-\s+(?P<key>[a-z0-9-]+:[^:\s]+): (?P<problem>.+)$")
TAIL_LINES = 150
"""Lines of the preview's output shown under the findings (a comment holds at most 65,536 characters)."""
LEVELS = {"mandatory": "mandatory", "advisory": "advisory", "warning": "advisory", "remediate": "remediate"}
"""The enforcement levels a policy event carries, as the policy pack names them (the CLI writes `advisory`; its API
types call it `warning`); `disabled` and `none` are never reported."""


@dataclass(frozen=True)
class Finding:
    """One thing the preview reports: a policy violation, a setting problem or an error, with its message."""

    what: str
    message: str
    blocking: bool = True
    """Whether it stops the preview (mandatory policies, settings, errors) or is advisory."""


def read_events(text: str) -> list[dict[str, Any]]:
    """The engine events of an `--event-log` file (one JSON object per line); a torn last line is skipped."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _plain(message: str) -> str:
    return _ANSI.sub("", _COLOR_TAG.sub("", message)).strip()


def _resource(urn: str) -> str:
    """`type: name` of a URN (`urn:pulumi:stack::project::parent$type::name`), or the stack for a stack policy."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "the stack"
    return f"{parts[2].rsplit('$', 1)[-1]}: {parts[3]}"


def _policy(event: Mapping[str, Any]) -> Finding | None:
    level = LEVELS.get(str(event.get("enforcementLevel", "")))
    if level is None:
        return None
    what = f"policy `{event.get('policyName', '?')}` ({level}) on {_resource(str(event.get('resourceUrn', '')))}"
    message = " ".join(line.strip() for line in _plain(str(event.get("message", ""))).splitlines() if line.strip())
    return Finding(what, message, blocking=level == "mandatory")


def _errors(event: Mapping[str, Any]) -> list[Finding]:
    if event.get("severity") != "error":
        return []
    message = _plain(str(event.get("message", "")))
    settings = [_SETTING.match(line) for line in message.splitlines()]
    named = [Finding(f"setting `{match['key']}`", match["problem"].strip()) for match in settings if match]
    return named or [Finding("error", " ".join(message.split())[:500])]


def findings(events: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """Every policy violation and every error the events carry, in their order, errors after policies; a generic
    error is left out when a policy or a setting already says why (the engine then adds one to say it failed)."""
    policies = [f for event in events if "policyEvent" in event if (f := _policy(event["policyEvent"]))]
    errors = [f for event in events if "diagnosticEvent" in event for f in _errors(event["diagnosticEvent"])]
    specific = [f for f in errors if f.what != "error"]
    if any(f.blocking for f in policies) or specific:
        errors = specific
    return policies + errors


def report(stack: str, outcome: str, log: str, events: Iterable[Mapping[str, Any]]) -> str:
    """The markdown for the job summary and the pull-request comment."""
    passed = outcome == "success"
    lines = [f"### Preview of stack `{stack}`: {'passed' if passed else 'FAILED'}", ""]
    found = findings(events)
    blocking = [f for f in found if f.blocking]
    advisory = [f for f in found if not f.blocking]
    if not passed:
        if blocking:
            lines += ["It was stopped by:", ""]
            lines += [f"- {finding.what}: {finding.message}" for finding in blocking]
        else:
            lines += ["No policy or setting problem was recognised; the end of the output says what failed."]
        lines.append("")
    if advisory:
        lines += ["Advisory policy findings (they do not stop a deploy):", ""]
        lines += [f"- {finding.what}: {finding.message}" for finding in advisory]
        lines.append("")
    tail = "\n".join(_ANSI.sub("", line) for line in log.splitlines()[-TAIL_LINES:])
    lines += ["<details><summary>Output (end)</summary>", "", "```", tail.replace("```", "'''"), "```", "</details>"]
    return "\n".join(lines) + "\n"


def _read(path: str, missing: str) -> str:
    file = Path(path)
    return file.read_text(errors="replace") if file.exists() else missing


def main(argv: list[str] | None = None) -> int:
    """Print the report for STACK, OUTCOME (a step's outcome: success, failure, ...), the human output in LOGFILE
    and the engine events in EVENTLOG (either may be missing when the CLI never started)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python -m tools.preview_report STACK OUTCOME LOGFILE EVENTLOG", file=sys.stderr)
        return 2
    stack, outcome, logfile, eventlog = args
    log = _read(logfile, "(the preview wrote no output)")
    sys.stdout.write(report(stack, outcome, log, read_events(_read(eventlog, ""))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
