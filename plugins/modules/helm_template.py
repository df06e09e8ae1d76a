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

import os
import re
import subprocess
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import conclude
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import Helm, HelmError, clean_error
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import PYYAML, yaml

REDACTED = "<redacted>"
DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)


STAND_IN_LABEL = "mybinder.org/stand-in"


def redact_manifest(text: str, namespace: str) -> tuple[str, list[str], list[str], list[str]]:
    """Blank the data of every Secret; every other document is kept byte for byte.

    Returns the new text, the objects (Kind namespace/name), the redacted Secrets and the objects
    labelled as stand-ins."""
    out, objects, redacted, stand_ins = [], [], [], []
    for doc in DOC_SPLIT.split(text):
        if not doc.strip():
            continue
        obj = yaml.safe_load(doc)
        if not isinstance(obj, dict):
            out.append(doc.strip("\n"))  # comments only
            continue
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", namespace if obj.get("kind") not in CLUSTER_SCOPED else "")
        objects.append(f"{obj.get('kind')} {ns}/{meta.get('name')}")
        if str((meta.get("labels") or {}).get(STAND_IN_LABEL, "")).lower() == "true":
            stand_ins.append(objects[-1])
        if obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(obj.get(field), dict):
                    obj[field] = {k: REDACTED for k in obj[field]}
            comments = "".join(line + "\n" for line in doc.strip("\n").splitlines() if line.startswith("#"))
            out.append(comments + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n"))
            redacted.append(f"{ns}/{meta.get('name')}")
        else:
            out.append(doc.strip("\n"))
    return "".join(f"---\n{d}\n" for d in out), objects, redacted, stand_ins


CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ClusterIssuer",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "PersistentVolume",
}


def run_helm(helm: Helm, args: list[str], stdin: str | None) -> str:
    """helm template, with values on standard input when there are any (never in a file)."""
    if stdin is None:
        return helm.run(args).stdout
    cmd = helm.base() + args
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise HelmError(f"helm binary not found: {helm.binary}", cmd) from exc
    if res.returncode != 0:
        msg = clean_error(res.stderr) or f"helm exited with {res.returncode}"
        raise HelmError(msg, cmd, res.returncode, "", res.stderr)
    return res.stdout


def run(module: AnsibleModule) -> dict[str, Any]:
    p = module.params
    helm = Helm(binary=p["binary_path"] or module.get_bin_path("helm", required=True), namespace=p["release_namespace"])
    args = ["template", p["release_name"], p["chart_ref"]]
    if p["chart_repo_url"]:
        args += ["--repo", p["chart_repo_url"]]
        if p["chart_version"]:
            args += ["--version", p["chart_version"]]
    elif not os.path.isdir(p["chart_ref"]):
        raise HelmError(f"chart directory {p['chart_ref']} does not exist (set chart_repo_url for a repository chart)")
    for vf in p["values_files"]:
        if not os.path.isfile(vf):
            raise HelmError(f"values file {vf} does not exist")
        args += ["--values", vf]
    stdin = None
    if p["values"]:
        args += ["--values", "-"]
        stdin = yaml.safe_dump(p["values"])
    if p["kube_version"]:
        args += ["--kube-version", p["kube_version"]]
    for api in p["api_versions"]:
        args += ["--api-versions", api]
    if p["include_crds"]:
        args.append("--include-crds")
    command = " ".join(helm.base() + args)
    rendered = run_helm(helm, args, stdin)
    text, objects, redacted, stand_ins = redact_manifest(rendered, p["release_namespace"])

    dest = p["dest"]
    before = None
    if os.path.exists(dest):
        with open(dest, encoding="utf-8") as fh:
            before = fh.read()
    changed = before != text
    result: dict[str, Any] = {
        "changed": changed,
        "dest": dest,
        "objects": objects,
        "redacted": redacted,
        "stand_in_objects": stand_ins,
        "command": command,
    }
    if module._diff and changed:
        result["diff"] = {"before": before or "", "after": text, "before_header": dest, "after_header": dest}
    if changed and not module.check_mode:
        directory = os.path.dirname(os.path.abspath(dest))
        os.makedirs(directory, exist_ok=True)
        # Write next to the destination and rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".helm_template.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return result


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
    conclude(module, lambda: run(module), PYYAML)


if __name__ == "__main__":
    main()
