#!/usr/bin/env bash
# Install git-crypt from Debian's package into the tool cache and print its path.
exec "$(dirname "$0")/install-deb-tool.sh" git-crypt git-crypt
