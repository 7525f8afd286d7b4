"""Pulumi components that deploy a web service to Kubernetes.

`WebApp` (webapp.py) is the parent of a stack's objects: `AppConfig` (the
ConfigMap and Secret), `WebService` (the Deployment and what serves it, with
its pod in pod.py and its availability in availability.py), `WebIngress` or
`WebRoute` (the routing), and `WebMonitoring` (alerts and dashboard). Their
inputs come from a stack's settings (`config.settings`), parsed once.
"""
