// Grafana's dashboard schema, as the Grafana Foundation SDK decodes it, for the tests (toolchain/grafanacheck/main.go).
module webapp.local/toolchain/grafanacheck

go 1.24

require github.com/grafana/grafana-foundation-sdk/go v0.0.22
