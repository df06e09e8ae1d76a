# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kube_read runner (collection-private): the objects of one kind the parameters select, read
through the one client (_kube_client.py), none when the API does not serve the kind.

The module (plugins/modules/kube_read.py) only documents, declares its options and calls ``read_resources``.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError, build_client
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import Resources, read


def read_resources(p: dict[str, Any]) -> dict[str, Any]:
    """The objects the parameters ask for (none when the API does not serve the kind)."""
    try:
        client = build_client(p, user_agent="mybinder.deploy/kube_read")
        found, items = read(
            client,
            Resources(client),
            p["api_version"],
            p["kind"],
            namespace=p["namespace"],
            name=p["name"],
            label_selector=",".join(p["label_selectors"]) or None,
            field_selector=",".join(p["field_selectors"]) or None,
            metadata_only=p["metadata_only"],
        )
    except KubeApiError as exc:
        raise ModuleError(f"reading {p['kind']} failed: {exc}", status=exc.status) from exc
    return {"changed": False, "api_found": found, "resources": items}
