#!/usr/bin/env bash
# Builds the local control plane's binaries (kube-apiserver, etcd, kwok, helm)
# from the pinned Go wrapper modules in test/cluster/go/ into a cache directory
# OUTSIDE the checkout, so every clone on this machine reuses them.
#
#   MAPLEAK_BIN_CACHE  where to put the binaries (default:
#                      $HOME/.cache/mapleakprobe/bin/<version-key>)
#
# Prints the directory holding the binaries as its last line of stdout.
# Binaries already present are skipped; a cold build takes 10-20 min on 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
GO_DIR="$HERE/go"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

# Keep in step with test/cluster/go/*/go.mod (cluster.ts reads versions.env).
# shellcheck source=go/versions.env
source "$GO_DIR/versions.env"

version_key() {
  # The key changes whenever a pinned module or the Go toolchain changes.
  local digest
  digest="$(cat "$GO_DIR"/*/go.mod "$GO_DIR"/*/go.sum "$GO_DIR/versions.env" | sha256sum | cut -c1-12)"
  echo "k8s-${KUBERNETES_VERSION}-$($GO env GOVERSION)-${digest}"
}

BIN_DIR="${MAPLEAK_BIN_CACHE:-$HOME/.cache/mapleakprobe/bin/$(version_key)}"
mkdir -p "$BIN_DIR"

# build_tool <wrapper module dir> <package> <output name> [ldflags]
build_tool() {
  local module_dir="$1" package="$2" name="$3" ldflags="${4:-}"
  # A binary built with other link flags (e.g. an older version stamp) is rebuilt.
  if [[ -x "$BIN_DIR/$name" && "$(cat "$BIN_DIR/$name.ldflags" 2>/dev/null)" == "$ldflags" ]]; then
    echo "  $name: present" >&2
    return
  fi
  local started=$SECONDS
  echo "  $name: building $package ..." >&2
  (cd "$GO_DIR/$module_dir" && GOFLAGS=-mod=readonly CGO_ENABLED=0 \
    "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$BIN_DIR/$name.tmp" "$package")
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  printf '%s' "$ldflags" > "$BIN_DIR/$name.ldflags"
  echo "  $name: built in $((SECONDS - started))s" >&2
}

k8s_minor="${KUBERNETES_VERSION#*.}"
k8s_minor="${k8s_minor%%.*}"
kube_ldflags="-X k8s.io/component-base/version.gitVersion=v${KUBERNETES_VERSION}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMajor=${KUBERNETES_VERSION%%.*}"
kube_ldflags+=" -X k8s.io/component-base/version.gitMinor=${k8s_minor}"
kube_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

echo "building control-plane binaries into $BIN_DIR" >&2
total_started=$SECONDS
build_tool etcd go.etcd.io/etcd/server/v3 etcd
build_tool kwok sigs.k8s.io/kwok/cmd/kwok kwok
# Helm checks charts' kubeVersion against the Kubernetes version it was
# linked for (1.20 unless set), e.g. in `helm template` and `helm lint`.
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X ${pkg}.k8sVersionMajor=${KUBERNETES_VERSION%%.*} -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done
build_tool helm helm.sh/helm/v3/cmd/helm helm "$helm_ldflags"
build_tool kube k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kube_ldflags"
echo "control-plane binaries ready in $((SECONDS - total_started))s" >&2
echo "$BIN_DIR"
