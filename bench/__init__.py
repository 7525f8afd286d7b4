"""Benchmark scripts: each prints its figures and asserts nothing (`make bench`)."""
