"""Another app on these components, for real: the webapp-platform wheel installed into a fresh virtualenv, the
example program (examples/hello) deployed by the real CLI onto the real node, hello's own image (not Flask, one
port, its own user, no drain of its own) Ready by its probes, and an image change rolled under load without a
failed request.

Runs in the same process, namespaces and cluster as e2e/test_real_node.py (`make e2e`: e2e/real_cluster.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from e2e.real_cluster import RealCluster
from harness.http import get
from localcluster.load import LoadClient
from localcluster.platform import PULL_SECRET
from localcluster.pulumi_cli import TIMINGS, Workspace
from tools.stack_config import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "hello"
NAMESPACE = "hello"
HELLO_USER = 20002
WRITABLE = ("/", "/srv", "/srv/hello", "/etc", "/tmp")
EXAMPLE_VENV = REPO_ROOT / ".engine" / "example-venv"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The example program in a workspace of its own, with the virtualenv `make` built for it: the wheel built from
    this checkout and the dependencies it declares, installed from the package index into a fresh virtualenv."""
    venv = EXAMPLE_VENV / "venv"
    assert (EXAMPLE_VENV / ".installed").exists(), f"no {venv}: run `make {EXAMPLE_VENV}/.installed`"
    ws = Workspace.create(tmp_path_factory.mktemp("own-app"), program_dir=EXAMPLE, with_stacks=False)
    ws.label = "own app (examples/hello)"
    (ws.root / "venv").symlink_to(venv)
    # As `source venv/bin/activate` would: the engine's environment (.engine/env) activates this checkout's .venv,
    # which the built language host prefers over Pulumi.yaml's `virtualenv` option.
    ws.extra_env["VIRTUAL_ENV"] = str(ws.root / "venv")
    ws.extra_env["PATH"] = f"{ws.root / 'venv' / 'bin'}:{ws.environment()['PATH']}"
    return ws


def _service_address(real: RealCluster) -> tuple[str, int]:
    service = real.plane.kubectl_json("get", "service", "hello", "-n", NAMESPACE)
    return service["spec"]["clusterIP"], int(service["spec"]["ports"][0]["port"])


def _set_image(ws: Workspace, real: RealCluster, tag: str, digest: str) -> None:
    ws.run(f"pulumi config set hello:repository '{real.registry.host}/{real.image.hello_repository}'")
    ws.run(f"pulumi config set hello:tag '{tag}'")
    ws.run(f"pulumi config set hello:digest '{digest}'")


def test_the_example_program_deploys_hello_from_the_installed_wheel(
    real_cluster: RealCluster, example: Workspace
) -> None:
    real, ws = real_cluster, example
    real.prepare_namespace("dev", NAMESPACE)
    ws.extra_env["KUBECONFIG"] = str(real.plane.kubeconfig)
    ws.login()
    ws.run("pulumi stack select --create dev")
    ws.run(f"pulumi config set hello:namespace {NAMESPACE}")
    ws.run(f"pulumi config set --path 'hello:imagePullSecrets[0]' {PULL_SECRET}")
    _set_image(ws, real, real.image.tag, real.image.hello_digest)
    ws.run("pulumi up --yes")
    # The program ran from the fresh virtualenv's installed package, not from the checkout.
    installed = subprocess.run(
        [str(ws.root / "venv" / "bin" / "python"), "-c", "import webapp_platform; print(webapp_platform.__file__)"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(installed.strip()).resolve().is_relative_to(EXAMPLE_VENV / "venv" / "lib"), installed

    pods = [p for p in real.pods(NAMESPACE) if p["status"].get("phase") == "Running"]
    assert len(pods) == 2, [p["status"] for p in real.pods(NAMESPACE)]
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True
        assert status["imageID"].endswith(real.image.hello_digest), status["imageID"]
        inside = real.inside(NAMESPACE, pod["metadata"]["name"], WRITABLE)
        assert (inside["uid"], inside["gid"]) == (HELLO_USER, HELLO_USER)
        assert int(inside["cap_eff"], 16) == 0, inside
        assert inside["no_new_privs"] == "1"
        assert inside["seccomp"] == "2", "seccomp in filter mode (RuntimeDefault)"
        assert inside["writable"] == {"/": False, "/srv": False, "/srv/hello": False, "/etc": False, "/tmp": True}
        # Its probes on its one port, as the contract says; the bundled app's paths are not there.
        assert get(9000, "/readyz", 5, host=pod["status"]["podIP"]).status == 200
        assert get(9000, "/healthz", 5, host=pod["status"]["podIP"]).status == 404
    host, port = _service_address(real)
    answer = get(port, "/", 5, host=host)
    assert answer.status == 200, answer
    assert json.loads(answer.body) == {"app": "hello", "version": real.image.tag, "uid": HELLO_USER}


def test_an_image_change_rolls_under_load_without_a_failed_request(
    real_cluster: RealCluster, example: Workspace
) -> None:
    """hello does not drain itself: the contract's preStop wait keeps it serving until the endpoints dropped it."""
    real, ws = real_cluster, example
    host, port = _service_address(real)
    _set_image(ws, real, real.image.variant_tag, real.image.hello_variant_digest)
    with LoadClient(host, port, path="/?delay=0.05") as load:
        time.sleep(1)
        started = time.monotonic()
        ws.run("pulumi up --yes")
        TIMINGS.append((ws.label, "image change rolled under load (preStop drain)", time.monotonic() - started))
        time.sleep(2)
    report = load.report
    TIMINGS.append((ws.label, f"  requests served during that rollout: {report.total}", 0.0))
    assert report.failures == [], f"{len(report.failures)} of {report.total} failed: {report.failures[:10]}"
    versions = {answer.split()[-1] for answer in report.answers}
    assert versions == {real.image.tag, real.image.variant_tag}, report.answers
    ws.run("pulumi destroy --yes")
