#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection. ansible-test insists on running inside
# .../ansible_collections/<namespace>/<name>/, so the files git knows (tracked, and new files not
# ignored) are copied into such a tree in a temporary directory first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/mybinder/deploy"
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard \
  | grep -zv -e '^\.collections/' -e '^secret/' -e '^mybinder/templates/' -e '^tests/' -e '^tools/' \
    -e '^extensions/' -e '^playbooks/group_vars' \
  | tar -c --null -T - --ignore-failed-read -f - 2>/dev/null | tar -x -C "$dest" -f -
cd "$dest"
git init -q && git add -A >/dev/null 2>&1 || true
reqs="$(python3 -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py"
pip_version="$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$reqs" | head -n 1)"
if [[ -n "$pip_version" ]]; then
  cached="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
  [[ -f "$cached" ]] || { mkdir -p "$(dirname "$cached")"; cp "$root/tools/ansible-test-get-pip.py" "$cached"; }
fi
# --venv: each sanity test runs in the virtualenv ansible-test prepares with its pinned
# requirements (cached under ~/.ansible/test after the first run).
exec ansible-test sanity --venv --python 3.11 --color no "$@"
