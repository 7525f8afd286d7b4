"""The CNCF distribution registry (built by `make node`) on loopback, with a login, over plain HTTP.

`make image` pushes to it; the real-node e2e starts one on the same storage
inside its network namespace, so the kubelet pulls the very digest the push
printed. Storage is content-addressed, so the port it listens on does not
matter: the image's repository is the registry's `host:port` plus `webapp`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from harness.processes import free_port, wait_until
from localcluster.daemons import Daemons
from localcluster.paths import NODE_BIN

START_TIMEOUT_SECONDS = 30
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


@dataclass(frozen=True)
class Login:
    """A registry user and password; kept next to the storage, so later registries on it accept the same login."""

    username: str
    password: str

    @classmethod
    def load_or_create(cls, path: Path) -> Login:
        """The login saved at `path`, or a new random one saved there (mode 0600)."""
        if path.exists():
            return cls(**json.loads(path.read_text()))
        login = cls("webapp-e2e", secrets.token_urlsafe(24))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({"username": login.username, "password": login.password}))
        return login

    def docker_config(self, host: str) -> dict[str, Any]:
        """`~/.docker/config.json` content (also a `kubernetes.io/dockerconfigjson` Secret's) for `host`."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"auths": {host: {"username": self.username, "password": self.password, "auth": token}}}


@dataclass
class Registry:
    """A running registry: where it listens and how to log in."""

    host: str
    login: Login

    def _request(self, path: str, accept: str = "") -> tuple[int, bytes]:
        token = base64.b64encode(f"{self.login.username}:{self.login.password}".encode()).decode()
        request = urllib.request.Request(f"http://{self.host}{path}", headers={"Authorization": f"Basic {token}"})
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            with error:  # it holds the connection open until closed
                return int(error.code), error.read()

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        """The image manifest of `repository@reference` (a digest or a tag)."""
        status, body = self._request(f"/v2/{repository}/manifests/{reference}", ", ".join(MANIFEST_TYPES))
        if status != 200:
            raise LookupError(f"{self.host}/{repository}@{reference}: registry answered {status} {body[:200]!r}")
        manifest: dict[str, Any] = json.loads(body)
        return manifest

    def image_size(self, repository: str, reference: str) -> int:
        """Bytes a pull downloads: the compressed layers and the config."""
        manifest = self.manifest(repository, reference)
        return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])

    def anonymous_status(self) -> int:
        """What `GET /v2/` answers without a login (401 when the login is required)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code)


def _config(storage: Path, htpasswd: Path, address: str) -> dict[str, Any]:
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": False}},
        "http": {"addr": address, "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": "webapp-e2e", "path": str(htpasswd)}},
    }


@contextlib.contextmanager
def running_registry(directory: Path, storage: Path, login: Login, port: int = 0) -> Iterator[Registry]:
    """A registry on 127.0.0.1:`port` (a free one by default) serving `storage` to `login` only; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = directory / "htpasswd"
    hashed = bcrypt.hashpw(login.password.encode(), bcrypt.gensalt()).decode()
    htpasswd.write_text(f"{login.username}:{hashed}\n")
    host = f"127.0.0.1:{port or free_port()}"
    config = directory / "registry.yaml"
    config.write_text(yaml.safe_dump(_config(storage, htpasswd, host)))
    daemons = Daemons(directory)
    try:
        daemons.spawn("registry", NODE_BIN / "registry", "serve", str(config), hint="make node")
        registry = Registry(host, login)
        wait_until(
            f"registry on {host}",
            lambda: registry.anonymous_status() in {200, 401},
            START_TIMEOUT_SECONDS,
            daemons.tails,
            daemons.alive,
        )
        yield registry
    finally:
        daemons.stop_all()
