#!/usr/bin/env bash
# Sets up a fresh Debian machine for MapLeakProbe: system packages, npm
# dependencies, the build; with --cluster also the local Kubernetes control
# plane's binaries (built from Go modules, cached outside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

with_cluster=false
for arg in "$@"; do
  case "$arg" in
    --cluster) with_cluster=true ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# redis-server: the queue for tests; golang-1.19-go: classic-map Go for the
# test targets; iproute2: network namespaces for pods; openssl: the local
# control plane's certificates; time: the benchmark; buildah: the offline
# image build check; chromium: the HTML report's browser test (playwright-core
# drives it; it cannot download a browser of its own here); util-linux and
# mount: unshare and mount --bind give an operator under test its own /etc/hosts.
packages=(redis-server golang-1.19-go iproute2 openssl time buildah chromium util-linux mount)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts redis-server on install where systemd runs; tests start their own.
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "setup: Go 1.26 is needed (expected on PATH or in /usr/local/go/bin)" >&2; exit 1; }

npm ci --no-audit --no-fund
npm run build --silent

if $with_cluster; then
  bash test/cluster/build-binaries.sh
fi
echo "setup: done"
