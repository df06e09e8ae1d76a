# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm_template runner (collection-private): a chart rendered to a file as helm renders it,
with the data of every Secret redacted; the file is written only when its content changes.

The module (plugins/modules/helm_template.py) only documents, declares its options and calls ``render_to_file``.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._helm import Helm, HelmError, clean_error
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

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


def render_to_file(p: dict[str, Any], check_mode: bool, diff: bool, bin_path: Callable[[str], str]) -> dict[str, Any]:
    """One run of helm_template with its module parameters ``p``; ``bin_path`` finds an executable."""
    helm = Helm(binary=p["binary_path"] or bin_path("helm"), namespace=p["release_namespace"])
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
    if diff and changed:
        result["diff"] = {"before": before or "", "after": text, "before_header": dest, "after_header": dest}
    if changed and not check_mode:
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
