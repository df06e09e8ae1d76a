# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and server-side applying Kubernetes objects as plain JSON (collection-private).

Why not kubernetes.core.k8s / k8s_info: they are right, but every task is a Python process that
imports the kubernetes client and loads its API discovery (about a second each here), and the
deploy reads and applies a handful of objects per stage. These modules run in Ansible's worker
process (plugin_utils/_inprocess.py) over _kube_client's connection, discover only the API
groups they touch, and decide "changed" the way kubernetes.core does for a server-side apply:
the object before and after, compared without the fields the server maintains.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, KubeClient

# Fields the API server writes on every change, or that say nothing about the desired state.
_VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")
# Metadata only (a Secret's data never leaves the API server): for a list, and for one object.
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class KubeObjectError(ModuleError):
    pass


class Resources:
    """API discovery for the group versions asked about, one request per group version."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._groups: dict[str, list[dict[str, Any]] | None] = {}

    def find(self, api_version: str, kind: str) -> dict[str, Any] | None:
        """The resource (name, namespaced, ...) serving kind in api_version; None if the server has none."""
        if api_version not in self._groups:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                self._groups[api_version] = self.client.request("GET", base).get("resources") or []
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
                self._groups[api_version] = None
        for res in self._groups[api_version] or []:
            if res.get("kind") == kind and "/" not in res.get("name", ""):
                return res
        return None

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        res = self.find(api_version, kind)
        if res is None:
            raise KubeObjectError(f"the API server does not serve {kind} in {api_version}")
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if res.get("namespaced") and namespace:
            base += f"/namespaces/{namespace}"
        out = f"{base}/{res['name']}"
        return f"{out}/{name}" if name else out


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def normalized(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """obj without status and the metadata the server maintains."""
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in _VOLATILE_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def apply(
    client: KubeClient,
    resources: Resources,
    definition: dict[str, Any],
    field_manager: str,
    force_conflicts: bool,
    dry_run: bool,
    default_namespace: str | None = None,
) -> dict[str, Any]:
    """Server-side apply one object; returns key, changed, created, before and after."""
    meta = definition.get("metadata") or {}
    if not definition.get("apiVersion") or not definition.get("kind") or not meta.get("name"):
        raise KubeObjectError(f"an object needs apiVersion, kind and metadata.name: {object_key(definition)}")
    body, base = _placed(resources, definition, default_namespace or "default")
    path = f"{base}/{meta['name']}"
    try:
        before = client.request("GET", path)
    except KubeApiError as exc:
        if exc.status != 404:
            raise
        before = None
    query = {"fieldManager": field_manager, "force": "true" if force_conflicts else None}
    if dry_run:
        query["dryRun"] = "All"
    after = client.request(
        "PATCH", path, query=query, body=json.dumps(body), content_type="application/apply-patch+yaml"
    )
    changed = before is None or normalized(before) != normalized(after)
    return {
        "key": object_key(body),
        "changed": changed,
        "created": before is None,
        "before": before,
        "after": after,
    }


def _placed(resources: Resources, obj: dict[str, Any], namespace: str) -> tuple[dict[str, Any], str]:
    """A copy of obj with its namespace settled, and the path of its collection."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    res = resources.find(api_version, kind)
    if res is None:
        raise KubeObjectError(
            f"the API server does not serve {kind} in {api_version} ({object_key(obj)}); "
            "are its CustomResourceDefinitions installed?"
        )
    body = copy.deepcopy(obj)
    meta = body.setdefault("metadata", {})
    if res.get("namespaced"):
        meta["namespace"] = meta.get("namespace") or namespace
    else:
        meta.pop("namespace", None)
    return body, resources.path(api_version, kind, meta.get("namespace"))


# A dry run that refuses unknown and duplicate fields, as a server-side apply does by default.
STRICT_DRY_RUN = {"dryRun": "All", "fieldValidation": "Strict"}


