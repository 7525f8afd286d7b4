#!/usr/bin/env bash
# Build the real Pulumi engine this project runs under, from pinned Go modules:
# the CLI, the Python language host and the Kubernetes provider, into .engine/bin,
# and install the provider as a plugin into the private PULUMI_HOME .engine/home
# under the version the Python SDK asks for, so that the engine never looks for
# it on the network. Nothing is downloaded but Go modules (and the Go toolchain's
# caches, which live outside the clone, make a second build fast).
#
# A `pulumi` already on PATH at exactly the pinned version (a laptop, a GitHub
# runner after pulumi/actions) is used instead of building the CLI and the
# language host; the provider is always built, since no CLI ships it.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.engine"
bin="$out/bin"              # the CLI
langhost="$out/langhost"    # the Python language host and its exec script
analyzer="$out/analyzer"    # pulumi-analyzer-policy-python (runs Python policy packs without the host)
provider="$out/provider"    # the provider binary, installed from here into PULUMI_HOME
export PULUMI_HOME="$out/home"
export PULUMI_SKIP_UPDATE_CHECK=true
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

# The versions the Python SDKs pin are the single source of both builds' versions.
pin() { sed -n "s/^$1==//p" "$root/requirements.txt"; }
pulumi_version="$(pin pulumi)"
kubernetes_version="$(pin pulumi-kubernetes)"
[[ -n "$pulumi_version" && -n "$kubernetes_version" ]] || { echo "engine: no pulumi/pulumi-kubernetes pin in requirements.txt" >&2; exit 1; }
go_pin() { (cd "$root/engine/$1" && go list -m -f '{{.Version}}' "$2"); }
cli_module_version="$(go_pin cli github.com/pulumi/pulumi/pkg/v3)"
if [[ "$cli_module_version" != "v$pulumi_version" ]]; then
  echo "engine: engine/cli/go.mod pins pkg/v3 $cli_module_version but requirements.txt pins pulumi==$pulumi_version" >&2
  exit 1
fi

mkdir -p "$bin" "$langhost" "$analyzer" "$provider" "$PULUMI_HOME"
step() { printf 'engine: %-44s' "$1"; }
took() { echo "$(( $(date +%s) - $1 )) s"; }

system_pulumi="$(command -v pulumi || true)"
if [[ -n "$system_pulumi" && "$system_pulumi" != "$bin/pulumi" ]] \
   && [[ "$("$system_pulumi" version 2>/dev/null)" == "v$pulumi_version" ]]; then
  echo "engine: using $system_pulumi (v$pulumi_version, with its own language hosts)"
  rm -f "$bin/pulumi" "$langhost/pulumi-language-python" "$langhost/pulumi-language-python-exec"
  cli="$system_pulumi"
else
  started=$(date +%s); step "CLI v$pulumi_version"
  (cd "$root/engine/cli" && go build -o "$bin/pulumi" \
     -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$pulumi_version" \
     github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  took "$started"

  started=$(date +%s); step "Python language host ($(go_pin langhost github.com/pulumi/pulumi/sdk/v3))"
  (cd "$root/engine/langhost" && go build -o "$langhost/pulumi-language-python" \
     github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)
  took "$started"
  # The host runs programs through this script, which it looks for next to itself; take the
  # one of the SDK release the program pins, from the Go module of that release.
  sdk_dir="$(cd "$root/engine/cli" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$langhost/pulumi-language-python-exec"
  cli="$bin/pulumi"
fi

# Without a Python language host on PATH the CLI runs a Python policy pack through this script, in
# the pack's own virtualenv. Newer SDK modules no longer carry it; the host's module (v3.68.0) does.
langhost_sdk_dir="$(cd "$root/engine/langhost" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$langhost_sdk_dir/python/dist/pulumi-analyzer-policy-python" "$analyzer/pulumi-analyzer-policy-python"

started=$(date +%s); step "Kubernetes provider v$kubernetes_version"
provider_src="$(cd "$root/engine/provider" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
embed_dir="$root/engine/provider/cmd/pulumi-resource-kubernetes"
(cd "$root/engine/provider" \
  && go run ./cmd/stamp-schema -version "$kubernetes_version" \
       -src "$provider_src/cmd/pulumi-resource-kubernetes" -out "$embed_dir" \
  && go build -o "$provider/pulumi-resource-kubernetes" \
       -ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$kubernetes_version" \
       ./cmd/pulumi-resource-kubernetes)
took "$started"

started=$(date +%s); step "plugin install kubernetes v$kubernetes_version"
"$cli" plugin install resource kubernetes "v$kubernetes_version" \
  --file "$provider/pulumi-resource-kubernetes" --reinstall >/dev/null 2>&1
took "$started"

"$cli" version
"$cli" plugin ls
