"""Drive the real Pulumi CLI (built by `make engine`) against a scratch copy of this project.

Each `Workspace` is a temporary copy of the program and its stack files (the
CLI writes `Pulumi.<stack>.yaml` when config is set, so it never runs in the
checkout), a local file backend, and a private PULUMI_HOME holding the
Kubernetes provider at the version the Python SDK asks for. Commands are given
as the text a person would type, so tests can check the README shows the same.
Every command's output is kept for the leak checks.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.paths import ENGINE_BIN, ENGINE_ENV_FILE, LANGUAGE_HOST_DIR
from tools.stack_config import REPO_ROOT

PASSPHRASE = "e2e-passphrase-for-a-throwaway-backend"
COMMAND_TIMEOUT_SECONDS = 300
# What the program needs at run time; the rest of the checkout stays out of the copy.
PROGRAM_FILES = ("__main__.py", "Pulumi.yaml", "requirements.txt")
PROGRAM_DIRS = ("webapp_platform", "prerequisites")
POLICY_FILES = (
    "PulumiPolicy.yaml",
    "__init__.py",
    "__main__.py",
    "requirements.txt",
    "webapp_policies.py",
    "webapp_rules.py",
    "deploy-config.json",
)


TIMINGS: list[tuple[str, str, float]] = []
"""(test, command, seconds) of every preview/up/destroy and the cluster start, printed after the run."""


def pinned_version(package: str) -> str:
    """The version requirements.txt pins `package` to."""
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise LookupError(f"requirements.txt pins no {package}")


def pulumi_binary() -> Path:
    """A `pulumi` on PATH at exactly the pinned version, else the one `make engine` built."""
    on_path = shutil.which("pulumi")
    if on_path and Path(on_path).parent != ENGINE_BIN:
        version = subprocess.run([on_path, "version"], capture_output=True, text=True, check=False).stdout.strip()
        if version == f"v{pinned_version('pulumi')}":
            return Path(on_path)
    built = ENGINE_BIN / "pulumi"
    if not built.exists():
        wanted = pinned_version("pulumi")
        raise FileNotFoundError(f"no Pulumi CLI v{wanted} on PATH and none in {ENGINE_BIN}: run `make engine`")
    return built


def sourced_environment(env_file: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment a bash started with `base` has after `source env_file`."""
    if not env_file.is_file():
        raise FileNotFoundError(f"no {env_file}: run `make engine`")
    printed = subprocess.run(
        ["bash", "-c", 'source "$0" && env -0', str(env_file)], env=base, capture_output=True, check=True
    ).stdout.decode()
    return dict(item.split("=", 1) for item in printed.split("\0") if item)


