"""The image recipe: hadolint clean, non-root, pinned, exec-form CMD."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tools.stack_config import REPO_ROOT

DOCKERFILE = REPO_ROOT / "app" / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_to_an_exact_python_version() -> None:
    # On the FROM line itself, no ARG: Dependabot's docker updater reads only that (dependabot-core#2057).
    (base,) = re.findall(r"^FROM (.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base


def test_no_syntax_directive_so_builds_never_fetch_a_frontend_image() -> None:
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE)


def test_runs_as_numeric_non_root_user_10001() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users[-1].split(":")[0] == "10001"


def test_cmd_is_exec_form_running_the_production_server() -> None:
    cmd = re.findall(r"^CMD (.+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert cmd == ['["python", "-m", "app"]']


def test_dependencies_come_from_the_pinned_list() -> None:
    text = DOCKERFILE.read_text()
    assert "pip install --no-compile -r /srv/app/requirements.txt" in text
    for line in (REPO_ROOT / "app" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[a-z0-9-]+==[\w.]+", line), f"unpinned: {line}"


def test_port_matches_the_app_default() -> None:
    assert "EXPOSE 8080" in DOCKERFILE.read_text()


HELLO_DOCKERFILE = REPO_ROOT / "examples" / "hello" / "image" / "Dockerfile"


def test_the_second_apps_image_is_hadolint_clean_on_the_same_base_with_its_own_user() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(HELLO_DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = HELLO_DOCKERFILE.read_text()
    # The e2e swaps one stand-in in for both bases (localcluster/image.py), so they must be the same image.
    assert re.findall(r"^FROM (.+)$", text, re.MULTILINE) == re.findall(r"^FROM (.+)$", DOCKERFILE.read_text(), re.M)
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE) == ["20002:20002"]
    assert re.findall(r"^CMD (.+)$", text, re.MULTILINE) == ['["python", "/srv/hello/server.py"]']
