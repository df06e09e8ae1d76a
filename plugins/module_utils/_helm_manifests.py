# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm manifests (collection-private): a rendered or deployed release split into objects (hooks
apart), compared object by object with a diff whose Secret data is redacted, and the workloads a
release runs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import SAFE_LOADER, yaml

# The annotation that makes an object a hook (helm.sh/hook-weight etc. come with it).
HOOK = re.compile(r"""^\s+["']?helm\.sh/hook["']?\s*:""", re.MULTILINE)
REDACTED = "<redacted>"


def split_manifest(text: str, default_namespace: str) -> dict[str, dict[str, Any]]:
    """Parse a helm manifest stream into {object key: object}. The key is
    `Kind namespace/name` (cluster-scoped objects are keyed with the release namespace too, which
    is harmless for comparing two renders of the same release). A run parses the same manifest for
    the comparison, the workloads and the validation: the last few parses are kept (a new mapping
    each time, but the same objects, which callers must not change)."""
    return dict(_split_manifest(text or "", default_namespace))


@functools.lru_cache(maxsize=8)
def _split_manifest(text: str, default_namespace: str) -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for doc in yaml.load_all(text, Loader=SAFE_LOADER):
        if not isinstance(doc, dict) or not doc:
            continue
        items = doc["items"] if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list) else [doc]
        for obj in items:
            meta = obj.get("metadata") or {}
            key = f"{obj.get('kind', '?')} {meta.get('namespace') or default_namespace}/{meta.get('name', '?')}"
            objects[key] = obj
    return objects


TEST_HOOKS = frozenset({"test", "test-success", "test-failure"})


def is_test_hook(obj: dict[str, Any]) -> bool:
    """True for an object that only `helm test` creates (its helm.sh/hook names test events only)."""
    events = str(((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", ""))
    names = {e.strip() for e in events.split(",") if e.strip()}
    return bool(names) and names <= TEST_HOOKS


def hook_objects(release: dict[str, Any], default_namespace: str) -> dict[str, dict[str, Any]]:
    hooks: dict[str, dict[str, Any]] = {}
    for hook in release.get("hooks") or []:
        for key, obj in split_manifest(hook.get("manifest", ""), default_namespace).items():
            hooks[f"hook {key}"] = obj
    return hooks


def release_objects(release: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not release:
        return {}
    ns = release.get("namespace", "")
    objs = split_manifest(release.get("manifest", ""), ns)
    objs.update(hook_objects(release, ns))
    return objs


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to print: Secret data is replaced by a marker that still tells whether a key
    changed (same length and a short fingerprint would leak information, so only the key names
    and an opaque change marker are kept)."""
    if obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for section in ("data", "stringData"):
        if isinstance(obj.get(section), dict):
            out[section] = dict.fromkeys(obj[section], REDACTED)
    return out


def redact_pair(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Redact Secret data in both versions of an object, marking the keys whose value changed."""
    if not (before and before.get("kind") == "Secret") and not (after and after.get("kind") == "Secret"):
        return before, after
    b = redact(before) if before else None
    a = redact(after) if after else None
    if before and after and a is not None:
        for section in ("data", "stringData"):
            old, new = before.get(section) or {}, after.get(section)
            if isinstance(new, dict):
                a[section] = {k: (REDACTED if old.get(k) == v else f"{REDACTED} (changed)") for k, v in new.items()}
    return b, a


def to_yaml(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return ""
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


def chart_id(release: dict[str, Any] | None) -> dict[str, str]:
    """Chart as `name-version` plus app version, for a rendered release (chart.metadata) or a
    deployed one read by Helm.release (chart_ref/app_version, as `helm history` prints them)."""
    if not release:
        return {"chart": "", "app_version": ""}
    if "chart_ref" in release:
        return {"chart": release.get("chart_ref", ""), "app_version": release.get("app_version", "") or ""}
    meta = (release.get("chart") or {}).get("metadata") or {}
    return {
        "chart": f"{meta.get('name', '')}-{meta.get('version', '')}",
        "app_version": meta.get("appVersion", "") or "",
    }


@dataclass
class Comparison:
    added: list[str]
    removed: list[str]
    modified: list[str]
    values_changed: list[str]
    chart_changed: bool
    diffs: list[dict[str, str]]
    # The rendered objects the deployed release has too (hooks left out), by key.
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Those of them that are gone from the cluster (deleted by hand): an upgrade recreates them,
    # as `helm upgrade` does.
    missing: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.added or self.removed or self.modified or self.values_changed or self.chart_changed or self.missing
        )

    def summary(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "modified": self.modified,
            "missing": self.missing,
            "values_changed": self.values_changed,
            "chart_changed": self.chart_changed,
        }

    def note_missing(self, missing: list[str], want_diff: bool) -> None:
        self.missing = sorted(missing)
        if want_diff:
            for key in self.missing:
                self.diffs.append(
                    {
                        "before_header": f"{key} (missing in the cluster)",
                        "after_header": f"{key} (to recreate)",
                        "before": "",
                        "after": to_yaml(redact_pair(None, self.shared.get(key))[1]),
                    }
                )


def compare(
    current: dict[str, Any] | None, rendered: dict[str, Any], values_changed: list[str], want_diff: bool
) -> Comparison:
    """Compare the deployed release with a render of the new one, object by object."""
    before = release_objects(current)
    after = release_objects(rendered)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    chart_changed = bool(current) and chart_id(current) != chart_id(rendered)
    diffs: list[dict[str, str]] = []
    if want_diff:
        label_b = f"revision {current.get('version')}" if current else "not installed"
        for key in [*removed, *modified, *added]:
            b, a = redact_pair(before.get(key), after.get(key))
            diffs.append(
                {
                    "before_header": f"{key} ({label_b})" if b is not None else f"{key} (absent)",
                    "after_header": f"{key} (to deploy)" if a is not None else f"{key} (to delete)",
                    "before": to_yaml(b),
                    "after": to_yaml(a),
                }
            )
        if values_changed or chart_changed:
            b_lines, a_lines = [], []
            if chart_changed:
                b_lines.append("chart: {chart} (app version {app_version})".format(**chart_id(current)))
                a_lines.append("chart: {chart} (app version {app_version})".format(**chart_id(rendered)))
            for p in values_changed:
                b_lines.append(f"value {p}: (old)")
                a_lines.append(f"value {p}: (new)")
            diffs.append(
                {
                    "before_header": f"release {rendered.get('name')} values and chart ({label_b})",
                    "after_header": f"release {rendered.get('name')} values and chart (to deploy)",
                    "before": "\n".join(b_lines) + "\n",
                    "after": "\n".join(a_lines) + "\n",
                }
            )
    shared = {k: after[k] for k in set(before) & set(after) if not k.startswith("hook ")}
    return Comparison(added, removed, modified, values_changed, chart_changed, diffs, shared)


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def workloads(release: dict[str, Any] | None) -> list[dict[str, str]]:
    """Deployments, StatefulSets and DaemonSets of a release manifest (hooks excluded)."""
    if not release:
        return []
    out = []
    for obj in split_manifest(release.get("manifest", ""), release.get("namespace", "")).values():
        if obj.get("kind") in WORKLOAD_KINDS:
            meta = obj.get("metadata") or {}
            out.append(
                {
                    "kind": obj["kind"],
                    "namespace": meta.get("namespace") or release.get("namespace", ""),
                    "name": meta.get("name", ""),
                }
            )
    return sorted(out, key=lambda w: (w["namespace"], w["kind"], w["name"]))
