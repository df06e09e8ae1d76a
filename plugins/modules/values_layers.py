#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: values_layers
short_description: Check the Helm values files of a deploy before anything touches a cluster
version_added: 0.1.0
description:
  - Checks every file of O(layers), in order, and fails naming the file (never showing its content) when it
    does not exist, is still encrypted by git-crypt (it starts with C(\0GITCRYPT\0)), is not valid YAML, or is
    not a mapping.
  - Fails when a secret layer and a public layer set the same key (or one sets a parent of the other's key),
    because whichever comes later would silently override the other, the upstream accident this collection exists to
    prevent. The message names the key paths and the files, never the values.
  - Returns the paths in order, ready for helm's C(--values) (later wins).
  - Read-only, except that a generated layer given with O(layers[].content) is written first.
extends_documentation_fragment:
  - mybinder.deploy.module
attributes:
  check_mode:
    support: full
    details: Only reads (a generated layer is written in check mode as well, see the notes).
  diff_mode:
    support: none
  idempotent:
    description: A generated layer is written only when its content changed; everything else is only read.
    support: full
options:
  layers:
    description: The values files, in helm order (later wins).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Path of the file.
        type: path
        required: true
      secret:
        description: Whether the file holds secrets (must not share keys with public layers).
        type: bool
        default: false
      required:
        description: When V(false), a missing file is left out of the result instead of failing.
        type: bool
        default: true
      content:
        description:
          - Rendered content of a generated layer (the inventory layer); written to O(layers[].path) (mode 0600,
            directory created 0700) when the file differs, then checked like the others. Must not hold secrets.
        type: str
  allow_encrypted:
    description:
      - Accept files still encrypted by git-crypt (reported in RV(encrypted), their keys not compared). For a
        check before the secrets are unlocked.
    type: bool
    default: false
notes:
  - Writing a generated layer is not reported as a change - it is a build input of the deploy, written in check
    mode as well (check mode needs it to render); what the deploy changes is reported by the release.
  - The file content is never returned, logged or shown in a message.
"""

EXAMPLES = r"""
- name: Check the values layers of prod
  mybinder.deploy.values_layers:
    layers:
      - path: "{{ mybinder_values_dir }}/inventory-values.yaml"
      - path: secret/config/prod.yaml
        secret: true
      - path: config/prod.yaml
  register: layers
"""

RETURN = r"""
paths:
  description: The files to pass to helm, in order.
  returned: always
  type: list
  elements: str
  sample:
    - /srv/deploy/.build/prod/values/inventory-values.yaml
    - /srv/deploy/secret/config/prod.yaml
    - /srv/deploy/config/prod.yaml
skipped:
  description: Optional files that do not exist and were left out.
  returned: always
  type: list
  elements: str
encrypted:
  description: Files still encrypted (only with O(allow_encrypted=true)).
  returned: always
  type: list
  elements: str
written:
  description: Generated layers written in this run (their content changed).
  returned: always
  type: list
  elements: str
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError, conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML, read_unlocked, yaml


class LayerError(ModuleError):
    pass


def leaf_paths(tree: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Key paths of the leaves of a values tree (lists and scalars are leaves; empty maps too)."""
    if isinstance(tree, dict) and tree:
        out: set[tuple[str, ...]] = set()
        for k, v in tree.items():
            out |= leaf_paths(v, (*prefix, str(k)))
        return out
    return {prefix} if prefix else set()


def overlaps(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Paths of `a` equal to, or a prefix of, or below a path of `b`."""
    prefixes_b = {p[:i] for p in b for i in range(1, len(p) + 1)}
    out = []
    for p in a:
        if p in prefixes_b or any(p[:i] in b for i in range(1, len(p))):
            out.append(p)
    return sorted(out)


def write(path: str, content: str) -> bool:
    """Write a generated layer if it differs; True when written."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return True


class Encrypted(LayerError):
    pass


def load(path: str) -> dict[str, Any]:
    unlock = "unlock the secrets first (the secrets stage, mybinder.deploy.secrets)"
    raw = read_unlocked(path, "values file", unlock, LayerError, Encrypted)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # The parser's own message can quote the offending text, which may be a secret: not shown.
        raise LayerError(f"values file {path} is not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LayerError(f"values file {path} must be a mapping of values, not a {type(data).__name__}")
    return data


def run(layers: list[dict[str, Any]], allow_encrypted: bool = False) -> dict[str, Any]:
    paths: list[str] = []
    skipped: list[str] = []
    encrypted: list[str] = []
    written: list[str] = []
    loaded: list[tuple[str, bool, set[tuple[str, ...]]]] = []
    for layer in layers:
        path = os.path.abspath(layer["path"])
        if layer.get("content") is not None and write(path, layer["content"]):
            written.append(path)
        if not layer["required"] and not os.path.exists(path):
            skipped.append(path)
            continue
        try:
            data = load(path)
        except Encrypted:
            if not allow_encrypted:
                raise
            encrypted.append(path)
            paths.append(path)
            continue
        paths.append(path)
        loaded.append((path, layer["secret"], leaf_paths(data)))
    clashes = []
    for spath, secret, skeys in loaded:
        if not secret:
            continue
        for ppath, psecret, pkeys in loaded:
            if psecret:
                continue
            for key in overlaps(skeys, pkeys):
                clashes.append(f"{'.'.join(key)} (secret {spath}, public {ppath})")
    if clashes:
        raise LayerError(
            "a secret values file and a public one set the same keys, so one would silently override the other; "
            "set each key in one place only: " + "; ".join(clashes)
        )
    return {"changed": False, "paths": paths, "skipped": skipped, "encrypted": encrypted, "written": written}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "layers": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "secret": {"type": "bool", "default": False},
                    "required": {"type": "bool", "default": True},
                    "content": {"type": "str"},
                },
            },
            "allow_encrypted": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    conclude(module, lambda: run(module.params["layers"], module.params["allow_encrypted"]), PYYAML)


if __name__ == "__main__":
    main()
