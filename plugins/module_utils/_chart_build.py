# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The chart_build runner (collection-private): a build copy of a chart with its dependencies
fetched (from a mirror when one is given), refreshed only when the chart or its lock changed.

The module (plugins/modules/chart_build.py) only documents, declares its options and calls ``build_chart``.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._chart_repo import chart_info, open_url
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

STAMP = ".mybinder-deps.json"


class BuildError(ModuleError):
    pass


def sync_tree(src: str, dest: str) -> None:
    """Make dest hold exactly the chart files of src (charts/ and the stamp excepted)."""
    os.makedirs(dest, exist_ok=True)
    keep = {"charts", STAMP}
    wanted: set[str] = set()
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != "charts"]
        for d in dirs:
            os.makedirs(os.path.join(dest, rel, d), exist_ok=True)
            wanted.add(os.path.normpath(os.path.join(rel, d)))
        for f in files:
            relf = os.path.normpath(os.path.join(rel, f))
            wanted.add(relf)
            s, t = os.path.join(src, relf), os.path.join(dest, relf)
            if not os.path.exists(t) or not filecmp.cmp(s, t, shallow=False):
                shutil.copyfile(s, t)
    for root, dirs, files in os.walk(dest, topdown=True):
        rel = os.path.relpath(root, dest)
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in keep]
            files = [f for f in files if f not in keep]
        for name in list(dirs) + files:
            relp = os.path.normpath(os.path.join(rel, name))
            if relp not in wanted:
                path = os.path.join(dest, relp)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                    dirs[:] = [d for d in dirs if d != name]
                else:
                    os.remove(path)


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        return None


def lock_pins(lock: Any) -> list[tuple[str, str]]:
    return sorted((d.get("name", ""), str(d.get("version", ""))) for d in (lock or {}).get("dependencies") or [])


def chart_meta_of(tgz: str) -> dict[str, Any]:
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml":
                fh = tar.extractfile(member)
                return yaml.safe_load(fh.read()) if fh else {}
    return {}


