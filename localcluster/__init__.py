"""A local Kubernetes cluster built from source: control plane, one real node, Traefik, registry, image build.

The e2e suite and `make up` both run it.
"""
