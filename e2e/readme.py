"""The `pulumi` commands of the README's "Using it for real" block, so the e2e runs them as written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tools.stack_config import REPO_ROOT

MARKER = "<!-- e2e:"
EXAMPLE_STACK = "dev"
EXAMPLE_SECRET = "'the-password'"


def _block_lines() -> list[str]:
    """The lines of the first sh block after the e2e marker, comments removed."""
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(MARKER)
    block = text[text.index("```sh\n", start) + len("```sh\n") :]
    block = block[: block.index("```")]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines()]


def readme_commands() -> list[str]:
    """Every `pulumi ...` line of the block."""
    return [command for command in _block_lines() if command.startswith("pulumi ")]


def readme_sourced_file() -> Path:
    """The file the block's one `source FILE` line reads (relative to the checkout): how a shell gets the engine."""
    sourced = [line.split()[1] for line in _block_lines() if line.startswith("source ")]
    assert len(sourced) == 1, f"README's e2e block should source one file, not {sourced}"
    return REPO_ROOT / sourced[0]


@dataclass
class ReadmeCommands:
    """Hands out the README's commands by their start, adapted to one stack, and remembers which were used."""

    stack: str
    secret: str
    commands: list[str] = field(default_factory=readme_commands)
    used: set[str] = field(default_factory=set)

    def get(self, start: str) -> str:
        """The README command that is `start`, or else the one that begins with it, for this stack and secret."""
        matches = [command for command in self.commands if command == start] or [
            command for command in self.commands if command.startswith(start)
        ]
        assert len(matches) == 1, f"README's commands hold {len(matches)} lines starting with {start!r}: {matches}"
        self.used.add(matches[0])
        command = matches[0].replace(EXAMPLE_SECRET, f"'{self.secret}'")
        if command.endswith(f" {EXAMPLE_STACK}"):
            command = command[: -len(EXAMPLE_STACK)] + self.stack
        return command

    def unused(self) -> list[str]:
        """README commands no test step has run."""
        return [command for command in self.commands if command not in self.used]
