"""Pulumi components that deploy the bundled web service to Kubernetes.

`settings` parses a stack's config into typed objects; `AppConfig`,
`WebService` and `WebIngress` turn those into Kubernetes objects.
"""
