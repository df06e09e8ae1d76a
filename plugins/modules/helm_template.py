#!/usr/bin/python
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: helm_template
short_description: Render a Helm release to a manifest file without a cluster, Secret data redacted
version_added: 0.1.0
description:
  - Runs C(helm template) for one release (chart, values files in helm order, namespace, Kubernetes version and
    API versions) and writes the manifests to O(dest). No cluster is contacted.
  - The file holds the exact manifests helm renders, except the data of every Secret, whose values are replaced by
    V(<redacted>) (the keys stay, so a reader sees what a Secret holds). The rendered secrets never reach the file,
    the result, a temporary file or a log.
  - Reports RV(ignore:changed) only when the file content changes.
  - M(kubernetes.core.helm_template) writes unredacted Secrets (to O(kubernetes.core.helm_template#module:output_dir)
    or into its result) and has no option for the Kubernetes version or the API versions to render for.
requirements:
  - helm >= 3.13, < 4
extends_documentation_fragment:
  - mybinder.deploy.module
attributes:
  check_mode:
    support: full
    details: Renders and compares with O(dest), writes nothing.
  diff_mode:
    support: full
    details: Shows the file before and after (Secret data redacted).
  idempotent:
    description: Rendering the same chart and values again leaves the file unchanged.
    support: full
options:
  release_name:
    description: Release name (C(.Release.Name)).
    type: str
    required: true
  release_namespace:
    description: Release namespace (C(.Release.Namespace)).
    type: str
    required: true
  chart_ref:
    description:
      - Path of a chart directory (its dependencies already in its C(charts/) directory), or the name of a chart
        in the repository O(chart_repo_url).
    type: str
    required: true
  chart_repo_url:
    description: Chart repository to take O(chart_ref) from (C(--repo)); empty for a local chart directory.
    type: str
    default: ""
  chart_version:
    description: Exact chart version (C(--version)) for a chart from O(chart_repo_url).
    type: str
    default: ""
  values_files:
    description: Values files passed to helm in this order; a later file wins (helm's rule). Chart defaults come first.
    type: list
    elements: path
    default: []
  values:
    description:
      - Values given as a dictionary, applied after O(values_files). They reach helm on its standard input
        (C(--values -)), never through a file, and are never shown.
    type: dict
    default: {}
  kube_version:
    description: Kubernetes version to render for (C(--kube-version)); empty for helm's built-in default.
    type: str
    default: ""
  api_versions:
    description: Extra API versions the templates may test for (C(--api-versions)), such as V(cert-manager.io/v1).
    type: list
    elements: str
    default: []
  include_crds:
    description: Include the chart's CRDs (C(--include-crds)).
    type: bool
    default: true
  dest:
    description: The file to write; its directory is created.
    type: path
    required: true
  binary_path:
    description: The helm binary; found on E(PATH) when not set.
    type: path
notes:
  - Templates that call C(lookup) see no cluster here, so values a chart generates when they are not given (random
    tokens, for instance) differ from run to run; give them in the values, as the secret values files do.
seealso:
  - module: mybinder.deploy.helm_release
  - module: kubernetes.core.helm_template
"""

EXAMPLES = r"""
- name: Render the prod release of the meta chart
  mybinder.deploy.helm_template:
    release_name: prod
    release_namespace: prod
    chart_ref: /tmp/build/mybinder
    values_files:
      - /tmp/build/inventory-values.yaml
      - secret/config/prod.yaml
      - config/prod.yaml
    kube_version: "1.34.0"
    dest: render/prod/prod.yaml

- name: Render a release of a chart from a repository
  mybinder.deploy.helm_template:
    release_name: ingress-nginx
    release_namespace: ingress-nginx
    chart_ref: ingress-nginx
    chart_repo_url: https://kubernetes.github.io/ingress-nginx
    chart_version: 4.14.1
    values:
      controller:
        replicaCount: 2
    dest: render/prod/ingress-nginx.yaml
"""

RETURN = r"""
dest:
  description: The file written (or that would be written, in check mode).
  returned: always
  type: str
  sample: render/prod/prod.yaml
objects:
  description: The rendered objects, as C(Kind namespace/name) (namespace empty for cluster-scoped objects).
  returned: always
  type: list
  elements: str
  sample: [Deployment prod/binder, Service prod/binder]
redacted:
  description: The Secrets whose data was redacted, as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [prod/hub, prod/binder-secret]
stand_in_objects:
  description:
    - The rendered objects labelled C(mybinder.org/stand-in=true), as C(Kind namespace/name) - the chart is one of
      this project's stand-in test charts, not the real one.
  returned: always
  type: list
  elements: str
  sample: [Deployment ingress-nginx/ingress-nginx-controller]
command:
  description: The helm command run (values travel in files, so the command holds no secret).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_template import render_to_file
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "release_name": {"type": "str", "required": True},
            "release_namespace": {"type": "str", "required": True},
            "chart_ref": {"type": "str", "required": True},
            "chart_repo_url": {"type": "str", "default": ""},
            "chart_version": {"type": "str", "default": ""},
            "values_files": {"type": "list", "elements": "path", "default": []},
            "values": {"type": "dict", "default": {}, "no_log": True},
            "kube_version": {"type": "str", "default": ""},
            "api_versions": {"type": "list", "elements": "str", "default": []},
            "include_crds": {"type": "bool", "default": True},
            "dest": {"type": "path", "required": True},
            "binary_path": {"type": "path"},
        },
        supports_check_mode=True,
    )
    conclude(
        module,
        lambda: render_to_file(
            module.params, module.check_mode, module._diff, lambda name: module.get_bin_path(name, required=True)
        ),
        PYYAML,
    )


if __name__ == "__main__":
    main()
