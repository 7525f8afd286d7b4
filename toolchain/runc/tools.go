//go:build tools

// Package tools records the upstream commands this module builds.
package tools

import (
	_ "github.com/opencontainers/runc"
)
