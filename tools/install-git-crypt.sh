#!/usr/bin/env bash
# Install git-crypt from Debian's package into the project's per-version tool cache (no system
# install needed): `apt-get download` + `dpkg-deb -x`. Prints the path of the binary.
set -euo pipefail
cache="${MYBINDER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mybinder-deploy}"
die() { printf '[git-crypt] ERROR: %s\n' "$*" >&2; exit 1; }

command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install git-crypt with your system's package manager (Debian/Ubuntu: apt-get install git-crypt) and put it on PATH."
version="$(apt-cache policy git-crypt 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [[ -z "$version" || "$version" == "(none)" ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq >&2 || die "apt-get update failed: check access to Debian's package repositories."
    version="$(apt-cache policy git-crypt | awk '/Candidate:/ {print $2}')"
  else
    die "apt knows no git-crypt package: run 'sudo apt-get update' once, then again."
  fi
fi
[[ -n "$version" && "$version" != "(none)" ]] || die "no git-crypt package is available from apt."
out="$cache/git-crypt-${version}"
if [[ ! -x "$out/git-crypt" ]]; then
  tmp="$(mktemp -d)"; chmod 755 "$tmp"; trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "git-crypt=${version}" >&2) || die "apt-get download git-crypt failed: check access to Debian's package repositories."
  dpkg-deb -x "$tmp"/git-crypt_*.deb "$tmp/root"
  mkdir -p "$out"
  install -m 0755 "$tmp/root/usr/bin/git-crypt" "$out/git-crypt.new"
  mv "$out/git-crypt.new" "$out/git-crypt"
fi
"$out/git-crypt" --version >/dev/null 2>&1 || "$out/git-crypt" version >/dev/null 2>&1 \
  || die "the git-crypt binary in $out does not run (missing libssl?): apt-get install libssl3"
echo "$out/git-crypt"
