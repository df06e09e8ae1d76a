# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API server's dry run of a rendered release (collection-private): what `helm upgrade
--dry-run` does not check (types, quantities, required fields, admission), checked before an
upgrade changes anything.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._helm_manifests import (
    hook_objects,
    is_test_hook,
    split_manifest,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import (
    KubeObjectError,
    Resources,
    dry_run_apply,
    dry_run_create,
)


def server_validate(client: Any, namespace: str, release: dict[str, Any]) -> str | None:
    """Send every rendered object to the API server as a dry run (``client``: a _kube_client
    KubeClient).

    `helm upgrade --dry-run` only renders: a value of the wrong type (replicas: "two"), an invalid
    quantity or a missing required field passes it, and the real upgrade then fails half way, after
    some objects were already changed. The API server's dry run checks all of that (and admission)
    without changing anything. Each object of the release is dry-run as a server-side apply; when
    the server refuses that for an object that exists, the object is dry-run once more as a
    replacement of the live one, and accepted if that passes: a server-side apply keeps fields that
    another manager (helm) wrote and the new render dropped, which can make a valid change look
    invalid (switching a Deployment to Recreate keeps helm's rollingUpdate), while helm's own
    three-way merge removes them. Hooks are dry-run as creations under a generated name (helm
    deletes and recreates those, so an old hook Job whose immutable fields differ is no reason to
    refuse). Returns None when every object is accepted, the server's message otherwise; "" when
    the namespace does not exist yet (a first install: nothing to protect, and namespaced objects
    cannot be checked before their namespace exists)."""
    resources = Resources(client)
    checks = [(obj, False) for obj in split_manifest(release.get("manifest", ""), namespace).values()]
    # Test hooks are created only by `helm test`, never by an install or upgrade (a chart's test
    # Pod may use a ServiceAccount that only the release creates, which a dry run cannot see).
    checks += [(obj, True) for obj in hook_objects(release, namespace).values() if not is_test_hook(obj)]

    def check(item: tuple[dict[str, Any], bool]) -> str | None:
        obj, hook = item
        return (dry_run_create if hook else dry_run_apply)(client, resources, obj, namespace)

    try:
        # API discovery first, one request per group version (its cache is not shared safely
        # between threads); then the dry runs, a few at a time: each is a round trip of a few
        # milliseconds, and a release has dozens of objects. The first problem in manifest order wins.
        for obj, _hook in checks:
            resources.find(obj.get("apiVersion", ""), obj.get("kind", ""))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for problem in pool.map(check, checks):
                if problem is None:
                    continue
                if f'namespaces "{namespace}" not found' in problem:
                    return ""
                return problem
    except KubeObjectError as exc:
        return str(exc)
    except KubeApiError as exc:
        return exc.message
    return None
