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
build_label=engine
# shellcheck source=toolchain/lib.sh
source "$root/toolchain/lib.sh"

# The versions the Python SDKs pin are the single source of both builds' versions.
pin() { sed -n "s/^$1==//p" "$root/requirements.txt"; }
pulumi_version="$(pin pulumi)"
kubernetes_version="$(pin pulumi-kubernetes)"
[[ -n "$pulumi_version" && -n "$kubernetes_version" ]] || { echo "engine: no pulumi/pulumi-kubernetes pin in requirements.txt" >&2; exit 1; }
cli_module_version="$(module_version cli github.com/pulumi/pulumi/pkg/v3)"
if [[ "$cli_module_version" != "v$pulumi_version" ]]; then
  echo "engine: toolchain/cli/go.mod pins pkg/v3 $cli_module_version but requirements.txt pins pulumi==$pulumi_version" >&2
  exit 1
fi

mkdir -p "$bin" "$langhost" "$analyzer" "$provider" "$PULUMI_HOME"

system_pulumi="$(command -v pulumi || true)"
if [[ -n "$system_pulumi" && "$system_pulumi" != "$bin/pulumi" ]] \
   && [[ "$("$system_pulumi" version 2>/dev/null)" == "v$pulumi_version" ]]; then
  echo "engine: using $system_pulumi (v$pulumi_version, with its own language hosts)"
  rm -f "$bin/pulumi" "$langhost/pulumi-language-python" "$langhost/pulumi-language-python-exec"
  cli="$system_pulumi"
else
  step "CLI v$pulumi_version"
  (cd "$root/toolchain/cli" && go build -o "$bin/pulumi" \
     -ldflags "$strip_ldflags -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$pulumi_version" \
     github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  took

  step "Python language host ($(module_version langhost github.com/pulumi/pulumi/sdk/v3))"
  (cd "$root/toolchain/langhost" && go build -ldflags "$strip_ldflags" -o "$langhost/pulumi-language-python" \
     github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)
  took
  # The host runs programs through this script, which it looks for next to itself; take the
  # one of the SDK release the program pins, from the Go module of that release.
  sdk_dir="$(module_dir cli github.com/pulumi/pulumi/sdk/v3)"
  install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$langhost/pulumi-language-python-exec"
  cli="$bin/pulumi"
fi

# Without a Python language host on PATH the CLI runs a Python policy pack through this script, in
# the pack's own virtualenv. Newer SDK modules no longer carry it; the host's module (v3.68.0) does.
langhost_sdk_dir="$(module_dir langhost github.com/pulumi/pulumi/sdk/v3)"
install -m 0755 "$langhost_sdk_dir/python/dist/pulumi-analyzer-policy-python" "$analyzer/pulumi-analyzer-policy-python"

step "Kubernetes provider v$kubernetes_version"
# The pinned source with toolchain/provider/patches/*.patch applied (each says why and when to drop it), built
# through a workspace whose replace points the module at that copy; the patches' tests run here too.
module_src="$(module_dir provider github.com/pulumi/pulumi-kubernetes/provider/v4)"
provider_src="$out/provider-src"
rm -rf "$provider_src"
cp -r "$module_src" "$provider_src"
chmod -R u+w "$provider_src"
for patch in "$root"/toolchain/provider/patches/*.patch; do
  # The ceiling keeps git from finding this checkout's repository above .engine (in a work tree, git apply takes
  # paths from its top and skips the rest without a word); the reverse check proves the patch is in.
  (cd "$provider_src" && export GIT_CEILING_DIRECTORIES="$out" \
    && git apply -p1 "$patch" && git apply -p1 --reverse --check "$patch")
done
# The workspace's go line is the wrapper module's own (a workspace may not name an older Go than a module it uses).
provider_go="$(sed -n 's/^go //p' "$root/toolchain/provider/go.mod")"
cat > "$out/provider.work" <<WORK
go $provider_go

use $root/toolchain/provider

replace github.com/pulumi/pulumi-kubernetes/provider/v4 => $provider_src
WORK
embed_dir="$root/toolchain/provider/cmd/pulumi-resource-kubernetes"
(cd "$root/toolchain/provider" \
  && export GOWORK="$out/provider.work" \
  && go run ./cmd/stamp-schema -version "$kubernetes_version" \
       -src "$provider_src/cmd/pulumi-resource-kubernetes" -out "$embed_dir" \
  && go test -timeout 120s -run 'Deployment' github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/await \
  && go build -o "$provider/pulumi-resource-kubernetes" \
       -ldflags "$strip_ldflags -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$kubernetes_version" \
       ./cmd/pulumi-resource-kubernetes)
took

step "plugin install kubernetes v$kubernetes_version"
quietly "$cli" plugin install resource kubernetes "v$kubernetes_version" \
  --file "$provider/pulumi-resource-kubernetes" --reinstall
took

# What a shell needs to use this engine: `source .engine/env` (README, "Using it for real"; the e2e
# sets its commands' environment up the same way). The built v3.68.0 language host does not read
# Pulumi.yaml's `virtualenv: .venv`, so the program's virtualenv goes on PATH as an activated one.
cat > "$out/env" <<ENV
# Written by toolchain/build.sh; \`source .engine/env\` to use the engine built here.
export PATH="$bin:$langhost:$analyzer:$root/.venv/bin:\$PATH"
export VIRTUAL_ENV="$root/.venv"
export PULUMI_HOME="$PULUMI_HOME"
export PULUMI_SKIP_UPDATE_CHECK=true
ENV

"$cli" version
"$cli" plugin ls
