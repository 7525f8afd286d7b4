"""`make up`, `make status`, `make down`: the app on a local cluster (or yours) from one command.

python -m localcluster check-root              # the first thing `make up` does: root, or one line saying why
python -m localcluster plan                    # what `make up` will build, and about how long it takes
python -m localcluster up --stack dev          # start (or reuse) the local cluster, deploy the stack
python -m localcluster up --stack dev --kubeconfig PATH   # deploy to the cluster PATH names instead
python -m localcluster status                  # what runs, where, how to reach it
python -m localcluster down                    # stop and remove everything `up` made
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from localcluster.namespaces import require_root

BUILDS = (
    (".engine/.built", "make engine", "Pulumi CLI, language host, Kubernetes provider", 10),
    (".engine/cluster/.built", "make cluster", "etcd, API server, controllers, kubectl", 7),
    (".engine/node/.built", "make node", "containerd, runc, CNI, kubelet, kube-proxy, BuildKit, registry, Traefik", 9),
    (".engine/image/webapp.json", "make image", "the app's image and the stand-in base", 1),
)
"""What `make up` builds when missing, with minutes on 2 cores from empty Go caches (README, build times)."""


def _plan() -> int:
    from tools.stack_config import REPO_ROOT

    missing = [(target, what, minutes) for stamp, target, what, minutes in BUILDS if not (REPO_ROOT / stamp).exists()]
    if not missing:
        print("up: everything is built; starting the cluster")
        return 0
    total = sum(minutes for *_, minutes in missing)
    print(f"up: building what is missing, about {total} minutes on 2 cores with empty Go caches (a warm rebuild: 1-3):")
    for target, what, minutes in missing:
        print(f"up:   {target:<13} ~{minutes:>2} min  {what}")
    return 0


def _up(stack: str, kubeconfig: Path | None) -> int:
    from localcluster.deploy import DeployError, access_lines, deploy_local, deploy_to
    from localcluster.lifecycle import start_or_reuse
    from localcluster.state import LocalState
    from tools.stack_config import stack_names

    if stack not in stack_names():
        print(f"up: no stack {stack!r}; the committed ones are {', '.join(stack_names())}", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        if kubeconfig is not None:
            deployed = deploy_to(stack, kubeconfig)
            print(f"up: {stack} deployed to the cluster of {kubeconfig} in {deployed.seconds:.1f} s")
            return 0
        require_root()
        cluster = start_or_reuse()
        state = LocalState.load()
        assert state is not None
        previous = state.digest if state.stack == stack else ""
        print(f"up: pulumi up of {stack} ...", flush=True)
        deployed = deploy_local(stack, cluster, previous)
    except (DeployError, AssertionError, RuntimeError, TimeoutError, FileNotFoundError) as error:
        print(f"up: {error}", file=sys.stderr)
        return 1
    state.stack, state.digest = stack, deployed.digest
    state.save()
    if deployed.load is not None:
        print(
            f"up: rolled {stack} in {deployed.seconds:.1f} s under load: {deployed.load.total} requests, "
            f"{len(deployed.load.failures)} failed"
        )
    else:
        print(f"up: {stack} deployed in {deployed.seconds:.1f} s")
    print(f"up: done in {time.monotonic() - began:.1f} s; the app answers from this machine:")
    for line in access_lines(stack, cluster.ports, cluster.pki.ca_cert):
        print(f"  {line}")
    print(f"  kubectl: .engine/cluster/kubectl --kubeconfig {cluster.kubeconfig} get pods -A")
    print("  `make status` shows what runs; `make down` removes it all")
    return 0


def _status() -> int:
    from localcluster.deploy import access_lines
    from localcluster.kubectl import Kubectl
    from localcluster.lifecycle import HOST_KUBECONFIG, healthy
    from localcluster.namespaces import netns_exists
    from localcluster.state import NETNS, LocalState
    from tools.stack_config import stack_file_config

    state = LocalState.load()
    if state is None:
        print(
            "status: no local cluster (`make up` starts one)"
            + (" but a namespace is left: `make down`" if netns_exists(NETNS) else "")
        )
        return 0
    print(f"status: local cluster {'running' if healthy(state) else 'NOT fully running (`make down`, then `make up`)'}")
    print(f"  network namespace {state.netns}: {'present' if netns_exists(state.netns) else 'missing'}")
    if state.supervisor is not None:
        print(f"  supervisor PID {state.supervisor.pid}: {'running' if state.supervisor.running() else 'gone'}")
    for name, forwarder in state.forwarders.items():
        running = "running" if forwarder.running() else "gone"
        print(f"  forwarder {name}: 127.0.0.1:{state.ports.get(name)} PID {forwarder.pid} {running}")
    if state.stack and healthy(state):
        namespace = str(stack_file_config(state.stack)["webapp:namespace"])
        pods = Kubectl(HOST_KUBECONFIG).run("get", "pods", "-n", namespace, "-o", "wide", check=False)
        print(f"  stack {state.stack}, image {state.digest}; pods in {namespace}:")
        print("    " + (pods.stdout or pods.stderr).strip().replace("\n", "\n    "))
        for line in access_lines(state.stack, state.ports, None):
            print(f"  {line}")
    return 0


def _down() -> int:
    from localcluster.lifecycle import remove
    from localcluster.state import LocalState

    require_root()
    began = time.monotonic()
    left = remove(LocalState.load())
    if left:
        print("down: could not remove: " + "; ".join(left), file=sys.stderr)
        return 1
    print(f"down: local cluster stopped and removed in {time.monotonic() - began:.1f} s")
    return 0


def interruptible() -> None:
    """Make SIGINT raise KeyboardInterrupt here whatever this process inherited.

    A process started in the background by a non-interactive shell (a script's or a CI runner's `&`) inherits
    SIGINT ignored, and Python then leaves it ignored: an interrupted `up` would run to its end instead of removing
    what it had started.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    """Dispatch the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-root", help="stop unless root (the local cluster's node needs it)")
    commands.add_parser("plan", help="say what `make up` will build and about how long it takes")
    up = commands.add_parser("up", help="start or reuse the local cluster and deploy a stack")
    up.add_argument("--stack", default="dev")
    up.add_argument("--kubeconfig", type=Path, help="deploy to this cluster instead of a local one")
    commands.add_parser("status", help="what runs and where")
    commands.add_parser("down", help="stop and remove the local cluster")
    args = parser.parse_args(argv)
    if args.command == "check-root":
        require_root()
        return 0
    if args.command == "plan":
        return _plan()
    if args.command == "up":
        interruptible()
        try:
            return _up(args.stack, args.kubeconfig)
        except KeyboardInterrupt:
            print("up: interrupted; whatever the cluster's start had started is removed", file=sys.stderr)
            return 130
    if args.command == "status":
        return _status()
    return _down()


if __name__ == "__main__":
    sys.exit(main())
