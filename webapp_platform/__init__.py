"""Pulumi components that run a health-checked HTTP service on Kubernetes, and the typed settings they take.

`webapp_platform.components` holds the components (`WebApp`, `WebService`, ...); `webapp_platform.config` the
settings models, the rules they share with the policy pack, and the app contract (what the components expect of
the container they run). Installed as the `webapp-platform` distribution (pyproject.toml).
"""
