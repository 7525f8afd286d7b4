//go:build tools

// Package tools records the upstream command this module builds.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
