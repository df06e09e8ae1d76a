#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: chart_build
short_description: Build a Helm chart's dependencies in a build copy, from their upstream repositories or from a mirror
version_added: 0.1.0
description:
  - Mirrors the chart directory O(src) into O(dest) (the chart's own files only; C(charts/) is built), so the
    source tree is never modified.
  - With O(mirror) set, the http(s) repositories of the copy's C(Chart.yaml) dependencies are rewritten to the
    mirror; without one, the upstream repositories of C(Chart.yaml) are used. Either way the dependencies are
    resolved with C(helm dependency update), which needs no C(helm repo add) (C(helm dependency build) refuses
    every repository missing from helm's repositories file), and the resolved names and versions must equal
    those of the source C(Chart.lock), so neither a mirror nor a republished repository can swap a version.
  - Dependencies are fetched only when the dependency list, the lock or the mirror changed, or an archive is
    missing; otherwise nothing is run, so a no-op deploy costs no network round trip.
  - Reports every dependency with its version and whether it is a test fixture chart (annotation
    C(mybinder.org/stand-in), as the chart mirror serves them with C(MYBINDER_FIXTURE_CHARTS) set).
  - kubernetes.core.helm's O(kubernetes.core.helm#module:dependency_update) runs C(helm dependency update) in the
    source tree on every run (network each time, rewrites the lock) and knows no mirror.
requirements:
  - helm >= 3.13, < 4
extends_documentation_fragment:
  - mybinder.deploy.module
attributes:
  check_mode:
    support: none
    details:
      - The build copy is a local artifact that check mode needs in order to render the release; run the task
        with C(check_mode=false).
  diff_mode:
    support: none
  idempotent:
    description: A second run with the same chart fetches nothing and reports RV(ignore:changed=false).
    support: full
options:
  src:
    description: The chart directory (with C(Chart.yaml) and, normally, C(Chart.lock)).
    type: path
    required: true
  dest:
    description: The build copy; created if needed. Files that are not in O(src) are removed from it.
    type: path
    required: true
  mirror:
    description: URL of a Helm chart repository that serves every dependency; empty for the upstream repositories.
    type: str
    default: ""
  binary_path:
    description: The helm binary; found on E(PATH) when not set.
    type: path
"""

EXAMPLES = r"""
- name: Build the meta chart from a chart mirror (an air-gapped operator's repository)
  mybinder.deploy.chart_build:
    src: "{{ mybinder_chart_dir }}"
    dest: "{{ mybinder_build_dir }}/chart"
    mirror: http://127.0.0.1:8879
  check_mode: false
  register: chart
"""

RETURN = r"""
path:
  description: The built chart, to install from.
  returned: always
  type: str
fetched:
  description: Whether dependencies were fetched in this run.
  returned: always
  type: bool
dependencies:
  description: The dependencies in C(charts/), with C(name), C(version), C(repository) and C(stand_in).
  returned: always
  type: list
  elements: dict
  sample: [{name: binderhub, version: 1.0.0, repository: "http://127.0.0.1:8879", stand_in: true}]
stand_ins:
  description: Names of the dependencies that are stand-in charts.
  returned: always
  type: list
  elements: str
command:
  description: The helm command run to fetch dependencies.
  returned: when dependencies were fetched
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._chart_build import build_chart
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "mirror": {"type": "str", "default": ""},
            "binary_path": {"type": "path"},
        },
        supports_check_mode=False,
    )
    conclude(module, lambda: build_chart(module.params, lambda name: module.get_bin_path(name, required=True)), PYYAML)


if __name__ == "__main__":
    main()
