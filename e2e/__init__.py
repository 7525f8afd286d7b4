"""End-to-end tests: the program under the real Pulumi engine (`make e2e`)."""
