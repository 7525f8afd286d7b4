// CRDs for the cluster e2e, from module zips (no Go code is built from them): the Prometheus Operator's
// under example/prometheus-operator-crd, the Gateway API's standard channel under config/crd/standard.
module webapp.local/toolchain/crds

go 1.26.0

require (
	github.com/prometheus-operator/prometheus-operator v0.85.0
	sigs.k8s.io/gateway-api v1.6.3
)
