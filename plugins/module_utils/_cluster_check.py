# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster_check runner (collection-private): which cluster answers (server version, URL,
context, user), whether the credentials work, and how long the client certificate stays valid.

The module (plugins/modules/cluster_check.py) only documents, declares its options and calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KubeError,
    client_certificate,
    connect,
    kubeconfig_path,
    read_kubeconfig,
    resolve,
)


def run(p: dict[str, Any], warn: Callable[[str], None]) -> dict:
    """One run of cluster_check with its module parameters; ``warn`` receives warnings."""
    # Judge the client certificate before connecting: an expired one gets a bare 401, and the
    # client would write its embedded key to a temporary file first.
    path = kubeconfig_path(p["kubeconfig"])
    context, cluster, _user, user = resolve(read_kubeconfig(path), path, p["context"])
    cert = client_certificate(p["kubeconfig"], p["context"])
    if cert and cert.get("expired"):
        raise KubeError(
            f"the client certificate of user {user} ({cert['source']}) expired on {cert['not_after']}: "
            f"the cluster {cluster.get('server', '')} will refuse it. Get a new kubeconfig for context {context} "
            "(for a kubeconfig kept in the secret repository: regenerate it on the cluster and commit the new one)"
        )
    kube = connect(p["kubeconfig"], p["context"], timeout=p["timeout"])
    target = kube.target
    if cert and cert.get("days_left") is not None and cert["days_left"] < p["min_certificate_days"]:
        warn(
            f"the client certificate of user {target.user} ({cert['source']}) expires in {cert['days_left']} days "
            f"({cert['not_after']}): renew it before deploys start failing"
        )
    version = kube.get("/version")
    user = ""
    try:
        review = kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        user = ((review.get("status") or {}).get("userInfo") or {}).get("username", "")
    except KubeError as exc:
        if exc.status != 404:
            raise
        # Servers before 1.28 have no SelfSubjectReview: any authenticated read proves the credentials.
        kube.get("/api/v1/namespaces", limit=1)
    return {
        "changed": False,
        "server": target.server,
        "context": target.context,
        "server_version": version.get("gitVersion", ""),
        "version": version,
        "user": user,
        "client_certificate": cert,
    }
