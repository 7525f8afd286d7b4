"""`make up` as a user runs it, from a clone: the app served through the printed curl line, a change to app/
rebuilt and rolled under load with zero failed requests, and `make down` leaving nothing behind.

Runs as root on the host (not inside e2e/in-namespaces): `make up` makes the namespaces itself. The clone shares
this checkout's builds (`.engine/` entries linked, the image's folder copied, so the rebuild after the change never
touches this checkout's image) and virtualenv; its files are dated back so make sees those builds as current, as it
does in a clone where they were built.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.checkout import clone_with_builds, make
from harness.processes import wait_until
from localcluster.lifecycle import RUN_LINK
from localcluster.namespaces import netns_exists
from localcluster.state import NETNS
from localcluster.supervisor import CGROUP_NAME

NAMESPACE_ADDRESSES = ("10.250.", "10.244.", "10.96.")
"""The node's, the pods' and the Services' ranges: none may appear on the host's interfaces."""


def _make(clone: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = make(clone, *targets)
    print(f"$ make {' '.join(targets)}  ({time.monotonic() - started:.1f} s)\n{result.stdout}{result.stderr}")
    return result


def _host_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout


def _host_iptables() -> str:
    """The host's iptables rules without counters (kube-proxy's belong in the namespace only)."""
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return "\n".join(re.sub(r"\[\d+:\d+\]", "", line) for line in saved.splitlines() if not line.startswith("#"))


def _processes_under(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in argv:
                found.append(f"{entry.name}: {argv[:200]}")
    return found


def _assert_nothing_left(clone: Path, ports: list[int]) -> None:
    assert not netns_exists(NETNS)
    assert not RUN_LINK.exists()
    assert not RUN_LINK.is_symlink()
    assert _processes_under(clone) == []
    assert _processes_under(RUN_LINK) == []
    assert [str(group) for group in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_NAME}")] == []
    assert sorted(p.name for p in (clone / ".local").iterdir()) in ([], ["passphrase"]), "all but the passphrase"
    for port in ports:
        result = subprocess.run(
            ["curl", "-sS", "-m", "2", f"http://127.0.0.1:{port}/"], capture_output=True, check=False
        )
        assert result.returncode != 0, f"something still answers on 127.0.0.1:{port}"


def _printed_curl(output: str) -> str:
    lines: list[str] = re.findall(r"^\s+try:\s+(curl .+)$", output, re.MULTILINE)
    assert len(lines) == 1, output
    return lines[0]


def _curl(line: str) -> dict[str, object]:
    answer = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30, check=True).stdout
    body: dict[str, object] = json.loads(answer)
    return body


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One clone for the module's `make up`s; whatever a failed test leaves running is removed by `make down`."""
    assert os.geteuid() == 0, "make up needs root: the e2e runs as root"
    assert not netns_exists(NETNS), f"a local cluster is already running ({NETNS}): `make down` first"
    path = clone_with_builds(tmp_path_factory.mktemp("local-cluster"))
    try:
        yield path
    finally:
        if netns_exists(NETNS) or (path / ".local" / "state.json").exists():
            _make(path, "down")


def test_make_up_serves_the_app_rolls_a_change_under_load_and_down_leaves_nothing(clone: Path) -> None:
    iptables_before, addresses_before = _host_iptables(), _host_addresses()
    up = _make(clone, "up")
    assert up.returncode == 0
    line = _printed_curl(up.stdout)
    first = _curl(line)
    assert first["message"] == "Hello from dev", first
    assert first["database_password_configured"] is True, first
    assert not any(prefix in _host_addresses() for prefix in NAMESPACE_ADDRESSES), _host_addresses()
    assert _host_iptables() == iptables_before
    status = _make(clone, "status")
    assert status.returncode == 0
    assert "local cluster running" in status.stdout
    assert "Running" in status.stdout

    # A stack-file change only runs `pulumi up` (no image build); a change to app/ rebuilds, pushes and rolls.
    stack_file = clone / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("GREETING: Hello from dev", "GREETING: Hello again"))
    again = _make(clone, "up")
    assert again.returncode == 0
    assert "localcluster.image" not in again.stdout
    assert re.search(r"rolled dev in [\d.]+ s under load: \d+ requests, 0 failed", again.stdout), again.stdout
    views = clone / "app" / "views.py"
    views.write_text(views.read_text() + "\n# changed by the e2e: a new image\n")
    rebuilt = _make(clone, "up")
    assert rebuilt.returncode == 0
    assert "localcluster.image" in rebuilt.stdout
    served = re.search(r"rolled dev in [\d.]+ s under load: (\d+) requests, 0 failed", rebuilt.stdout)
    assert served is not None, rebuilt.stdout
    assert int(served.group(1)) > 50, rebuilt.stdout
    assert _curl(_printed_curl(rebuilt.stdout))["message"] == "Hello again"

    ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", status.stdout)]
    down = _make(clone, "down")
    assert down.returncode == 0
    _assert_nothing_left(clone, ports)
    assert _host_iptables() == iptables_before
    assert _host_addresses() == addresses_before


def test_an_interrupted_make_up_removes_what_it_started(clone: Path) -> None:
    assert _make(clone, "down").returncode == 0  # nothing running, whatever the test before left
    env = {**os.environ, "PYTHONPATH": str(clone)}
    started = subprocess.Popen(
        [str(clone / ".venv" / "bin" / "python"), "-m", "localcluster", "up", "--stack", "dev"], cwd=clone, env=env
    )
    log = clone / ".local" / "logs" / "supervisor.log"
    wait_until(
        "the supervisor started", lambda: log.exists() and netns_exists(NETNS), 60, alive=lambda: started.poll() is None
    )
    time.sleep(2)
    started.send_signal(signal.SIGINT)
    assert started.wait(timeout=120) != 0
    assert not netns_exists(NETNS)
    assert _processes_under(clone / ".local") == []
    assert _processes_under(RUN_LINK) == []
    down = _make(clone, "down")
    assert down.returncode == 0
    _assert_nothing_left(clone, [])
