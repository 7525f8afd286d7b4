// The Prometheus Operator's CRDs, for the cluster e2e: the module zip carries the
// CRD manifests under example/prometheus-operator-crd (no Go code is built from it).
module webapp.local/engine/crds

go 1.24

require github.com/prometheus-operator/prometheus-operator v0.85.0
