# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm values and what a render depends on (collection-private): helm's merge of several values
files, the user-supplied values helm records, and the digests recorded in a revision's
description (values_digest, inputs_digest) that let a run tell, without rendering, that nothing
changed; value_paths names where two values trees differ (paths only: values may hold secrets).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

DIGEST_MARK = "mybinder.deploy values sha256:"


if yaml is not None:

    class _ValuesLoader(yaml.SafeLoader):
        """YAML as helm reads values files: dates stay strings (PyYAML would make them dates)."""

    _ValuesLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """helm's rule for several --values files (pkg/cli/values mergeMaps): maps merge key by key,
    anything else in the later file replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_values(out[k], v)
        else:
            out[k] = v
    return out


def user_values(values_files: list[str], inline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The user-supplied values helm records for a release installed with these files (and the
    inline values after them)."""
    merged: dict[str, Any] = {}
    for path in values_files:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_ValuesLoader) or {}  # a SafeLoader subclass
        merged = merge_values(merged, data)
    if inline is not None:
        merged = merge_values(merged, inline)
    # Same types as `helm get values -o json` gives back (e.g. integer map keys become strings).
    return json.loads(json.dumps(merged, default=str))


def values_digest(values_files: list[str], inline: dict[str, Any] | None = None) -> str:
    """A digest of the values files (order included) and the inline values: equal digests mean
    equal values."""
    h = hashlib.sha256()
    for path in values_files:
        with open(path, "rb") as fh:
            data = fh.read()
        h.update(f"{len(data)}:".encode())
        h.update(data)
    if inline is not None:
        data = json.dumps(inline, sort_keys=True).encode()
        h.update(f"inline {len(data)}:".encode())
        h.update(data)
    return h.hexdigest()[:40]


# The digest of everything a render depends on, recorded after the values digest (inputs_digest).
INPUTS_MARK = " inputs sha256:"
DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def recorded_inputs(description: str) -> str | None:
    if INPUTS_MARK in (description or ""):
        return description.split(INPUTS_MARK, 1)[1].split()[0]
    return None


def chart_tree_digest(chart_dir: str) -> str:
    """A digest of every file of an unpacked chart (subcharts and their archives included), by path."""
    h = hashlib.sha256()
    root = os.path.realpath(chart_dir)
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            with open(path, "rb") as fh:
                data = fh.read()
            h.update(f"{os.path.relpath(path, root)}\0{len(data)}:".encode())
            h.update(data)
    return h.hexdigest()


def capabilities_digest(client: Any) -> str:
    """A digest of what helm's .Capabilities hold for this cluster: the server version and every
    group/version/kind the API serves (aggregated discovery: two requests)."""
    version = client.request("GET", "/version")
    kinds: set[str] = set()
    for path in ("/api", "/apis"):
        doc = client.request("GET", path, accept=DISCOVERY_ACCEPT)
        if doc.get("kind") != "APIGroupDiscoveryList":
            # A server without aggregated discovery: group versions only (/api answers APIVersions,
            # /apis an APIGroupList).
            kinds.update(f"/{v}" for v in doc.get("versions") or [])
            for group in doc.get("groups") or []:
                kinds.update(f"{group.get('name', '')}/{v.get('version', '')}" for v in group.get("versions") or [])
            continue
        for group in doc.get("items") or []:
            name = (group.get("metadata") or {}).get("name", "")
            for v in group.get("versions") or []:
                kinds.add(f"{name}/{v.get('version', '')}")
                for res in v.get("resources") or []:
                    kinds.add(f"{name}/{v.get('version', '')}/{(res.get('responseKind') or {}).get('kind', '')}")
    h = hashlib.sha256(json.dumps([version.get("gitVersion", ""), sorted(kinds)]).encode())
    return h.hexdigest()


def inputs_digest(
    chart_dir: str, values: str, helm_binary: str, capabilities: str, release: str, namespace: str
) -> str:
    """What a render of the release depends on, besides live lookups: the chart's files, the values
    (values_digest), the helm binary, the cluster's capabilities (capabilities_digest), the
    release's name and namespace. Equal digests render equal manifests, lookups, random values and
    timestamps aside."""
    found = os.path.realpath(shutil.which(helm_binary) or helm_binary)
    try:
        st = os.stat(found)
        helm_id = f"{found}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        helm_id = helm_binary
    parts = [chart_tree_digest(chart_dir), values, helm_id, capabilities, release, namespace]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def recorded_digest(description: str) -> str | None:
    if DIGEST_MARK in (description or ""):
        return description.split(DIGEST_MARK, 1)[1].split()[0]
    return None


def value_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two values trees differ (paths only: values may hold secrets)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(p)
            else:
                out.extend(value_paths(a[k], b[k], p))
        return out
    return [] if a == b else [prefix or "(root)"]
