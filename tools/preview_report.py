"""A pull request's view of one stack's `pulumi preview`: passed or failed, and if failed, why.

    python -m tools.preview_report STACK OUTCOME LOGFILE > report.md

pulumi/actions comments on a pull request only when the preview succeeds
(pulumi/actions#1373), so a preview stopped by a mandatory policy or a bad
setting shows only in the job log. The preview workflow runs the CLI itself,
keeps its output, and posts this report (to the job summary and as the
stack's pull-request comment) whatever the outcome: the stack, the outcome,
each policy violation (policy, resource, message) or setting problem
(`webapp:<key>: ...`) found in the output, then the output's tail.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_VIOLATION = re.compile(
    r"\[(?P<level>mandatory|advisory|remediate)\]\s+(?:\S+\s+v\S+\s+)?(?P<policy>[a-z0-9][a-z0-9-]*)\s+"
    r"\((?P<resource>[^)]*)\)"
)
_SETTING = re.compile(r"^\s*-\s+(?P<problem>[a-z0-9-]+:\S.*)$")
TAIL_LINES = 150
"""Lines of the preview's output shown under the findings (a comment holds at most 65,536 characters)."""


@dataclass(frozen=True)
class Finding:
    """One reason a preview failed: a policy violation or a setting problem, with its message."""

    what: str
    message: str


def findings(log: str) -> list[Finding]:
    """Every policy violation (with the message lines under it) and every setting problem in the output."""
    lines = [_ANSI.sub("", line).rstrip() for line in log.splitlines()]
    found: list[Finding] = []
    for index, line in enumerate(lines):
        violation = _VIOLATION.search(line)
        if violation is not None:
            indent = len(line) - len(line.lstrip())
            message: list[str] = []
            for following in lines[index + 1 :]:
                if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                    break
                message.append(following.strip())
            what = f"policy `{violation['policy']}` ({violation['level']}) on {violation['resource']}"
            found.append(Finding(what, " ".join(message)))
            continue
        setting = _SETTING.match(line)
        if setting is not None:
            key, _, problem = setting["problem"].partition(": ")
            found.append(Finding(f"setting `{key}`", problem))
    return found


def report(stack: str, outcome: str, log: str) -> str:
    """The markdown for the job summary and the pull-request comment."""
    passed = outcome == "success"
    lines = [f"### Preview of stack `{stack}`: {'passed' if passed else 'FAILED'}", ""]
    problems = findings(log)
    if not passed:
        if problems:
            lines += ["It was stopped by:", ""]
            lines += [f"- {finding.what}: {finding.message}" for finding in problems]
        else:
            lines += ["No policy or setting problem was recognised; the end of the output says what failed."]
        lines.append("")
    tail = "\n".join(_ANSI.sub("", line) for line in log.splitlines()[-TAIL_LINES:])
    lines += ["<details><summary>Output (end)</summary>", "", "```", tail.replace("```", "'''"), "```", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the report for STACK, OUTCOME (a step's outcome: success, failure, ...) and the output in LOGFILE."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m tools.preview_report STACK OUTCOME LOGFILE", file=sys.stderr)
        return 2
    stack, outcome, logfile = args
    log = Path(logfile).read_text(errors="replace") if Path(logfile).exists() else "(the preview wrote no output)"
    sys.stdout.write(report(stack, outcome, log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
