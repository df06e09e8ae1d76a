# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kube_apply runner (collection-private): read the objects, apply each server-side (a dry run
in check mode) with a redacted diff, wait until new CustomResourceDefinitions are Established.

The module (plugins/modules/kube_apply.py) only documents, declares its options and calls
``apply_objects``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._chart_repo import open_url
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_manifests import redact_pair, to_yaml
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, build_client
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import (
    KubeObjectError,
    Resources,
    apply,
    normalized,
    wait_established,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import SAFE_LOADER, yaml


def objects_of(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects to apply: from src (a file or URL) or definition."""
    if p["src"]:
        try:
            if p["src"].startswith(("http://", "https://")):
                with open_url(p["src"], timeout=60) as resp:
                    docs = list(yaml.load_all(resp.read(), Loader=SAFE_LOADER))
            else:
                with open(p["src"], encoding="utf-8") as fh:
                    docs = list(yaml.load_all(fh, Loader=SAFE_LOADER))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise KubeObjectError(f"cannot read the objects of {p['src']}: {exc}") from exc
    else:
        docs = p["definition"] if isinstance(p["definition"], list) else [p["definition"]]
    objects = [d for d in docs if d]
    for obj in objects:
        if not isinstance(obj, dict):
            raise KubeObjectError(f"every object must be a mapping, got {type(obj).__name__}")
    return objects


def apply_objects(p: dict[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """One run of kube_apply with its module parameters: server-side apply of every object (a dry
    run in check mode), then wait for new CustomResourceDefinitions; the result, or a ModuleError."""
    try:
        objects = objects_of(p)
        client = build_client(p, user_agent="mybinder.deploy/kube_apply")
        resources = Resources(client)
        results, diffs = [], []

        def apply_one(obj: dict[str, Any]) -> dict[str, Any]:
            return apply(client, resources, obj, p["field_manager"], p["force_conflicts"], check_mode, p["namespace"])

        if len({(o.get("apiVersion"), o.get("kind")) for o in objects}) == 1:
            # Objects of one kind do not depend on each other: applied a few at a time (each is a
            # round trip the API server spends most of its time on; a CRD is hundreds of kilobytes),
            # after the one discovery request (its cache is not shared safely between threads).
            resources.find(objects[0].get("apiVersion", ""), objects[0].get("kind", ""))
            with ThreadPoolExecutor(max_workers=4) as pool:
                outs = list(pool.map(apply_one, objects))
        else:  # in order: a Namespace or a CRD before the objects that need it
            outs = [apply_one(obj) for obj in objects]
        for obj, out in zip(objects, outs, strict=True):
            meta = out["after"].get("metadata") or {}
            results.append(
                {
                    "kind": out["after"].get("kind", obj.get("kind")),
                    "name": meta.get("name", ""),
                    "namespace": meta.get("namespace", ""),
                    "changed": out["changed"],
                    "created": out["created"],
                }
            )
            if diff and out["changed"]:
                before, after = redact_pair(normalized(out["before"]), normalized(out["after"]))
                diffs.append(
                    {
                        "before_header": out["key"],
                        "after_header": out["key"],
                        "before": to_yaml(before),
                        "after": to_yaml(after),
                    }
                )
        if p["wait_established"] > 0 and not check_mode:
            crds = [r["name"] for r in results if r["changed"] and r["kind"] == "CustomResourceDefinition"]
            pending = wait_established(client, resources, crds, p["wait_established"])
            if pending:
                raise ModuleError(
                    f"CustomResourceDefinitions not Established after {p['wait_established']} s: " + ", ".join(pending),
                    results=results,
                    changed=True,
                )
    except KubeApiError as exc:
        raise ModuleError(f"the API server refused: {exc}", status=exc.status) from exc
    result: dict[str, Any] = {"changed": any(r["changed"] for r in results), "results": results}
    if diff:
        result["diff"] = diffs
    return result
