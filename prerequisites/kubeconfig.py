"""The Kubernetes API client for a stack's cluster, picked as the default Kubernetes provider picks it: the stack's
`kubernetes:kubeconfig` (a path or the file's text) and `kubernetes:context` when set, else KUBECONFIG or
~/.kube/config, read by the official client (exec plugins and tokens work as in kubectl). The program
(prerequisites/cluster.py) reads the two settings through pulumi.Config; the canary driver through the Automation
API's stack config."""

from __future__ import annotations

import yaml
from kubernetes import client, config


def kubeconfig_api(kubeconfig: str | None, context: str | None) -> client.ApiClient:
    """An API client for the cluster `kubeconfig` (a path, the file's text, or None: KUBECONFIG / ~/.kube/config)
    and `context` (None: its current one) name; raises config.ConfigException, OSError, TypeError or ValueError when
    it cannot be loaded."""
    configuration = client.Configuration()
    if kubeconfig and kubeconfig.lstrip().startswith(("apiVersion", "{", "clusters", "kind")):
        config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
            yaml.safe_load(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return client.ApiClient(configuration)
