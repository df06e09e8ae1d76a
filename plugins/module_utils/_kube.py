# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes API access for the collection's read-only deploy modules (cluster_check,
rollout_status, verify_namespace): a JSON client from a kubeconfig, and failures turned into
messages that say what is wrong and what to do (unreachable API server, rejected or expired
credentials, missing context, a kubeconfig still encrypted by git-crypt).

Plain kubeconfig contexts (server, CA, client certificate or static token) are read directly and
requests go through urllib3, without importing the kubernetes package (about 0.3-0.7 s of CPU
per module run); every other context (exec plugins such as gke-gcloud-auth-plugin, auth
providers, proxies) is loaded by the kubernetes Python client and uses its transport. Both are
the transports of ``_kube_client`` (node_drain's client); this file adds the deploy's messages.
The typed API classes are never used: plain JSON paths read like `kubectl get --raw`.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import HEADER as GITCRYPT_HEADER
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KubeApiError,
    LibraryTransport,
    Urllib3Transport,
    simple_credentials,
)

# Whether the library is there at all, without paying for its import (only non-plain
# kubeconfig contexts need it; connect() imports it then).
HAS_KUBERNETES = importlib.util.find_spec("kubernetes") is not None
KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else "No module named 'kubernetes'"


try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False


class KubeError(Exception):
    """A Kubernetes access failure with a message meant for the operator. `status` is the HTTP
    status when the API server answered."""

    def __init__(self, msg: str, status: int | None = None):
        super().__init__(msg)
        self.status = status


@dataclass
class Target:
    """Which cluster a kubeconfig and context point at (for messages)."""

    kubeconfig: str
    context: str
    server: str
    user: str


def kubeconfig_path(kubeconfig: str | None) -> str:
    if kubeconfig:
        return os.path.expanduser(kubeconfig)
    env = os.environ.get("KUBECONFIG", "")
    return env.split(os.pathsep)[0] if env else os.path.expanduser("~/.kube/config")


def read_kubeconfig(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as exc:
        raise KubeError(f"kubeconfig {path} does not exist") from exc
    except OSError as exc:
        raise KubeError(f"kubeconfig {path} cannot be read: {exc.strerror}") from exc
    if raw.startswith(GITCRYPT_HEADER):
        raise KubeError(
            f"kubeconfig {path} is still encrypted by git-crypt: unlock the secrets first (the secrets stage)"
        )
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise KubeError(f"kubeconfig {path} is not valid YAML") from exc
    if not isinstance(data, dict):
        raise KubeError(f"kubeconfig {path} is not a kubeconfig (expected a mapping with clusters, users, contexts)")
    return data


def resolve(data: dict[str, Any], path: str, context: str | None) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """(context name, cluster entry, user entry, user name) of a kubeconfig."""
    name = context or data.get("current-context") or ""
    contexts = {c.get("name"): c.get("context") or {} for c in data.get("contexts") or []}
    known = ", ".join(sorted(map(str, contexts))) or "none"
    if not name:
        raise KubeError(f"kubeconfig {path} has no current-context and no context was given (contexts: {known})")
    if name not in contexts:
        raise KubeError(f"context {name!r} is not in kubeconfig {path} (contexts: {known})")
    ctx = contexts[name]
    clusters = {c.get("name"): c.get("cluster") or {} for c in data.get("clusters") or []}
    users = {u.get("name"): u.get("user") or {} for u in data.get("users") or []}
    if ctx.get("cluster") not in clusters:
        raise KubeError(
            f"context {name!r} of kubeconfig {path} names cluster {ctx.get('cluster')!r}, "
            "which the file does not define"
        )
    return name, clusters[ctx.get("cluster")], users.get(ctx.get("user"), {}), str(ctx.get("user") or "")


def client_certificate(kubeconfig: str | None, context: str | None) -> dict[str, Any] | None:
    """Validity of the client certificate the context authenticates with, or None when it uses none.
    An expired client certificate makes the API server answer a bare 401."""
    path = kubeconfig_path(kubeconfig)
    data = read_kubeconfig(path)
    _ctx_name, _cluster, user, user_name = resolve(data, path, context)
    pem: bytes | None = None
    source = ""
    if user.get("client-certificate-data"):
        pem = base64.b64decode(user["client-certificate-data"])
        source = f"client-certificate-data of user {user_name} in {path}"
    elif user.get("client-certificate"):
        cert_path = user["client-certificate"]
        if not os.path.isabs(cert_path):
            cert_path = os.path.join(os.path.dirname(path), cert_path)
        source = cert_path
        try:
            with open(cert_path, "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise KubeError(
                f"client certificate {cert_path} (user {user_name} in {path}) cannot be read: {exc.strerror}"
            ) from exc
    if pem is None:
        return None
    try:
        from cryptography import x509
    except ImportError:
        return {"source": source, "not_after": None, "days_left": None, "expired": None}
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise KubeError(f"the client certificate ({source}) is not a PEM certificate") from exc
    not_after = cert.not_valid_after_utc
    now = datetime.datetime.now(datetime.UTC)
    return {
        "source": source,
        "not_after": not_after.isoformat(),
        "days_left": int((not_after - now).total_seconds() // 86400),
        "expired": not_after <= now,
    }


class Kube:
    """JSON in, JSON out, over a ``_kube_client`` transport; failures become KubeError messages."""

    def __init__(self, transport: LibraryTransport | Urllib3Transport, target: Target, timeout: float):
        self.transport = transport
        self.target = target
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            status, reason, data = self.transport.send(method, path, params, headers, body, timeout or self.timeout)
        except KubeApiError as exc:  # refused by the server (library path) or not reached (direct path)
            cause = exc if exc.status else (exc.__cause__ or exc)
            raise KubeError(explain(cause, self.target), exc.status or None) from exc
        except Exception as exc:
            if isinstance(exc, OSError) or _is_urllib3_error(exc):
                raise KubeError(explain(exc, self.target)) from exc
            raise
        decoded: Any = None
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {"message": data[:300].decode("utf-8", "replace")}
        if not 200 <= status <= 299:
            raise KubeError(explain_status(status, reason, decoded, self.target), status)
        return decoded

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query)

    def get_or_none(self, path: str, **query: Any) -> Any:
        try:
            return self.get(path, **query)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, path: str, **query: Any) -> list[dict[str, Any]]:
        """Every item of a list, following `continue` tokens."""
        out: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.get(path, limit=500, **{"continue": token}, **query)
            out.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return out


