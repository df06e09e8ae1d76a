#!/usr/bin/env bash
# Install a tool from Debian's package into the project's per-version tool cache (no system
# install needed): `apt-get download` + `dpkg-deb -x`. Prints the path of the binary.
#   tools/install-deb-tool.sh PACKAGE [BINARY]      e.g. git-crypt, shellcheck
set -euo pipefail
pkg="${1:?usage: install-deb-tool.sh PACKAGE [BINARY]}"
binary="${2:-$pkg}"
cache="${MYBINDER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mybinder-deploy}"
die() { printf '[%s] ERROR: %s\n' "$pkg" "$*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $pkg with your system's package manager (Debian/Ubuntu: apt-get install $pkg) and put it on PATH."
version="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "$version" || "$version" == "(none)" ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq >&2 || die "apt-get update failed: check access to Debian's package repositories."
    version="$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')"
  else
    die "apt knows no $pkg package: run 'sudo apt-get update' once, then again."
  fi
fi
[[ -n "$version" && "$version" != "(none)" ]] || die "no $pkg package is available from apt."
out="$cache/${pkg}-${version}"
if [[ ! -x "$out/$binary" ]]; then
  tmp="$(mktemp -d)"; chmod 755 "$tmp"; trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "${pkg}=${version}" >&2) || die "apt-get download $pkg failed: check access to Debian's package repositories."
  dpkg-deb -x "$tmp/${pkg}_"*.deb "$tmp/root"
  mkdir -p "$out"
  install -m 0755 "$tmp/root/usr/bin/$binary" "$out/$binary.new"
  mv "$out/$binary.new" "$out/$binary"
fi
"$out/$binary" --version >/dev/null 2>&1 || "$out/$binary" version >/dev/null 2>&1 \
  || die "the $binary binary in $out does not run (a shared library missing?): apt-get install $pkg"
echo "$out/$binary"
