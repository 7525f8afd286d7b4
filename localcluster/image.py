"""`make image`: build app/Dockerfile with BuildKit and push it, by digest, to a registry on loopback with a login.

    python -m localcluster.image            # what `make image` runs

BuildKit (buildkitd and buildctl, from its Go module) is what `docker build` and
docker/build-push-action run, so the Dockerfile is built here as CI builds it:
the built-in `dockerfile.v0` frontend (no `# syntax=` line, so no frontend image
is fetched), runc as the OCI worker, the build's RUN steps on the host network
(pip reaches PyPI as every install here does).

Docker Hub is out of reach here, so a named build context (BuildKit's
`context:<image>` option, docker buildx's `--build-context`) replaces the
Dockerfile's base `python:3.11.14-slim-bookworm` with a stand-in: Debian bookworm's own python3.11
with pip and `python`, made by mmdebstrap from Debian's packages and pushed to
the same registry. This machine reaches PyPI through a TLS-intercepting proxy,
so the stand-in (never an image CI publishes) carries the host's CA bundle.

What it leaves in .engine/image: the registry's storage and login (for the e2e's
registry and the pods' pull secret) and `webapp.json` (repository, tag, digest,
size, build seconds).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.processes import wait_until
from localcluster.cgroups import cgroup_root
from localcluster.daemons import Daemons
from localcluster.paths import BUILDKIT_STATE, IMAGE_DIR, NODE_BIN
from localcluster.registry import Login, Registry, running_registry
from tools.stack_config import REPO_ROOT

STORAGE = IMAGE_DIR / "registry"
LOGIN_FILE = IMAGE_DIR / "login.json"
RESULT_FILE = IMAGE_DIR / "webapp.json"
BASE_CONTEXT = IMAGE_DIR / "standin-base"
"""The stand-in base's build context: its Dockerfile and the root filesystem mmdebstrap made (kept: a warm build)."""
BASE_TARBALL = BASE_CONTEXT / "python-standin-bookworm.tar"
PAUSE_ARCHIVE = IMAGE_DIR / "pause.tar"
PAUSE_IMAGE = "localhost/webapp-e2e/pause:catatonit"
CATATONIT = Path("/usr/bin/catatonit")
PAUSE_DOCKERFILE = """\
FROM scratch
COPY catatonit /pause
USER 65535:65535
ENTRYPOINT ["/pause", "-P"]
"""
REPOSITORY = "webapp"
APP_DOCKERFILE_DIR = REPO_ROOT / "app"
HELLO_DOCKERFILE_DIR = REPO_ROOT / "examples" / "hello" / "image"
HELLO_REPOSITORY = "hello"
VARIANT_LABEL = "--opt=label:org.example.webapp.variant=e2e"
RELEASES_DOCKERFILE_DIR = REPO_ROOT / "e2e" / "releases"
BASE_REPOSITORY = "python-standin"
BASE_TAG = "3.11-slim-bookworm"
BUILD_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 60
CGROUP_PARENT = "webapp-e2e-buildkit"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The official image's contents that the app relies on: python (as `python`), pip, CA certificates,
# groupadd/useradd for the USER line.
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates", "passwd")
BASE_DOCKERFILE = """\
FROM scratch
ADD python-standin-bookworm.tar /
ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python"]
"""


@dataclass(frozen=True)
class BuiltImage:
    """What the push printed, and the figures of the build."""

    repository: str
    tag: str
    digest: str
    size_bytes: int
    build_seconds: float
    base_seconds: float
    variant_tag: str
    """A second build of the same sources, differing only in a label, so a stack can change its image."""
    variant_digest: str
    hello_repository: str
    """examples/hello's image (the second app), pushed as hello:`tag`, and its variant as hello:`variant_tag`."""
    hello_digest: str
    hello_variant_digest: str
    failing_tag: str
    """A bad release of the app (e2e/releases/Dockerfile: every fifth `GET /` answers 500), as webapp:`failing_tag`."""
    failing_digest: str

    @classmethod
    def load(cls) -> BuiltImage:
        """The image the last `make image` pushed."""
        if not RESULT_FILE.exists():
            raise FileNotFoundError(f"no {RESULT_FILE}: run `make image`")
        return cls(**json.loads(RESULT_FILE.read_text()))


