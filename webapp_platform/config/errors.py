"""The program's own error type."""

from __future__ import annotations

import pulumi


class ConfigError(pulumi.RunError):
    """The stack's configuration is invalid; the message lists every problem.

    A `pulumi.RunError`, so the CLI prints the message without a traceback.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")
