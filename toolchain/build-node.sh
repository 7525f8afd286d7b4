#!/usr/bin/env bash
# Build the parts of a real Kubernetes node, and what builds and serves the app's
# image, from pinned Go modules into .engine/node: runc (with seccomp), containerd
# with its runc shim and ctr, the CNI plugins, kubelet and kube-proxy of the
# control plane's Kubernetes release, Traefik (the ingress controller), BuildKit
# (buildkitd, buildctl) and the distribution registry. The e2e starts and stops them itself (localcluster/node.py,
# localcluster/image.py). Go's caches live outside the clone, so only a machine's first
# build is long.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.engine/node"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
mkdir -p "$out/bin" "$out/cni"
build_label=node
# shellcheck source=toolchain/lib.sh
source "$root/toolchain/lib.sh"

# build WRAPPER OUTPUT PACKAGE [go build flags...]: one command of toolchain/WRAPPER's pinned module.
build() {
  local wrapper="$1" output="$2" package="$3"
  shift 3
  (cd "$root/toolchain/$wrapper" && go build "$@" -o "$output" "$package")
}

# runc's seccomp support is cgo against libseccomp (Debian's libseccomp-dev and pkg-config).
if ! pkg-config --exists libseccomp; then
  echo "node: runc needs libseccomp-dev and pkg-config (apt-get install libseccomp-dev pkg-config)" >&2
  exit 1
fi
step "runc $(module_version runc github.com/opencontainers/runc)"
CGO_ENABLED=1 build runc "$out/bin/runc" github.com/opencontainers/runc -tags seccomp \
  -ldflags "$strip_ldflags -X main.version=$(module_version runc github.com/opencontainers/runc)"
took

containerd="$(module_version containerd github.com/containerd/containerd/v2)"
for command in containerd containerd-shim-runc-v2 ctr; do
  step "$command $containerd"
  build containerd "$out/bin/$command" "github.com/containerd/containerd/v2/cmd/$command" \
    -ldflags "$strip_ldflags -X github.com/containerd/containerd/v2/version.Version=$containerd"
  took
done

plugins="$(module_version cni github.com/containernetworking/plugins)"
step "CNI plugins $plugins"
for plugin in main/bridge main/loopback ipam/host-local meta/portmap; do
  build cni "$out/cni/$(basename "$plugin")" "github.com/containernetworking/plugins/plugins/$plugin" \
    -ldflags "$strip_ldflags"
done
took

# kubelet and kube-proxy of the control plane's release, from its wrapper module and with its ldflags.
kubernetes="$(module_version cluster k8s.io/kubernetes)"
ldflags="-X k8s.io/component-base/version.gitVersion=$kubernetes -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$kubernetes" | cut -d. -f2)"
for command in kubelet kube-proxy; do
  step "$command $kubernetes"
  build cluster "$out/bin/$command" "k8s.io/kubernetes/cmd/$command" -ldflags "$strip_ldflags $ldflags"
  took
done

buildkit="$(module_version buildkit github.com/moby/buildkit)"
for command in buildkitd buildctl; do
  step "$command $buildkit"
  build buildkit "$out/bin/$command" "github.com/moby/buildkit/cmd/$command" \
    -ldflags "$strip_ldflags -X github.com/moby/buildkit/version.Version=$buildkit"
  took
done

registry="$(module_version registry github.com/distribution/distribution/v3)"
step "registry $registry"
build registry "$out/bin/registry" github.com/distribution/distribution/v3/cmd/registry \
  -ldflags "$strip_ldflags -X github.com/distribution/distribution/v3/version.version=$registry"
took

traefik="$(module_version traefik github.com/traefik/traefik/v3)"
step "traefik $traefik"
build traefik "$out/bin/traefik" github.com/traefik/traefik/v3/cmd/traefik \
  -ldflags "$strip_ldflags -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik"
took

# Prometheus for the e2e's monitoring (localcluster/prometheus.py), the release promcheck pins. Upstream's build tags
# leave out every service discovery but Kubernetes' (its README, "Building"): a fraction of the build.
prometheus="$(module_version prometheus github.com/prometheus/prometheus)"
step "prometheus $prometheus"
build prometheus "$out/bin/prometheus" github.com/prometheus/prometheus/cmd/prometheus \
  -tags remove_all_sd,enable_kubernetes_sd \
  -ldflags "$strip_ldflags -X github.com/prometheus/common/version.Version=$prometheus"
took

"$out/bin/runc" --version | sed -n 1p  # sed reads it all: head would exit first and SIGPIPE runc under pipefail
"$out/bin/containerd" --version
"$out/bin/kubelet" --version
