"""Offline tooling: run the Pulumi program under mocks, render and check its manifests."""