def connect(kubeconfig: str | None, context: str | None, timeout: float = 15.0) -> Kube:
    """A client for the kubeconfig/context, failing fast (no retries) when unreachable."""
    path = kubeconfig_path(kubeconfig)
    data = read_kubeconfig(path)
    ctx_name, cluster, user, user_name = resolve(data, path, context)
    target = Target(kubeconfig=path, context=ctx_name, server=str(cluster.get("server", "")), user=user_name)
    base = os.path.dirname(os.path.abspath(path))
    simple = simple_credentials(cluster, user, base)
    if simple is not None:
        try:
            return Kube(Urllib3Transport(simple, 4, "mybinder.deploy"), target, timeout)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise KubeError(f"kubeconfig {path} (context {ctx_name}) cannot be used: {exc}") from exc
    if not HAS_KUBERNETES:
        raise KubeError(
            f"kubeconfig {path} (context {ctx_name}) needs the kubernetes Python library (its user is not a plain "
            "certificate or token): install it into the Python that runs the modules (pip install kubernetes)"
        )
    from kubernetes.client.api_client import ApiClient
    from kubernetes.client.configuration import Configuration
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    cfg = Configuration()
    try:
        # Python's ssl module loads client certificates from files only, so the client writes
        # embedded certificate and key data to temporary files (0600, removed at exit). Put them
        # next to the kubeconfig - inside the repository's secret tree when the kubeconfig is a
        # secret - instead of the system's temporary directory.
        loader = kube_config.KubeConfigLoader(
            config_dict=data, active_context=ctx_name, config_base_path=base, temp_file_path=base
        )
        loader.load_and_set(cfg)
    except (ConfigException, ValueError, OSError) as exc:
        raise KubeError(f"kubeconfig {path} (context {ctx_name}) cannot be used: {exc}") from exc
    cfg.retries = 0
    return Kube(LibraryTransport(ApiClient(configuration=cfg)), target, timeout)


def _is_urllib3_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("urllib3")


def explain_status(status: int, reason: str, body: Any, target: Target) -> str:
    where = f"the Kubernetes API at {target.server} (context {target.context} in {target.kubeconfig})"
    message = (body or {}).get("message") if isinstance(body, dict) else None
    if status == 401:
        msg = f"{where} rejected the credentials of user {target.user} (401 Unauthorized)"
        try:
            cert = client_certificate(target.kubeconfig, target.context)
        except KubeError:
            cert = None
        if cert and cert.get("expired"):
            return msg + f": its client certificate expired on {cert['not_after']}; get a new kubeconfig"
        return msg + ": the token or certificate is not (or no longer) valid for this cluster; get fresh credentials"
    if status == 403:
        return f"{where} answered 403 Forbidden for user {target.user}: {message or reason}"
    return f"{where} answered {status} {reason}: {message or ''}".rstrip(": ")


def explain(exc: BaseException, target: Target) -> str:
    """An operator-facing message for a failure: an HTTP status, or a transport error."""
    where = f"the Kubernetes API at {target.server} (context {target.context} in {target.kubeconfig})"
    if isinstance(exc, KubeApiError) and exc.status:
        return explain_status(exc.status, exc.reason, exc.body, target)
    inner: BaseException | None = exc
    if type(exc).__name__ == "MaxRetryError":  # urllib3 wraps the real error (library path)
        inner = getattr(exc, "reason", None) or exc
    if type(inner).__name__ == "SSLError" or isinstance(inner, ssl.SSLError):
        return (
            f"TLS with {where} failed: {inner} "
            "(wrong certificate-authority in the kubeconfig, or another server at that address)"
        )
    return f"cannot reach {where}: {short(inner)}. Is the cluster running, and the address right?"


def short(exc: BaseException | None) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "No route to host",
        "Temporary failure in name resolution",
    ):
        if marker in text:
            return marker.lower()
    return text