def git_tag() -> str:
    """The image tag: the checkout's full commit SHA, as CI tags what it builds."""
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class BuildKit:
    """A running buildkitd, driven with buildctl."""

    socket: Path
    docker_config: Path

    def build(self, *args: str) -> dict[str, str]:
        """`buildctl build ARGS`, pushing; return the metadata BuildKit wrote (the digest among it)."""
        metadata = self.socket.parent / "metadata.json"
        command = [str(NODE_BIN / "buildctl"), f"--addr=unix://{self.socket}", "build", *args]
        command += ["--metadata-file", str(metadata)]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_CONFIG": str(self.docker_config)}
        result = subprocess.run(
            command, env=env, text=True, capture_output=True, timeout=BUILD_TIMEOUT_SECONDS, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"buildctl build exited {result.returncode}:\n{result.stderr[-8000:]}")
        written: dict[str, str] = json.loads(metadata.read_text())
        return written


@contextlib.contextmanager
def running_buildkit(directory: Path, registry: Registry) -> Iterator[BuildKit]:
    """buildkitd as root with runc, its state under .engine/buildkit (the warm cache); stopped on exit."""
    state = BUILDKIT_STATE
    state.mkdir(parents=True, exist_ok=True)
    socket = directory / "buildkitd.sock"
    config = directory / "buildkitd.toml"
    config.write_text(
        f'[worker.oci]\n  defaultCgroupParent = "/{CGROUP_PARENT}"\n'
        f"[worker.containerd]\n  enabled = false\n"
        f'[registry."{registry.host}"]\n  http = true\n  insecure = true\n'
    )
    docker_config = directory / "docker"
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps(registry.login.docker_config(registry.host)))
    daemons = Daemons(directory)
    with cgroup_root(CGROUP_PARENT):
        try:
            daemons.spawn(
                "buildkitd",
                NODE_BIN / "buildkitd",
                f"--config={config}",
                f"--root={state}",
                f"--addr=unix://{socket}",
                f"--oci-worker-binary={NODE_BIN / 'runc'}",
                "--oci-worker-net=host",
                "--oci-worker-snapshotter=overlayfs",
                # buildkitd looks runc up on PATH before it reads --oci-worker-binary.
                env={**os.environ, "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
                hint="make node",
            )
            kit = BuildKit(socket, docker_config)
            workers = [str(NODE_BIN / "buildctl"), f"--addr=unix://{socket}", "debug", "workers"]
            wait_until(
                "buildkitd",
                lambda: subprocess.run(workers, capture_output=True, check=False).returncode == 0,
                START_TIMEOUT_SECONDS,
                daemons.tails,
                daemons.alive,
            )
            yield kit
        finally:
            daemons.stop_all()


def build_base_rootfs(tarball: Path) -> None:
    """The stand-in base's root filesystem, from Debian bookworm's packages (mmdebstrap), with the host's CA bundle."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise FileNotFoundError("mmdebstrap is needed for the stand-in base image: apt-get install mmdebstrap")
    # mmdebstrap picks its output format from the name: a tarball (ownership and modes kept, which ADD keeps too).
    partial = tarball.with_name(f"partial-{tarball.name}")
    hooks = [
        # The official image's pip installs system-wide; Debian's marks its Python externally managed.
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        f"upload {HOST_CA_BUNDLE} /etc/ssl/certs/ca-certificates.crt",
        'printf "[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n" > "$1"/etc/pip.conf',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ]
    command = [mmdebstrap, "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"]
    command += [f"--customize-hook={hook}" for hook in hooks]
    command += ["bookworm", str(partial)]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        command.append(str(sources))
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap exited {result.returncode}:\n{result.stderr[-6000:]}")
    partial.rename(tarball)


def push_base(kit: BuildKit, registry: Registry) -> str:
    """The stand-in base as an image in `registry`; return its reference by digest."""
    BASE_CONTEXT.mkdir(parents=True, exist_ok=True)
    if not BASE_TARBALL.exists():
        build_base_rootfs(BASE_TARBALL)
    context = BASE_CONTEXT
    (context / "Dockerfile").write_text(BASE_DOCKERFILE)
    name = f"{registry.host}/{BASE_REPOSITORY}:{BASE_TAG}"
    metadata = kit.build(
        "--frontend=dockerfile.v0",
        f"--local=context={context}",
        f"--local=dockerfile={context}",
        f"--output=type=image,name={name},push=true,registry.insecure=true",
    )
    return f"{registry.host}/{BASE_REPOSITORY}@{metadata['containerimage.digest']}"


def build_pause(kit: BuildKit, work: Path) -> None:
    """The node's sandbox image: catatonit -P, the pause process podman uses (Debian's static build), as an OCI archive.

    registry.k8s.io/pause is out of reach here; the e2e's containerd imports this one instead.
    """
    if not CATATONIT.exists():
        raise FileNotFoundError(f"no {CATATONIT}: apt-get install catatonit")
    context = work / "pause"
    context.mkdir()
    (context / "Dockerfile").write_text(PAUSE_DOCKERFILE)
    shutil.copy2(CATATONIT, context / "catatonit")
    kit.build(
        "--frontend=dockerfile.v0",
        f"--local=context={context}",
        f"--local=dockerfile={context}",
        f"--output=type=oci,name={PAUSE_IMAGE},dest={PAUSE_ARCHIVE}",
    )


def dockerfile_base(dockerfile_dir: Path = APP_DOCKERFILE_DIR) -> str:
    """The image a Dockerfile's FROM line names (the official base CI builds on)."""
    (base,) = re.findall(r"^FROM (\S+)$", (dockerfile_dir / "Dockerfile").read_text(), re.MULTILINE)
    return str(base)


