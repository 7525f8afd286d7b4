"""Where the builds put what they made (`.engine/`) and where `make up` keeps its cluster (`.local/`): defined once.

`make engine`, `make cluster`, `make node`, `make image` and `make promcheck` write under `.engine/` (the
build scripts in toolchain/ name the same folders); the local cluster `make up` starts keeps its state, logs,
Pulumi backend and passphrase under `.local/`, which `make down` empties but for the passphrase.
"""

from __future__ import annotations

from tools.stack_config import REPO_ROOT

ENGINE = REPO_ROOT / ".engine"
ENGINE_ENV_FILE = ENGINE / "env"
"""What `source .engine/env` reads (toolchain/build.sh writes it): the built CLI, its language host, PULUMI_HOME."""
ENGINE_BIN = ENGINE / "bin"
LANGUAGE_HOST_DIR = ENGINE / "langhost"
PULUMI_HOME = ENGINE / "home"
CLUSTER_BIN = ENGINE / "cluster"
"""What `make cluster` builds: etcd, the API server, controller manager, scheduler, kubectl, kwok, the CRD bundles."""
NODE_BIN = ENGINE / "node" / "bin"
"""What `make node` builds: the real node's parts, BuildKit, the registry and Traefik."""
CNI_BIN = ENGINE / "node" / "cni"
IMAGE_DIR = ENGINE / "image"
"""What `make image` leaves: the registry's storage and login, the stand-in base, the pushed image's record."""
BUILDKIT_STATE = ENGINE / "buildkit"
PROMCHECK = ENGINE / "promcheck" / "promcheck"
GRAFANACHECK = ENGINE / "grafanacheck" / "grafanacheck"

LOCAL = REPO_ROOT / ".local"
"""The local cluster of `make up`: its state file, daemons' logs, Pulumi backend and passphrase."""