def dry_run_apply(client: KubeClient, resources: Resources, obj: dict[str, Any], namespace: str) -> str | None:
    """None when the server accepts obj as a server-side apply, or else as a replacement of the
    live object; the server's message otherwise (see _helm_validate.server_validate)."""
    body, base = _placed(resources, obj, namespace)
    path = f"{base}/{body['metadata'].get('name', '')}"
    query = {"fieldManager": "mybinder-deploy-validate", "force": "true", "dryRun": "All"}
    try:
        client.request("PATCH", path, query=query, body=json.dumps(body), content_type="application/apply-patch+yaml")
        return None
    except KubeApiError as exc:
        problem = exc.message
        if exc.status not in (409, 422, 500):  # conflicts and invalid objects may be the merge's doing
            return problem
    try:
        live = client.request("GET", path)
    except KubeApiError:
        return problem
    body["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
    try:
        # As strict as the apply (the API's default for a PUT only warns, dropping a misspelt field)
        client.request("PUT", path, query={**STRICT_DRY_RUN, "fieldManager": "mybinder-deploy-validate"}, body=body)
        return None
    except KubeApiError:
        return problem


def missing(client: KubeClient, resources: Resources, objects: dict[str, dict[str, Any]], namespace: str) -> list[str]:
    """The keys of ``objects`` that do not exist in the cluster.

    One metadata-only list per collection (kind and namespace) on one connection: a release has a
    few dozen objects of a handful of kinds, so this is a few small requests instead of one per object
    (each of which, in parallel, would open a TLS connection of its own)."""
    wanted: dict[str, list[tuple[str, str]]] = {}
    gone: list[str] = []
    for key, obj in objects.items():
        try:
            body, base = _placed(resources, obj, namespace)
        except KubeObjectError:
            gone.append(key)  # its kind is not even served
            continue
        wanted.setdefault(base, []).append((key, str(body["metadata"].get("name", ""))))
    for base, entries in wanted.items():
        present = {
            (item.get("metadata") or {}).get("name") for item in client.list_items(base, accept=METADATA_LIST_ACCEPT)
        }
        gone += [key for key, name in entries if name not in present]
    return sorted(gone)


def create_namespace(client: KubeClient, namespace: str) -> bool:
    """Create the namespace as `helm --create-namespace` does (label name=<namespace>) unless it
    exists; True when this call created it."""
    try:
        client.request("GET", f"/api/v1/namespaces/{namespace}", accept=METADATA_ACCEPT)
        return False
    except KubeApiError as exc:
        if exc.status != 404:
            raise
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"name": namespace}}}
    try:
        client.request("POST", "/api/v1/namespaces", body=body)
    except KubeApiError as exc:
        if exc.status == 409:  # created meanwhile by someone else
            return False
        raise
    return True


def delete_namespace(client: KubeClient, namespace: str, seconds: float = 30.0) -> str:
    """Delete a namespace this run created for a check, and wait until it is gone (an empty one
    goes within seconds; a Terminating one would refuse the next run's install). Says what happened."""
    try:
        client.request("DELETE", f"/api/v1/namespaces/{namespace}")
    except KubeApiError as exc:
        return f"namespace {namespace}, created for this check, could not be deleted: {exc.message}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.request("GET", f"/api/v1/namespaces/{namespace}", accept=METADATA_ACCEPT)
        except KubeApiError as exc:
            if exc.status == 404:
                return f"namespace {namespace}, created for this check, was deleted again"
        time.sleep(0.2)
    return f"namespace {namespace}, created for this check, is being deleted"


def dry_run_create(client: KubeClient, resources: Resources, obj: dict[str, Any], namespace: str) -> str | None:
    """None when the server accepts creating obj under a generated name; its message otherwise."""
    body, base = _placed(resources, obj, namespace)
    meta = body["metadata"]
    meta["generateName"] = str(meta.pop("name", "hook"))[:50] + "-"
    try:
        client.request("POST", base, query={**STRICT_DRY_RUN, "fieldManager": "mybinder-deploy-validate"}, body=body)
        return None
    except KubeApiError as exc:
        return exc.message


def wait_established(client: KubeClient, resources: Resources, names: list[str], seconds: float) -> list[str]:
    """Wait until the named CustomResourceDefinitions are Established; return those that are not."""
    path = resources.path("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    deadline = time.monotonic() + seconds
    pending = list(names)
    while pending:
        still = []
        for name in pending:
            crd = client.request("GET", f"{path}/{name}")
            conditions = (crd.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                still.append(name)
        pending = still
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)
    return []


def read(
    client: KubeClient,
    resources: Resources,
    api_version: str,
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
) -> tuple[bool, list[dict[str, Any]]]:
    """(whether the server serves the kind, the matching objects)."""
    if resources.find(api_version, kind) is None:
        return False, []
    path = resources.path(api_version, kind, namespace, name)
    if name:
        try:
            obj = client.request("GET", path, accept=METADATA_ACCEPT if metadata_only else "application/json")
        except KubeApiError as exc:
            if exc.status == 404:
                return True, []
            raise
        return True, [obj]
    items = list(
        client.list_items(
            path,
            accept=METADATA_LIST_ACCEPT if metadata_only else "application/json",
            labelSelector=label_selector,
            fieldSelector=field_selector,
        )
    )
    if not metadata_only:  # list items come without them
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
    return True, items
