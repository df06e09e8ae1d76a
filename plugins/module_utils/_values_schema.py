# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""helm's values-schema errors, said in the operator's terms: the key path of the values file.

Why: the binderhub and jupyterhub charts ship a values.schema.json, and helm refuses values that
break it before anything is installed, but it names each problem by the subchart's own path:

    values don't meet the specifications of the schema(s) in the following chart(s):
    jupyterhub:
    - at '/hub': additional properties 'nodeSelectr' not allowed

while the operator wrote `binderhub.jupyterhub.hub.nodeSelectr` in config/<env>.yaml. This turns
each problem into that key path and the schema's reason, from the chart's dependency tree (the
names or aliases under which each subchart's values are nested).
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

_HEADER = "values don't meet the specifications of the schema(s) in the following chart(s):"
_CHART = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):\s*$")
_PROBLEM = re.compile(r"^- at '(?P<path>[^']*)': (?P<reason>.*)$")
_ADDITIONAL = re.compile(r"^additional propert(?:y|ies) (?P<keys>.+?) (?:is|are )?not allowed$")


def _keys(chart_yaml: dict[str, Any]) -> dict[str, str]:
    """dependency name -> the values key it is nested under (its alias, or its name)."""
    return {
        str(d["name"]): str(d.get("alias") or d["name"]) for d in chart_yaml.get("dependencies") or [] if d.get("name")
    }


def _archive_tree(data: bytes, keys: dict[str, str], out: dict[str, str]) -> None:
    """The values prefix of a packaged chart, and of its own subcharts (charts/<name>/ inside it)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        top = names[0].split("/", 1)[0] if names else ""
        prefix = f"{keys.get(top, top)}."
        out.setdefault(top, prefix)
        for member in tar.getmembers():
            parts = member.name.split("/")
            # <top>/charts/<sub>/Chart.yaml: a nested chart directory
            if len(parts) == 4 and parts[0] == top and parts[1] == "charts" and parts[3] == "Chart.yaml":
                fh = tar.extractfile(member)
                meta = yaml.safe_load(fh.read()) if fh else {}
                name = str((meta or {}).get("name") or parts[2])
                out.setdefault(name, f"{prefix}{parts[2]}.")


def subchart_prefixes(chart_dir: str) -> dict[str, str]:
    """chart name -> the values prefix its keys live under, for a chart directory whose
    dependencies are built (charts/*.tgz or charts/<name>/), nested charts included."""
    out: dict[str, str] = {}
    try:
        with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as fh:
            meta = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError):
        return out
    out[str(meta.get("name", ""))] = ""
    keys = _keys(meta)
    charts = os.path.join(chart_dir, "charts")
    for entry in sorted(os.listdir(charts)) if os.path.isdir(charts) else []:
        path = os.path.join(charts, entry)
        if entry.endswith(".tgz"):
            with open(path, "rb") as fh:
                _archive_tree(fh.read(), keys, out)
        elif os.path.isfile(os.path.join(path, "Chart.yaml")):
            out.update({name: f"{entry}.{prefix}" for name, prefix in subchart_prefixes(path).items() if name})
            out.setdefault(entry, f"{entry}.")
    return out


def explain(stderr: str, prefixes: dict[str, str]) -> str | None:
    """The schema problems of helm's error as `key.path: reason` lines, or None when the error is
    not a values-schema refusal."""
    if _HEADER not in stderr:
        return None
    lines = stderr[stderr.index(_HEADER) + len(_HEADER) :].splitlines()
    chart = ""
    problems: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        m = _CHART.match(line)
        if m:
            chart = m.group(1)
            continue
        m = _PROBLEM.match(line)
        if not m:
            continue
        prefix = prefixes.get(chart, f"{chart}." if chart else "")
        path = [p for p in m["path"].split("/") if p]
        reason = m["reason"]
        extra = _ADDITIONAL.match(reason)
        if extra:
            # one line per unknown key, with the key in its path
            for key in re.findall(r"'([^']+)'", extra["keys"]):
                problems.append(
                    f"{prefix}{'.'.join([*path, key])}: unknown key (the {chart} chart's schema allows no such key)"
                )
            continue
        where = f"{prefix}{'.'.join(path)}" if path else (prefix.rstrip(".") or "(top level)")
        problems.append(f"{where}: {reason}")
    if not problems:
        return None
    return "the values break the charts' values schemas (nothing was installed):\n" + "\n".join(
        f"  - {p}" for p in problems
    )
