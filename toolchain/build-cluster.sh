#!/usr/bin/env bash
# Build a Kubernetes control plane from pinned Go modules into .engine/cluster:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of one
# Kubernetes release, etcd, and kwok (simulated nodes and pods). The e2e starts
# and stops them itself (localcluster/control_plane.py). Go's caches live outside the clone, so
# only a machine's first build is long.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.engine/cluster"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
mkdir -p "$out"
build_label=cluster
# shellcheck source=toolchain/lib.sh
source "$root/toolchain/lib.sh"

kubernetes="$(module_version cluster k8s.io/kubernetes)"
# The version the binaries report (kubectl version, /version); upstream sets it the same way.
ldflags="-X k8s.io/component-base/version.gitVersion=$kubernetes -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$kubernetes" | cut -d. -f2)"
for command in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  step "$command $kubernetes"
  (cd "$root/toolchain/cluster" && go build -ldflags "$strip_ldflags $ldflags" -o "$out/$command" "k8s.io/kubernetes/cmd/$command")
  took
done

step "etcd $(module_version cluster go.etcd.io/etcd/server/v3)"
(cd "$root/toolchain/cluster" && go build -ldflags "$strip_ldflags" -o "$out/etcd" ./cmd/etcd)
took

step "kwok $(module_version kwok sigs.k8s.io/kwok)"
(cd "$root/toolchain/kwok" && go build -ldflags "$strip_ldflags" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok)
took

# kwok acts only through "stages" (what happens to a node or a pod, and when). Use upstream's default
# "fast" set from the module, as kwokctl does: nodes turn Ready and keep a heartbeat, pods go straight
# to Running and Ready, and deleted pods go away.
kwok_dir="$(module_dir kwok sigs.k8s.io/kwok)/kustomize/stage"
for stage in "$kwok_dir"/node/fast/*.yaml "$kwok_dir"/node/heartbeat/*.yaml "$kwok_dir"/pod/fast/*.yaml; do
  [[ "$(basename "$stage")" == kustomization.yaml ]] && continue
  echo "---"; cat "$stage"
done > "$out/kwok-stages.yaml"

# The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, from its module zip (toolchain/crds pins the version).
operator="$(module_version crds github.com/prometheus-operator/prometheus-operator)"
step "Prometheus Operator CRDs ($operator)"
crds="$(module_dir crds github.com/prometheus-operator/prometheus-operator)/example/prometheus-operator-crd"
cat "$crds/monitoring.coreos.com_servicemonitors.yaml" "$crds/monitoring.coreos.com_prometheusrules.yaml" \
  > "$out/monitoring-crds.yaml"
took

# The Gateway API's standard channel (what its standard-install.yaml holds: the CRDs and the policy that keeps
# experimental ones out), from the sigs.k8s.io/gateway-api module zip.
gateway_api="$(module_version crds sigs.k8s.io/gateway-api)"
step "Gateway API CRDs ($gateway_api)"
for manifest in "$(module_dir crds sigs.k8s.io/gateway-api)"/config/crd/standard/*.yaml; do
  echo "---"; cat "$manifest"
done > "$out/gateway-api-crds.yaml"
took

"$out/kubectl" version --client
