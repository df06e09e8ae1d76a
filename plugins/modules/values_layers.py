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
  - Fails when a secret layer is empty (or only comments), since deploying it would drop every secret the release holds.
  - Fails when a secret layer and a public layer set the same key (or one sets a parent of the other's key),
    because whichever comes later would silently override the other, the upstream accident this collection exists to
    prevent. The message names the key paths and the files, never the values.
  - With O(chart), fails when a layer (or the chart's own values.yaml) sets a key that no chart of the release knows,
    naming each key path (never its value), the files that set it and the known keys it may have meant. A chart whose
    values.schema.json closes its top level (C(additionalProperties) false) is checked against its schema; any other
    subchart against its default values.yaml, where a default mapping with keys lists the known ones and below an
    empty mapping, a list, a scalar or null anything goes; C(global), subchart keys and dependency conditions are known.
    Helm itself would drop such a key without a word, or refuse it later (schema) when the release is rendered.
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
  chart:
    description:
      - A chart directory whose dependencies are built (C(charts/*.tgz) or C(charts/<name>/)), as
        M(mybinder.deploy.chart_build) makes it. When given, the keys of every readable layer are checked against it.
    type: path
  unknown_allowed:
    description:
      - Key paths (C(grafana.adminPassword)) or prefixes of them (C(grafana.grafana.ini)) that a chart reads although
        its default values do not show them; they are let through and reported in RV(unknown_allowed).
      - A chart's own schema still refuses what it refuses.
    type: list
    elements: str
    default: []
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

- name: Check them and refuse keys no chart of the release knows
  mybinder.deploy.values_layers:
    layers:
      - path: secret/config/prod.yaml
        secret: true
      - path: config/prod.yaml
    chart: "{{ built_chart.path }}"
    unknown_allowed:
      - grafana.adminPassword
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
secret_keys:
  description: The key paths the secret layers set, dotted (names only, never values).
  returned: always
  type: list
  elements: str
  sample: [binderhub.config.GitHubRepoProvider.access_token]
unknown_allowed:
  description: Unknown key paths that O(unknown_allowed) let through (empty without O(chart)).
  returned: always
  type: list
  elements: str
  sample:
    - grafana.adminPassword
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._values_layers import run
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


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
            "chart": {"type": "path"},
            "unknown_allowed": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    conclude(module, lambda: run(p["layers"], p["allow_encrypted"], p["chart"], p["unknown_allowed"]), PYYAML)


if __name__ == "__main__":
    main()
