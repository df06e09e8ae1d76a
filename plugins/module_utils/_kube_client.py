# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Kubernetes API client built from the connection options kubernetes.core uses (collection-private).

Modules of this collection take the same connection options as kubernetes.core's modules, with
the same names and the same ``K8S_AUTH_*`` environment variables (``KUBECONFIG_ARG_SPEC`` below,
documented once in the ``mybinder.deploy.kube_connection`` doc fragment), so a play can pass one
set of connection variables to both.

Credentials are loaded by the kubernetes Python client (kubeconfig files and dicts, exec and
token plugins, in-cluster service accounts). Requests then go through that client's own
transport (``ApiClient.param_serialize`` and ``call_api``: authentication, TLS, proxies, token
refresh) but send and return plain JSON. Why not the generated typed methods: a node with 1000
pods would be turned into 1000 pydantic models per listing, which costs seconds of CPU per poll,
and the drain logic in ``_drain`` works on the API's JSON dictionaries so it can be unit tested
without the client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

KUBERNETES_IMPORT_ERROR: str | None
try:
    import kubernetes
    from kubernetes.client.exceptions import ApiException
except ImportError as exc:  # reported by the module with missing_required_lib()
    KUBERNETES_IMPORT_ERROR = str(exc)
else:
    KUBERNETES_IMPORT_ERROR = None

try:
    from ansible.module_utils.basic import env_fallback
except ImportError:  # pragma: no cover - only without ansible-core (never in a module)

    def env_fallback(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        raise LookupError


def _env(*names: str) -> tuple[Any, list[str]]:
    return (env_fallback, list(names))


# Same option names, aliases, types and environment variables as kubernetes.core's
# k8s_auth_options (basic auth, persist_config, proxy_headers and impersonation are left out).
KUBE_CONNECTION_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "raw", "no_log": True, "fallback": _env("K8S_AUTH_KUBECONFIG")},
    "context": {"type": "str", "fallback": _env("K8S_AUTH_CONTEXT")},
    "host": {"type": "str", "fallback": _env("K8S_AUTH_HOST")},
    "api_key": {"type": "str", "no_log": True, "fallback": _env("K8S_AUTH_API_KEY")},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": _env("K8S_AUTH_VERIFY_SSL")},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": _env("K8S_AUTH_SSL_CA_CERT")},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": _env("K8S_AUTH_CERT_FILE")},
    "client_key": {"type": "path", "aliases": ["key_file"], "fallback": _env("K8S_AUTH_KEY_FILE")},
    "proxy": {"type": "str", "fallback": _env("K8S_AUTH_PROXY")},
    "no_proxy": {"type": "str", "fallback": _env("K8S_AUTH_NO_PROXY")},
}


class KubeConnectionError(Exception):
    """The connection options do not lead to a usable client."""


class KubeApiError(Exception):
    """A non-2xx answer. ``status`` is the HTTP code, ``body`` the decoded Status object (if any)."""

    def __init__(self, status: int, reason: str, body: dict[str, Any] | None, method: str, path: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        message = (body or {}).get("message") or reason or "no message"
        self.message = str(message)
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")

    def has_cause(self, reason: str) -> bool:
        return any(c.get("reason") == reason for c in ((self.body or {}).get("details") or {}).get("causes") or [])


def _configuration(params: Mapping[str, Any]) -> Any:
    cfg = kubernetes.client.Configuration()
    host = params.get("host")
    kubeconfig = params.get("kubeconfig")
    context = params.get("context")
    direct = bool(host) and (
        bool(params.get("api_key")) or bool(params.get("client_cert") and params.get("client_key"))
    )
    try:
        if direct:
            pass
        elif kubeconfig or context:
            if isinstance(kubeconfig, Mapping):
                kubernetes.config.load_kube_config_from_dict(
                    config_dict=dict(kubeconfig), context=context, client_configuration=cfg, persist_config=False
                )
            else:
                kubernetes.config.load_kube_config(
                    config_file=kubeconfig or None, context=context, client_configuration=cfg, persist_config=False
                )
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=cfg)
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(client_configuration=cfg, persist_config=False)
    except (kubernetes.config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = "the kubeconfig given" if kubeconfig else "KUBECONFIG or ~/.kube/config"
        raise KubeConnectionError(
            f"could not load Kubernetes credentials from {where}"
            + (f" (context {context})" if context else "")
            + f": {str(exc).rstrip('.')}. Set kubeconfig (or K8S_AUTH_KUBECONFIG) and context, or host with api_key"
        ) from exc
    if host:
        cfg.host = str(host).rstrip("/")
    if params.get("api_key"):
        cfg.api_key = {"authorization": "Bearer " + str(params["api_key"])}
    if params.get("validate_certs") is not None:
        cfg.verify_ssl = bool(params["validate_certs"])
    for option, attribute in (("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"), ("client_key", "key_file")):
        if params.get(option):
            setattr(cfg, attribute, params[option])
    if params.get("proxy"):
        cfg.proxy = params["proxy"]
    if params.get("no_proxy"):
        cfg.no_proxy = params["no_proxy"]
    return cfg


class KubeClient:
    """JSON in, JSON out, over the kubernetes client's transport. Thread safe (urllib3 pool)."""

    def __init__(self, api_client: Any, request_timeout: float = 60.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None]
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query_params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=timeout or self.request_timeout)
        except ApiException as exc:  # transport-level failures the client turns into exceptions
            raise KubeApiError(int(exc.status or 0), str(exc.reason), None, method, path) from exc
        data = response.read()
        decoded: Any = None
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {"message": data[:500].decode("utf-8", "replace")}
        if not 200 <= response.status <= 299:
            raise KubeApiError(
                response.status, response.reason or "", decoded if isinstance(decoded, dict) else None, method, path
            )
        return decoded

    def list_items(self, path: str, *, page_size: int = 500, **query: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``continue`` tokens."""
        token = None
        while True:
            page = self.request("GET", path, query={**query, "limit": page_size, "continue": token})
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return


def build_client(params: Mapping[str, Any], *, pool_size: int = 10, user_agent: str | None = None) -> KubeClient:
    """A KubeClient from module parameters named as in kubernetes.core (see KUBE_CONNECTION_ARG_SPEC).
    ``pool_size`` is the number of connections kept open: at least the number of threads that
    send requests at the same time."""
    if KUBERNETES_IMPORT_ERROR is not None:
        raise KubeConnectionError(f"the kubernetes Python library is missing: {KUBERNETES_IMPORT_ERROR}")
    cfg = _configuration(params)
    cfg.connection_pool_maxsize = max(int(pool_size), 4)
    api_client = kubernetes.client.ApiClient(cfg)
    api_client.user_agent = user_agent or "mybinder.deploy"
    return KubeClient(api_client)


def connection_params_from_env() -> dict[str, Any]:
    """The connection options as the K8S_AUTH_* variables set them (for scripts and tests that
    use build_client outside a module)."""
    params: dict[str, Any] = {}
    for name, spec in KUBE_CONNECTION_ARG_SPEC.items():
        for var in spec["fallback"][1]:
            if var in os.environ:
                params[name] = os.environ[var]
    return params
