#!/usr/bin/env bash
# Build the local control plane and its tools from their upstream Go modules into a per-version
# cache outside the work tree, so that only the first run on a machine pays for the build.
#
#   tools/build-binaries.sh            build whatever is missing, print the bin directory
#   tools/build-binaries.sh --print    print the bin directory only (no build)
#
# Versions are pinned in tools/versions.env. Each component lands in its own directory
# $CACHE/<component>-<version>/ and is marked complete by a `.complete` file written last, so an
# interrupted build is redone, never half used. The combined bin directory is a set of symlinks.
# (Version checks compare captured output: `cmd | grep -q` fails under pipefail when grep quits
# before cmd has written everything.)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/versions.env
. "$here/versions.env"

cache="${MYBINDER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mybinder-deploy}"
bindir="$cache/bin-k8s${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}-cm${CERT_MANAGER_VERSION}"
# cert-manager's cmd/ modules are not on the Go module proxy: a copy of them at the pinned tag
# (../shared/sources/cert-manager-v<version> beside this checkout, or a clone of the upstream
# repository at that tag named by MYBINDER_CERT_MANAGER_SRC).
cert_manager_src="${MYBINDER_CERT_MANAGER_SRC:-$here/../../shared/sources/cert-manager-v${CERT_MANAGER_VERSION}}"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bindir"
  exit 0
fi

log() { printf '[build-binaries] %s\n' "$*" >&2; }
die() { printf '[build-binaries] ERROR: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH. Install Go >= 1.26 (https://go.dev/doc/install or your distribution's golang package) and run again."
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
[[ "$go_minor" -ge 26 ]] || die "Go $(go env GOVERSION) is too old: kwok ${KWOK_VERSION} needs Go >= 1.26. Install a newer Go and run again."

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
mkdir -p "$cache"