def build_app(
    kit: BuildKit,
    registry: Registry,
    base: str,
    tag: str,
    *options: str,
    dockerfile_dir: Path = APP_DOCKERFILE_DIR,
    repository: str = REPOSITORY,
) -> str:
    """A Dockerfile (app/Dockerfile unless given) on `base`, pushed as `repository`:`tag`; return the digest the
    push printed."""
    metadata = kit.build(
        "--frontend=dockerfile.v0",
        f"--local=context={REPO_ROOT}",
        f"--local=dockerfile={dockerfile_dir}",
        "--opt=filename=Dockerfile",
        f"--opt=context:{dockerfile_base(dockerfile_dir)}=docker-image://{base}",
        f"--opt=label:org.opencontainers.image.revision={git_tag()}",
        *options,
        f"--output=type=image,name={registry.host}/{repository}:{tag},push=true,registry.insecure=true",
    )
    return metadata["containerimage.digest"]


def build_release(kit: BuildKit, registry: Registry, app: str, tag: str) -> str:
    """e2e/releases/Dockerfile on the built app image `app` (by digest), pushed as webapp:`tag`; return its digest."""
    metadata = kit.build(
        "--frontend=dockerfile.v0",
        f"--local=context={REPO_ROOT}",
        f"--local=dockerfile={RELEASES_DOCKERFILE_DIR}",
        "--opt=filename=Dockerfile",
        f"--opt=context:{REPOSITORY}=docker-image://{app}",
        f"--output=type=image,name={registry.host}/{REPOSITORY}:{tag},push=true,registry.insecure=true",
    )
    return metadata["containerimage.digest"]


def build_and_push() -> BuiltImage:
    """The whole of `make image`: registry and builder up, base, app, figures; everything stopped after."""
    login = Login.load_or_create(LOGIN_FILE)
    tag = git_tag()
    with tempfile.TemporaryDirectory(prefix="webapp-image-") as scratch:
        work = Path(scratch)
        with (
            running_registry(work / "registry", STORAGE, login) as registry,
            running_buildkit(work, registry) as kit,
        ):
            started = time.monotonic()
            base = push_base(kit, registry)
            base_seconds = time.monotonic() - started
            started = time.monotonic()
            digest = build_app(kit, registry, base, tag)
            build_seconds = time.monotonic() - started
            size = registry.image_size(REPOSITORY, digest)
            variant_tag = tag[:12]
            variant = build_app(kit, registry, base, variant_tag, VARIANT_LABEL)
            # examples/hello's image, the second app, on the same stand-in base: its build and a variant.
            hello = functools.partial(build_app, dockerfile_dir=HELLO_DOCKERFILE_DIR, repository=HELLO_REPOSITORY)
            hello_digest = hello(kit, registry, base, tag)
            hello_variant = hello(kit, registry, base, variant_tag, VARIANT_LABEL)
            failing_tag = f"{variant_tag}-failing"
            failing = build_release(kit, registry, f"{registry.host}/{REPOSITORY}@{digest}", failing_tag)
            build_pause(kit, work)
    built = BuiltImage(
        REPOSITORY,
        tag,
        digest,
        size,
        round(build_seconds, 1),
        round(base_seconds, 1),
        variant_tag,
        variant,
        HELLO_REPOSITORY,
        hello_digest,
        hello_variant,
        failing_tag,
        failing,
    )
    RESULT_FILE.write_text(json.dumps(asdict(built), indent=2) + "\n")
    return built


def main() -> int:
    """Build, push, and print what was pushed and how long it took."""
    built = build_and_push()
    print(f"image: {built.repository}:{built.tag}@{built.digest}")
    size = built.size_bytes / 1e6
    print(f"image: {size:.1f} MB compressed; base {built.base_seconds} s, app {built.build_seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
