"""Which container image a workload runs: the stable release's, or a canary's."""

from __future__ import annotations

from webapp_platform.config.types import ImageDigest, ImageRepository, ImageTag, SettingsModel


class ImageSettings(SettingsModel):
    """Which container image to run."""

    repository: ImageRepository
    """Registry and path, without tag: ghcr.io/example/webapp."""
    tag: ImageTag
    """Any valid OCI tag but `latest` (`1.4.2`, `sha-860c190`). Also becomes APP_VERSION."""
    digest: ImageDigest | None = None
    """`sha256:…` digest, written by tools/promote.py; the image is pinned to it. Required for prod."""

    @property
    def reference(self) -> str:
        """The full image reference for the pod spec."""
        pinned = f"{self.repository}:{self.tag}"
        return f"{pinned}@{self.digest}" if self.digest else pinned