build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# --- Kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl --------------
build_kubernetes() {
  local out="$cache/kubernetes-v${KUBERNETES_VERSION}" t0=$SECONDS
  [[ -f "$out/.complete" ]] && return 0
  log "building Kubernetes v${KUBERNETES_VERSION} (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl); cold builds take 10-30 minutes"
  rm -rf "$out"; mkdir -p "$out/src"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${KUBERNETES_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local minor="${KUBERNETES_VERSION#*.}"; minor="${minor%%.*}"
  {
    echo "module mybinder.local/kubernetes-build"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes v${KUBERNETES_VERSION}"
    echo
    # k8s.io/kubernetes replaces every staging module with a local path; use the published tags.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" \
      | awk -v v="v0.${minor}.${KUBERNETES_VERSION##*.}" '{print "replace " $1 " => " $1 " " v}'
  } > "$out/src/go.mod"
  local commit="0000000000000000000000000000000000000000"
  local ld=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${pkg}.gitVersion=v${KUBERNETES_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ld+=" -X ${pkg}.gitCommit=${commit} -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
  done
  (cd "$out/src" && go build -trimpath -ldflags "-s -w${ld}" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl)
  [[ "$("$out/kube-apiserver" --version)" == *"v${KUBERNETES_VERSION}"* ]] || die "kube-apiserver reports a wrong version"
  echo $((SECONDS - t0)) > "$out/.build-seconds"
  touch "$out/.complete"
}

# --- etcd (own wrapper module so its dependencies are not unified with Kubernetes') ------------
build_etcd() {
  local out="$cache/etcd-v${ETCD_VERSION}" t0=$SECONDS
  [[ -f "$out/.complete" ]] && return 0
  log "building etcd v${ETCD_VERSION}"
  rm -rf "$out"; mkdir -p "$out/src"
  cat > "$out/src/go.mod" <<MOD
module mybinder.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
  local ld="-X go.etcd.io/etcd/api/v3/version.GitSHA=v${ETCD_VERSION}"
  (cd "$out/src" && go build -trimpath -ldflags "-s -w ${ld}" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  [[ "$("$out/etcd" --version)" == *"${ETCD_VERSION}"* ]] || die "etcd reports a wrong version"
  echo $((SECONDS - t0)) > "$out/.build-seconds"
  touch "$out/.complete"
}

# --- kwok (simulated kubelets) and its stage definitions ---------------------------------------
build_kwok() {
  local out="$cache/kwok-v${KWOK_VERSION}" t0=$SECONDS
  [[ -f "$out/.complete" ]] && return 0
  log "building kwok v${KWOK_VERSION}"
  rm -rf "$out"; mkdir -p "$out"
  GOFLAGS=-buildvcs=false GOBIN="$out" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}"
  local dir
  dir="$(go mod download -json "sigs.k8s.io/kwok@v${KWOK_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$out/stage"
  cp -r "$dir/kustomize/stage/." "$out/stage/"
  chmod -R u+w "$out/stage"
  echo $((SECONDS - t0)) > "$out/.build-seconds"
  touch "$out/.complete"
}

# --- helm 3 (version-stamped like upstream's Makefile does) ------------------------------------
build_helm() {
  local out="$cache/helm-v${HELM_VERSION}" t0=$SECONDS
  [[ -f "$out/.complete" ]] && return 0
  log "building helm v${HELM_VERSION}"
  rm -rf "$out"; mkdir -p "$out"
  local ld="-s -w"
  ld+=" -X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_K8S_MINOR}"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_K8S_MINOR}"
  GOFLAGS=-buildvcs=false GOBIN="$out" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}"
  [[ "$("$out/helm" version --short)" == *"v${HELM_VERSION}"* ]] || die "helm reports a wrong version"
  echo $((SECONDS - t0)) > "$out/.build-seconds"
  touch "$out/.complete"
}

# --- cert-manager: controller, webhook, cainjector, acmesolver (run as processes of the local
# cluster: the API server must reach the real webhook, which a simulated pod cannot be) ---------
build_cert_manager() {
  local out="$cache/cert-manager-v${CERT_MANAGER_VERSION}" t0=$SECONDS
  [[ -f "$out/.complete" ]] && return 0
  [[ -d "$cert_manager_src/cmd/webhook" ]] || die "no cert-manager cmd/ sources at $cert_manager_src: set MYBINDER_CERT_MANAGER_SRC to a clone of github.com/cert-manager/cert-manager at tag v${CERT_MANAGER_VERSION} (its cmd/ modules are not on the Go module proxy)"
  log "building cert-manager v${CERT_MANAGER_VERSION} (controller, webhook, cainjector, acmesolver); cold builds take about 5 minutes"
  rm -rf "$out"; mkdir -p "$out"
  local dir
  dir="$(go mod download -json "github.com/cert-manager/cert-manager@v${CERT_MANAGER_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # Each cmd module replaces the main module with ../../: put them inside a writable copy of it.
  cp -r "$dir" "$out/src"; chmod -R u+w "$out/src"
  mkdir -p "$out/src/cmd"
  local ld="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=v${CERT_MANAGER_VERSION}"
  ld+=" -X github.com/cert-manager/cert-manager/pkg/util.AppGitCommit=${CERT_MANAGER_COMMIT}"
  for name in controller webhook cainjector acmesolver; do
    rm -rf "$out/src/cmd/$name"; cp -r "$cert_manager_src/cmd/$name" "$out/src/cmd/$name"; chmod -R u+w "$out/src/cmd/$name"
    (cd "$out/src/cmd/$name" && go build -trimpath -ldflags "$ld" -o "$out/cert-manager-$name" .)
  done
  # -trimpath keeps -ldflags out of the build info: look for the stamped commit in the binary itself
  grep -qa "${CERT_MANAGER_COMMIT}" "$out/cert-manager-webhook" || die "cert-manager-webhook is not stamped with v${CERT_MANAGER_VERSION} (${CERT_MANAGER_COMMIT})"
  rm -rf "$out/src"
  echo $((SECONDS - t0)) > "$out/.build-seconds"
  touch "$out/.complete"
}

start=$SECONDS
build_helm
build_kwok
build_etcd
build_kubernetes
build_cert_manager

mkdir -p "$bindir"
for f in "$cache/kubernetes-v${KUBERNETES_VERSION}"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl} \
         "$cache/etcd-v${ETCD_VERSION}/etcd" "$cache/kwok-v${KWOK_VERSION}/kwok" "$cache/helm-v${HELM_VERSION}/helm"; do
  ln -sfn "$f" "$bindir/$(basename "$f")"
done
for name in controller webhook cainjector acmesolver; do
  ln -sfn "$cache/cert-manager-v${CERT_MANAGER_VERSION}/cert-manager-$name" "$bindir/cert-manager-$name"
done
ln -sfn "$cache/kwok-v${KWOK_VERSION}/stage" "$bindir/kwok-stage"
log "binaries ready in $((SECONDS - start)) s"
echo "$bindir"
