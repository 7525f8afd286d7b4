"""pulumi-up.yml's last step, run as a GitHub runner runs it: the stack file a deploy changed is committed and pushed
to main, on top of whatever main received meanwhile, by a runner that has no git identity of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from e2e.stacks import promotion_job
from tools.stack_config import REPO_ROOT

RECORD_STEP = "Record what this stack runs in its stack file"
DIGEST = "sha256:" + "d" * 64
AUTHOR = ("-c", "user.name=Dev", "-c", "user.email=dev@example.com")
"""A developer's identity, for the commits that are not the step's."""


def _git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """A runner's git: no identity configured anywhere (actions/checkout sets none), no system or user config."""
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / "absent")}


@pytest.fixture
def remote(tmp_path: Path, git_env: dict[str, str]) -> Path:
    """A bare `origin` whose main holds the committed dev stack file (the repository as the runner cloned it)."""
    origin = tmp_path / "origin.git"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin), env=git_env)
    seed = tmp_path / "seed"
    _git(tmp_path, "clone", "--quiet", str(origin), str(seed), env=git_env)
    (seed / "Pulumi.dev.yaml").write_text((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    (seed / "README.md").write_text("webapp\n")
    _git(seed, "add", ".", env=git_env)
    _git(seed, *AUTHOR, "commit", "--quiet", "-m", "the repository", env=git_env)
    _git(seed, "push", "--quiet", "origin", "HEAD:main", env=git_env)
    return origin


def _checkout(origin: Path, directory: Path, env: dict[str, str]) -> Path:
    _git(directory.parent, "clone", "--quiet", "--branch", "main", str(origin), str(directory), env=env)
    return directory


def _deploy_wrote_a_digest(checkout: Path) -> None:
    """What the promotion step leaves in the checkout: the stack file with the image's digest."""
    file = checkout / "Pulumi.dev.yaml"
    text = file.read_text()
    assert "    digest: " in text, "the dev stack pins its image by digest"
    lines = [f"    digest: {DIGEST}" if line.startswith("    digest: ") else line for line in text.splitlines()]
    file.write_text("\n".join(lines) + "\n")


def _push_meanwhile(origin: Path, directory: Path, env: dict[str, str], file: str, text: str) -> None:
    """Another commit reaches main while the deploy runs (a merge, or the staging job recording its own file)."""
    other = _checkout(origin, directory, env)
    (other / file).write_text(text)
    _git(other, "add", file, env=env)
    _git(other, *AUTHOR, "commit", "--quiet", "-m", "meanwhile", env=env)
    _git(other, "push", "--quiet", "origin", "HEAD:main", env=env)


def test_the_deployed_digest_is_pushed_on_top_of_what_main_received_meanwhile(
    tmp_path: Path, remote: Path, git_env: dict[str, str]
) -> None:
    checkout = _checkout(remote, tmp_path / "runner", git_env)
    _deploy_wrote_a_digest(checkout)
    _push_meanwhile(remote, tmp_path / "other", git_env, "README.md", "webapp, meanwhile\n")

    result = promotion_job("dev", tmp_path / "job", git_env).run(RECORD_STEP, checkout)

    assert result.returncode == 0, result.output
    log = _git(remote, "log", "--format=%s|%an|%cn", "main", env=git_env).splitlines()
    assert log[:2] == [
        f"deploy: dev runs {DIGEST}|github-actions[bot]|github-actions[bot]",
        "meanwhile|Dev|Dev",
    ], log
    assert f"digest: {DIGEST}" in _git(remote, "show", "main:Pulumi.dev.yaml", env=git_env)


def test_a_deploy_that_changed_nothing_commits_nothing(tmp_path: Path, remote: Path, git_env: dict[str, str]) -> None:
    checkout = _checkout(remote, tmp_path / "runner", git_env)
    before = _git(remote, "rev-parse", "main", env=git_env)

    result = promotion_job("dev", tmp_path / "job", git_env).run(RECORD_STEP, checkout)

    assert result.returncode == 0, result.output
    assert _git(remote, "rev-parse", "main", env=git_env) == before


def test_a_stack_file_changed_on_main_meanwhile_fails_the_step_instead_of_overwriting_it(
    tmp_path: Path, remote: Path, git_env: dict[str, str]
) -> None:
    checkout = _checkout(remote, tmp_path / "runner", git_env)
    _deploy_wrote_a_digest(checkout)
    other_digest = "    digest: sha256:" + "a" * 64 + " #"
    edited = (REPO_ROOT / "Pulumi.dev.yaml").read_text().replace("    digest: ", other_digest, 1)
    _push_meanwhile(remote, tmp_path / "other", git_env, "Pulumi.dev.yaml", edited)
    main_before = _git(remote, "rev-parse", "main", env=git_env)

    result = promotion_job("dev", tmp_path / "job", git_env).run(RECORD_STEP, checkout)

    assert result.returncode != 0, result.output
    assert "conflict" in result.output.lower(), result.output
    assert _git(remote, "rev-parse", "main", env=git_env) == main_before, "main keeps the other commit, untouched"
