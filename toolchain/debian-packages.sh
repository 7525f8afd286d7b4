#!/usr/bin/env bash
# Install the Debian packages the real node and the image build need, when missing (as root):
#   libseccomp-dev, pkg-config  runc's seccomp support (cgo)
#   iptables, iproute2, conntrack  kube-proxy's rules, the node's namespace, veth pair and routes
#   mmdebstrap                  the stand-in base image, from Debian's packages (Docker Hub is out of reach)
#   catatonit                   the pod sandbox's pause process (registry.k8s.io is out of reach)
set -euo pipefail
packages=(libseccomp-dev pkg-config iptables iproute2 conntrack mmdebstrap catatonit)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi
if [[ $EUID -ne 0 ]]; then
  echo "toolchain/debian-packages.sh: missing ${missing[*]}; run it as root (sudo toolchain/debian-packages.sh)" >&2
  exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
