# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm's release records, read straight from the cluster instead of through the helm CLI.

Why: on every run helm_release reads the release's history, the deployed manifest and hooks, and
sometimes its values. Through the CLI that is `helm history` and two or three `helm get` runs, each
a Go process that loads the kubeconfig and discovers the API (0.1-0.2 s each, and their CPU on a
small machine). Helm 3 keeps each revision as one object in the release namespace: a Secret (the
default storage driver) or a ConfigMap (HELM_DRIVER=configmap), named
``sh.helm.release.v1.<release>.v<revision>`` and labelled ``owner=helm``, ``name``, ``status`` and
``version``. Its ``release`` data is the release as JSON, gzipped and base64-encoded. Reading
that takes one metadata-only list and one GET on a connection the module opens anyway.

The records are only read here, never written: every change still goes through helm. For the
other storage drivers (sql, memory) ``records_for`` returns the CLI reader.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._helm import (
    Helm,
    HelmError,
    ReleaseReader,
    history_entry,
    pick_entry,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, KubeClient
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import METADATA_LIST_ACCEPT

_GZIP_MAGIC = b"\x1f\x8b\x08"
_DRIVERS = {
    "": "secrets",
    "secret": "secrets",
    "secrets": "secrets",
    "configmap": "configmaps",
    "configmaps": "configmaps",
}


def record_kind(helm: Helm) -> str | None:
    """The kind of object helm's storage driver keeps release records in (secrets, configmaps), or
    None for a driver this module does not read (sql, memory): HELM_DRIVER as helm would see it."""
    return _DRIVERS.get((helm.env or os.environ).get("HELM_DRIVER", "").strip().lower())


def records_for(helm: Helm, client: KubeClient | None, namespace: str) -> ReleaseReader:
    """The cluster reader when helm's storage driver is one it understands, the CLI otherwise."""
    kind = record_kind(helm)
    if client is None or kind is None:
        return helm
    return ClusterRecords(client, namespace, kind)


def list_releases(helm: Helm, client: KubeClient) -> list[dict[str, Any]]:
    """Every release of the cluster as ``helm list --all-namespaces`` shows it (see
    cluster_releases), read through the API when the storage driver is one this module reads,
    with the CLI otherwise. Sorted by namespace and name."""
    kind = record_kind(helm)
    if kind is not None:
        return cluster_releases(client, kind)
    try:
        listed = json.loads(helm.run(["list", "--all-namespaces", "-o", "json"]).stdout or "[]")
    except ValueError as exc:
        raise HelmError(f"helm list printed no JSON: {exc}") from exc
    keys = ("name", "namespace", "status", "chart", "app_version")
    return sorted(
        ({**{k: str(r.get(k, "")) for k in keys}, "revision": int(r.get("revision") or 0)} for r in listed),
        key=lambda r: (r["namespace"], r["name"]),
    )


def decode_record(data: str, secret: bool = True) -> dict[str, Any]:
    """A release from the ``release`` field of its storage object: helm stores the JSON gzipped
    and base64-encoded (and reads plain JSON too); a Secret's data is base64-encoded once more."""
    raw = base64.b64decode(base64.b64decode(data) if secret else data)
    if raw[:3] == _GZIP_MAGIC:
        raw = gzip.decompress(raw)
    return json.loads(raw)


# The chart label of an object (`helm.sh/chart: name-version`, or `chart:` in older charts).
_CHART_LABEL = re.compile(
    r"^\s+(?:helm\.sh/)?chart: ['\"]?([A-Za-z0-9][\w.-]*-v?\d+\.\d+\.\d+[\w.+-]*)['\"]?\s*$", re.MULTILINE
)


def charts_in_manifest(manifest: str, own: str) -> list[str]:
    """The charts, as name-version, whose chart labels the release's objects carry, its own chart
    left out: the subcharts that were really rendered (a nested one such as binderhub's jupyterhub
    included), which the release record does not list."""
    return sorted(set(_CHART_LABEL.findall(manifest or "")) - {own})


# What `helm list` leaves out by default (it shows deployed, failed and pending releases).
_LISTED_NOT = ("uninstalled", "uninstalling", "superseded")


def cluster_releases(client: KubeClient, kind: str = "secrets") -> list[dict[str, Any]]:
    """Every release of the cluster as ``helm list --all-namespaces`` shows it: the latest revision
    of each (name, namespace, revision, status, chart as name-version, app_version, and the
    subcharts its objects were rendered from: charts_in_manifest), sorted by
    namespace and name. One metadata-only list of the storage objects, then one GET of the
    latest record of each release (for its chart)."""
    latest: dict[tuple[str, str], tuple[int, str, str]] = {}
    for item in client.list_items(f"/api/v1/{kind}", accept=METADATA_LIST_ACCEPT, labelSelector="owner=helm"):
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        try:
            version = int(labels["version"])
        except (KeyError, ValueError):
            continue  # not a record helm wrote
        key = (str(meta.get("namespace", "")), str(labels.get("name", "")))
        if key not in latest or version > latest[key][0]:
            latest[key] = (version, str(meta.get("name", "")), str(labels.get("status", "")))
    out = []
    for (namespace, name), (version, obj_name, status) in sorted(latest.items()):
        if status in _LISTED_NOT:
            continue
        try:
            obj = client.request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{obj_name}")
        except KubeApiError as exc:
            if exc.status == 404:
                continue  # uninstalled (or its namespace deleted) since the list: helm list would not show it
            raise
        try:
            record = decode_record((obj.get("data") or {}).get("release", ""), secret=kind == "secrets")
            entry = history_entry(record)
        except (ValueError, OSError, AttributeError) as exc:  # bad base64, gzip or JSON
            raise HelmError(f"the record {obj_name} of release {name} is not a helm release: {exc}") from exc
        out.append(
            {
                "name": name,
                "namespace": namespace,
                "revision": version,
                "status": status,
                "chart": entry["chart"],
                "app_version": entry["app_version"],
                "subcharts": charts_in_manifest(str(record.get("manifest") or ""), entry["chart"]),
            }
        )
    return out


class ClusterRecords(ReleaseReader):
    """The same answers as Helm.history/release/values, from the storage objects."""

    def __init__(self, client: KubeClient, namespace: str, kind: str = "secrets") -> None:
        self.client = client
        self.namespace = namespace
        self.kind = kind
        self._decoded: dict[int, dict[str, Any]] = {}

    def _path(self, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/{self.kind}"
        return f"{base}/{name}" if name else base

    def history(self, release: str, max_revisions: int = 64) -> list[dict[str, Any]]:
        """Revisions (oldest first) with their revision number and status; [] when none. (The
        chart and description of a revision come with ``release``.)"""
        try:
            items = list(
                self.client.list_items(
                    self._path(), accept=METADATA_LIST_ACCEPT, labelSelector=f"owner=helm,name={release}"
                )
            )
        except KubeApiError as exc:
            raise HelmError(f"reading the records of release {release} failed: {exc.message}") from exc
        entries = []
        for item in items:
            labels = (item.get("metadata") or {}).get("labels") or {}
            try:
                entries.append({"revision": int(labels["version"]), "status": labels.get("status", "")})
            except (KeyError, ValueError):
                continue  # not a record helm wrote
        entries.sort(key=lambda e: e["revision"])
        return entries[-max_revisions:]

    def record(self, release: str, revision: int) -> dict[str, Any]:
        if revision not in self._decoded:
            name = f"sh.helm.release.v1.{release}.v{revision}"
            try:
                obj = self.client.request("GET", self._path(name))
                self._decoded[revision] = decode_record(
                    (obj.get("data") or {}).get("release", ""), secret=self.kind == "secrets"
                )
            except KubeApiError as exc:
                raise HelmError(f"reading {self.kind[:-1]} {name} of release {release} failed: {exc.message}") from exc
            except (ValueError, OSError) as exc:  # bad base64, gzip or JSON
                raise HelmError(f"the record {name} of release {release} is not a helm release: {exc}") from exc
        return self._decoded[revision]

    def read(self, release: str, entry: dict[str, Any], values: bool) -> dict[str, Any]:
        rel = self.record(release, int(entry["revision"]))
        summary = history_entry(rel)
        out: dict[str, Any] = {
            "name": release,
            "namespace": self.namespace,
            "version": int(entry["revision"]),
            "info": {"status": summary["status"], "description": summary["description"]},
            "chart_ref": summary["chart"],
            "app_version": summary["app_version"],
            "chart": {"metadata": (rel.get("chart") or {}).get("metadata") or {}},
            "manifest": rel.get("manifest", ""),
            "hooks": [{"manifest": h.get("manifest", "")} for h in rel.get("hooks") or [] if h.get("manifest")],
        }
        if values:
            out["config"] = rel.get("config") or {}
        return out

    def values(self, release: str, revision: int) -> dict[str, Any]:
        return self.record(release, revision).get("config") or {}

    def latest_entry(self, release: str) -> dict[str, Any] | None:
        """The newest revision as a `helm history` entry (revision, status, chart, app_version,
        description); None when the release has none."""
        entry = pick_entry(self.history(release))
        if entry is None:
            return None
        self._decoded.pop(entry["revision"], None)  # it may have just been written
        return history_entry(self.record(release, entry["revision"]))
