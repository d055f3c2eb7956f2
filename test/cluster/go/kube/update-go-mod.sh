#!/usr/bin/env bash
# Regenerates go.mod/go.sum for a Kubernetes version: k8s.io/kubernetes replaces
# every staging module with ./staging paths, so a wrapper module must replace
# each one that its go.mod lists at v0.0.0 with the matching v0.X.Y release.
# Usage: ./update-go-mod.sh 1.36.3
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION="${1:?usage: $0 <kubernetes version, e.g. 1.36.3>}"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

cat > go.mod <<MOD
module mapleakprobe.local/cluster/kube

go 1.26
MOD
go mod download "k8s.io/kubernetes@v${K8S_VERSION}"
upstream_mod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
for module in $(grep -E '^\s*k8s.io/\S+ v0\.0\.0\s*$' "$upstream_mod" | awk '{print $1}' | sort -u); do
  go mod edit -replace "${module}=${module}@${STAGING_VERSION}"
done
go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}"
go mod tidy