@dataclass(frozen=True)
class CommandResult:
    """One CLI run: what was typed, how it ended, what it printed, how long it took."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """stdout and stderr together, for messages and searches."""
        return self.stdout + self.stderr

    def json(self) -> Any:
        """stdout parsed as JSON (for `--json` commands)."""
        return json.loads(self.stdout)


@dataclass
class Workspace:
    """A scratch copy of the project with its own file backend, where the real CLI runs."""

    root: Path
    backend: Path
    history: list[CommandResult] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    label: str = ""
    """Names this workspace's commands in the timings printed after the run."""
    passphrase: str = PASSPHRASE
    """What the backend's stacks encrypt their secrets with (a throwaway one for the e2e's backends)."""

    @classmethod
    def create(cls, base: Path, *, program_dir: Path = REPO_ROOT, with_stacks: bool = True) -> Workspace:
        """Copy the program (and its stack files) under `base`; link the virtualenvs, which are large.

        An existing backend under `base` is kept (`make up` deploys again into the same one)."""
        root = base / "project"
        backend = base / "backend"
        root.mkdir(parents=True)
        backend.mkdir(exist_ok=True)
        for name in PROGRAM_FILES:
            if (program_dir / name).exists():
                shutil.copy2(program_dir / name, root / name)
        for name in PROGRAM_DIRS:
            if (program_dir / name).is_dir():
                shutil.copytree(program_dir / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        if with_stacks:
            for stack_file in program_dir.glob("Pulumi.*.yaml"):
                shutil.copy2(stack_file, root / stack_file.name)
        (root / ".venv").symlink_to(REPO_ROOT / ".venv")
        policy = root / "policy"
        policy.mkdir()
        for name in POLICY_FILES:
            shutil.copy2(REPO_ROOT / "policy" / name, policy / name)
        (policy / "venv").symlink_to(REPO_ROOT / "policy" / "venv")
        return cls(root=root, backend=backend)

    def environment(self, *, language_host: bool = True) -> dict[str, str]:
        """The environment of every command: the README's `source .engine/env`, then this workspace's backend.

        `language_host=False` takes the built Python language host off PATH again, so that the CLI
        starts Python policy packs through `pulumi-analyzer-policy-python` (see e2e/automation.py).
        """
        cli = pulumi_binary()
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PULUMI_", "KUBE", "VIRTUAL_ENV", "PYTHON"))
        }
        # `make engine` writes the file; the README's block sources it, and so does every e2e command.
        env = sourced_environment(ENGINE_ENV_FILE, inherited)
        if not language_host:
            env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if d != str(LANGUAGE_HOST_DIR))
        env.update(
            {
                "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
                # This workspace's backend whatever the last `pulumi login` in the shared PULUMI_HOME chose, so
                # workspaces in parallel (or one after another in a test) never reach each other's stacks.
                "PULUMI_BACKEND_URL": f"file://{self.backend}",
                "PULUMI_SKIP_CONFIRMATIONS": "true",
                # Never a real cluster: render mode needs none, and nothing may reach one by accident.
                "KUBECONFIG": str(self.root / "no-kubeconfig"),
                "NO_COLOR": "1",
                "E2E_PULUMI": str(cli),
            }
        )
        env.update(self.extra_env)
        return env

    def run(self, command: str, *, check: bool = True, env: dict[str, str] | None = None) -> CommandResult:
        """Run a `pulumi ...` command line as a person would type it, in the project copy."""
        args = shlex.split(command)
        if args[0] == "pulumi":
            args[0] = str(pulumi_binary())
        return self._execute(command, args, check=check, env=env or self.environment())

    def run_python_module(self, label: str, module: str, *args: str, check: bool = True) -> CommandResult:
        """Run `python -m module args` of this checkout in the workspace, with the CLI's environment but the
        built language host off PATH (as a program driving the Automation API runs); `label` names it."""
        command = [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", module, *args]
        env = self.environment(language_host=False)
        env["PYTHONPATH"] = str(REPO_ROOT)
        return self._execute(label, command, check=check, env=env)

    def _execute(self, command: str, args: list[str], *, check: bool, env: dict[str, str]) -> CommandResult:
        started = time.perf_counter()
        # Its own process group: a command that overruns is killed with its plugins (provider, language host).
        process = subprocess.Popen(
            args,
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"`{command}` did not end within {COMMAND_TIMEOUT_SECONDS} s:\n{stderr[-6000:]}"
            ) from None
        result = CommandResult(
            command=command,
            returncode=process.returncode,
            stdout=stdout,
            stderr=stderr,
            seconds=time.perf_counter() - started,
        )
        self.history.append(result)
        words = command.split()
        if len(words) > 1 and words[1] in {"preview", "up", "destroy", "refresh"}:
            TIMINGS.append((self.label, command, result.seconds))
        if check and result.returncode != 0:
            raise AssertionError(f"`{command}` exited {result.returncode}:\n{result.output[-6000:]}")
        return result

    def login(self) -> CommandResult:
        """`pulumi login` to this workspace's file backend."""
        return self.run(f"pulumi login file://{self.backend}")

    def all_output(self) -> str:
        """Everything every command printed so far."""
        return "\n".join(result.output for result in self.history)