def build_chart(p: dict[str, Any], bin_path: Callable[[str], str]) -> dict[str, Any]:
    """One run of chart_build with its module parameters ``p``; ``bin_path`` finds an executable."""
    src, dest, mirror = p["src"].rstrip("/"), p["dest"].rstrip("/"), (p["mirror"] or "").rstrip("/")
    helm = p["binary_path"] or bin_path("helm")
    chart = read_yaml(os.path.join(src, "Chart.yaml"))
    if not isinstance(chart, dict):
        raise BuildError(f"{src} is not a Helm chart: {src}/Chart.yaml is missing or not a mapping")
    src_lock = read_yaml(os.path.join(src, "Chart.lock"))
    sync_tree(src, dest)

    deps = chart.get("dependencies") or []
    if mirror:
        for dep in deps:
            if str(dep.get("repository", "")).startswith(("http://", "https://")):
                dep["repository"] = mirror
        with open(os.path.join(dest, "Chart.yaml"), "w", encoding="utf-8") as fh:
            fh.write("# Build copy: dependency repositories rewritten to the chart mirror.\n")
            yaml.safe_dump(chart, fh, sort_keys=False)
        # The source lock pins the upstream repositories; the mirror's lock is made by `dependency update`.
        stale_lock = os.path.join(dest, "Chart.lock")
        if os.path.exists(stale_lock) and read_yaml(stale_lock) == src_lock:
            os.remove(stale_lock)

    expected = [f"{d['name']}-{d['version']}.tgz" for d in deps]
    stamp_data = {
        "dependencies": deps,
        "lock": src_lock,
        "mirror": mirror,
        "served": mirror_digests(mirror, deps) if mirror and deps else {},
    }
    digest = hashlib.sha256(json.dumps(stamp_data, sort_keys=True, default=str).encode()).hexdigest()
    stamp_path = os.path.join(dest, STAMP)
    charts_dir = os.path.join(dest, "charts")
    old = read_json(stamp_path)
    fresh = old.get("digest") == digest and all(os.path.exists(os.path.join(charts_dir, f)) for f in expected)

    result: dict[str, Any] = {"changed": False, "fetched": False, "path": dest}
    if deps and not fresh:
        if os.path.isdir(charts_dir):
            shutil.rmtree(charts_dir)
        # `dependency update`, never `build`: build refuses a repository that is not in helm's
        # repositories file ("no repository definition ... helm repo add"), which an operator's
        # machine, a CI runner or an execution environment does not have. The versions it
        # resolves are then checked against the source lock, so nothing floats.
        cmd = [helm, "dependency", "update", dest]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            where = f"the chart mirror {mirror}" if mirror else "their upstream repositories (see Chart.yaml)"
            hint = (
                "; is the mirror running (tools/chart-mirror.py status)?"
                if mirror
                else "; without network access to them, serve the charts from a mirror and set mybinder_chart_mirror"
            )
            raise BuildError(f"fetching the dependencies of {src} from {where} failed: {res.stderr.strip()}{hint}")
        if src_lock is not None:
            # What was downloaded, read from the archives: helm may leave a lock it did not follow.
            got = sorted(
                (str(meta.get("name", "")), str(meta.get("version", "")))
                for meta in (chart_meta_of(os.path.join(charts_dir, f)) for f in sorted(os.listdir(charts_dir)))
            )
            want = lock_pins(src_lock)
            if got != want:
                where = f"the mirror {mirror}" if mirror else "the upstream repositories"
                raise BuildError(
                    f"{where} resolved other dependency versions than {src}/Chart.lock pins: got {got}, want {want}"
                )
            # The lock `update` wrote only served that check. Later runs leave the copy's lock as
            # the source's (upstream) or none (a mirror: the upstream one is stale there, see
            # above), so the copy is the same after every run, and helm_release's digest of its
            # files changes only with them.
            if mirror:
                os.remove(os.path.join(dest, "Chart.lock"))
            else:
                shutil.copyfile(os.path.join(src, "Chart.lock"), os.path.join(dest, "Chart.lock"))
        result.update({"changed": True, "fetched": True, "command": " ".join(cmd)})
        with open(stamp_path, "w", encoding="utf-8") as fh:
            json.dump({"digest": digest}, fh)

    dependencies = []
    for dep in deps:
        tgz = os.path.join(charts_dir, f"{dep['name']}-{dep['version']}.tgz")
        if not os.path.exists(tgz):
            raise BuildError(f"dependency {dep['name']} {dep['version']} is missing from {charts_dir} after the build")
        meta = chart_meta_of(tgz)
        stand_in = chart_info(meta)["stand_in"]
        dependencies.append(
            {
                "name": dep["name"],
                "version": str(dep["version"]),
                "repository": dep.get("repository", ""),
                "stand_in": stand_in,
            }
        )
    result["dependencies"] = dependencies
    result["stand_ins"] = [d["name"] for d in dependencies if d["stand_in"]]
    return result


def mirror_digests(mirror: str, deps: list[dict[str, Any]]) -> dict[str, str]:
    """Digests the mirror serves for our dependencies: a chart repackaged under the same version
    (a stand-in being edited) is fetched again."""
    url = f"{mirror}/index.yaml"
    try:
        with open_url(url, timeout=10) as resp:
            # libyaml when PyYAML has it: a public repository's index is megabytes
            index = yaml.load(resp.read(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise BuildError(
            f"the chart mirror {mirror} does not answer ({url}: {getattr(exc, 'reason', exc)}); "
            "start it (tools/chart-mirror.py start) or fix mybinder_chart_mirror"
        ) from exc
    out = {}
    for dep in deps:
        for entry in (index.get("entries") or {}).get(dep["name"]) or []:
            if str(entry.get("version")) == str(dep["version"]):
                out[dep["name"]] = str(entry.get("digest", ""))
    return out


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}
