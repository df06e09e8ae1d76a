# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one Kubernetes access layer (collection-private): connection, requests, JSON
decoding, errors, and the operator's diagnostics.

A client is made in one of two ways, and both give the same ``KubeClient``:

- ``build_client(params)``: from the connection options kubernetes.core uses (below);
- ``connect(kubeconfig, context)``: from a kubeconfig and a context, for the deploy's modules
  (cluster_check, rollout_status, verify_namespace). Such a client knows which cluster it talks
  to (``Target``) and turns every failure into a ``KubeError`` whose message says what is wrong
  and what to do: unreachable API server, TLS with the wrong server, rejected or expired
  credentials (the expiry of the client certificate is read from the kubeconfig), missing
  context, a kubeconfig still encrypted by git-crypt (``explain``, ``explain_status``).

Errors: ``KubeError`` is the root (a ``_errors.ModuleError``); ``KubeConnectionError`` says the
options lead to no usable client, ``KubeApiError`` is a non-2xx answer with its status and
Status object.

Modules of this collection take the same connection options as kubernetes.core's modules, with
the same names and the same ``K8S_AUTH_*`` environment variables (``KUBE_CONNECTION_ARG_SPEC``
below, documented once in the ``mybinder.deploy.kube_connection`` doc fragment), so a play can
pass one set of connection variables to both; the modules that read the kubeconfig file
themselves or hand it to helm take its two options alone (``KUBECONFIG_ARG_SPEC``, fragment
``mybinder.deploy.kubeconfig``).

Credentials are loaded by the kubernetes Python client (kubeconfig files and dicts, exec and
token plugins, in-cluster service accounts). Requests then go through that client's own
transport (``ApiClient.param_serialize`` and ``call_api``: authentication, TLS, proxies, token
refresh) but send and return plain JSON. Why not the generated typed methods: a node with 1000
pods would be turned into 1000 pydantic models per listing, which costs seconds of CPU per poll,
and the drain logic in ``_drain`` works on the API's JSON dictionaries so it can be unit tested
without the client.

One exception, for speed: importing the kubernetes package costs about 0.7 s of CPU in every
module run (its kubeconfig loader pulls in google-auth, oauthlib and requests), more than a whole
drain of a small node takes. When the kubeconfig context is the plain kind - a server, a CA, and a
client certificate and key or a static token, as kubeadm, k3s, OVH and this project's local
cluster write them - ``simple_kubeconfig`` reads it itself and requests go straight through
urllib3 (which the kubernetes client uses underneath). Everything else (exec plugins such as
gke-gcloud-auth-plugin, auth-provider, basic auth, proxies, in-cluster service accounts, any
option given directly) goes through the kubernetes client as above. Key material given inline
(``client-key-data``) is loaded from an anonymous in-memory file (Linux memfd), never a file on
disk; where that is not available the kubernetes client is used.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError, Requirement
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import read_unlocked, yaml

# Whether the library is there at all, without paying for its import (only non-plain
# kubeconfig contexts need it; connect() imports it then).
HAS_KUBERNETES = importlib.util.find_spec("kubernetes") is not None
KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else "No module named 'kubernetes'"
# The requirement of the modules that need the library up front (_errors.conclude checks it).
KUBERNETES = Requirement(
    HAS_KUBERNETES, "kubernetes", KUBERNETES_IMPORT_ERROR, url="https://pypi.org/project/kubernetes/"
)


def _import_kubernetes() -> Any:
    """The kubernetes package, imported on first use (see the module docstring for why)."""
    try:
        import kubernetes
        import kubernetes.client.exceptions
    except ImportError as exc:
        raise KubeConnectionError(
            f"the kubernetes Python library is missing ({exc}); these credentials need it: install it into the Python "
            "that runs the modules (pip install kubernetes)"
        ) from exc
    return kubernetes


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


# The kubeconfig file and context alone, for the modules that read the file themselves (connect) or
# hand it to helm: the names, aliases and environment variables of kubernetes.core.helm
# (documented in the mybinder.deploy.kubeconfig doc fragment).
KUBECONFIG_ARG_SPEC: dict[str, dict[str, Any]] = {
    "kubeconfig": {"type": "path", "aliases": ["kubeconfig_path"], "fallback": _env("K8S_AUTH_KUBECONFIG")},
    "context": {"type": "str", "aliases": ["kube_context"], "fallback": _env("K8S_AUTH_CONTEXT")},
}


class KubeError(ModuleError):
    """A Kubernetes access failure with a message meant for the operator. ``status`` is the HTTP
    status when the API server answered."""

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.status = status


class KubeConnectionError(KubeError):
    """The connection options do not lead to a usable client."""


class KubeApiError(KubeError):
    """A non-2xx answer. ``status`` is the HTTP code, ``body`` the decoded Status object (if any)."""

    def __init__(self, status: int, reason: str, body: dict[str, Any] | None, method: str, path: str) -> None:
        self.reason = reason
        self.body = body
        message = (body or {}).get("message") or reason or "no message"
        self.message = str(message)
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}", status)

    def has_cause(self, reason: str) -> bool:
        return any(c.get("reason") == reason for c in ((self.body or {}).get("details") or {}).get("causes") or [])


# ---- connection: kubeconfig, context, credentials


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
    raw = read_unlocked(path, "kubeconfig", "unlock the secrets first (the secrets stage)", KubeError)
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


@dataclass
class SimpleKubeconfig:
    """A kubeconfig context that needs no plugin: server, CA, client certificate or static token."""

    server: str
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None


_SIMPLE_CLUSTER_KEYS = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
_SIMPLE_USER_KEYS = {"client-certificate", "client-certificate-data", "client-key", "client-key-data", "token"}
_DIRECT_OPTIONS = ("host", "api_key", "validate_certs", "ca_cert", "client_cert", "client_key", "proxy", "no_proxy")


def _in_memory_file(data: bytes) -> str | None:
    """A path to ``data`` that exists only in memory (Linux memfd, closed on exec so no child
    process inherits it), or None where there is none."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    fd = os.memfd_create("mybinder-kube-credential", os.MFD_CLOEXEC)  # kept open for the life of the module
    os.write(fd, data)
    return f"/proc/self/fd/{fd}"


def simple_credentials(cluster: Mapping[str, Any], user: Mapping[str, Any], base: str) -> SimpleKubeconfig | None:
    """The server and credentials of a kubeconfig's cluster and user entries when they are the
    plain kind (see the module docstring), else None: the kubernetes client must load them.
    Relative file names are relative to ``base`` (the kubeconfig's directory)."""
    if set(cluster) - _SIMPLE_CLUSTER_KEYS or set(user) - _SIMPLE_USER_KEYS:
        return None
    if not str(cluster.get("server", "")).startswith("https://"):
        return None
    has_cert = bool(user.get("client-certificate-data") or user.get("client-certificate"))
    if has_cert != bool(user.get("client-key-data") or user.get("client-key")):
        return None  # a certificate without its key, or the reverse: the library names the problem

    def path_of(value: Any) -> str:
        return str(value) if os.path.isabs(str(value)) else os.path.join(base, str(value))

    def credential(data_key: str, file_key: str) -> str | None:
        if user.get(data_key):
            return _in_memory_file(base64.b64decode(user[data_key]))
        return path_of(user[file_key]) if user.get(file_key) else None

    out = SimpleKubeconfig(server=str(cluster["server"]), insecure=bool(cluster.get("insecure-skip-tls-verify")))
    if cluster.get("certificate-authority-data"):
        out.ca_data = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        out.ca_file = path_of(cluster["certificate-authority"])
    if user.get("token"):
        out.token = str(user["token"])
    if has_cert:
        out.cert_file = credential("client-certificate-data", "client-certificate")
        out.key_file = credential("client-key-data", "client-key") if out.cert_file else None
        if not out.key_file:
            return None  # no memfd on this system
    return out


def simple_kubeconfig(params: Mapping[str, Any]) -> SimpleKubeconfig | None:
    """simple_credentials of the context the connection options select, or None when the options
    or the kubeconfig need the kubernetes client (options given directly, merged files, errors)."""
    if any(params.get(option) not in (None, "") for option in _DIRECT_OPTIONS):
        return None
    kubeconfig = params.get("kubeconfig")
    base = os.getcwd()
    if isinstance(kubeconfig, Mapping):
        config: Any = kubeconfig
    else:
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if os.pathsep in str(path) or not os.path.isfile(str(path)):
            return None  # merged kubeconfigs, in-cluster: the library's job
        base = os.path.dirname(os.path.abspath(str(path)))
        if yaml is None:
            return None
        try:
            with open(str(path), encoding="utf-8") as fh:
                config = yaml.safe_load(fh)
        except (OSError, ValueError):
            return None
    try:
        name = params.get("context") or config.get("current-context")
        context = next(c["context"] for c in config.get("contexts") or [] if c.get("name") == name)
        cluster = next(c["cluster"] for c in config.get("clusters") or [] if c.get("name") == context.get("cluster"))
        user = next(u.get("user") or {} for u in config.get("users") or [] if u.get("name") == context.get("user"))
    except (StopIteration, AttributeError, KeyError, TypeError):
        return None  # the library says precisely what is wrong
    return simple_credentials(cluster, user, base)


# ---- transports


def _configuration(params: Mapping[str, Any]) -> Any:
    kubernetes = _import_kubernetes()
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


class LibraryTransport:
    """Requests through the kubernetes client (any kind of credentials)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.host = str(api_client.configuration.host)
        self.api_exception = _import_kubernetes().client.exceptions.ApiException

    def send(
        self, method: str, path: str, query: list[tuple[str, Any]], headers: dict[str, str], body: Any, timeout: float
    ) -> tuple[int, str, bytes]:
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=timeout)
        except self.api_exception as exc:  # transport-level failures the client turns into exceptions
            raise KubeApiError(int(exc.status or 0), str(exc.reason), None, method, path) from exc
        return response.status, response.reason or "", response.read()


class Urllib3Transport:
    """Requests straight through urllib3, for the credentials simple_kubeconfig understands."""

    def __init__(self, cfg: SimpleKubeconfig, pool_size: int, user_agent: str) -> None:
        import urllib3

        self.host = cfg.server.rstrip("/")
        self.headers = {"User-Agent": user_agent}
        if cfg.token:
            self.headers["Authorization"] = "Bearer " + cfg.token
        # Trust exactly the kubeconfig's CA, as the kubernetes client does (the system's CAs without one).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cfg.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif cfg.ca_file:
            context.load_verify_locations(cafile=cfg.ca_file)
        elif cfg.ca_data:
            context.load_verify_locations(cadata=cfg.ca_data.decode("ascii"))
        else:
            context.load_default_certs()
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=pool_size, block=True, ssl_context=context)
        self.urllib3 = urllib3

    def send(
        self, method: str, path: str, query: list[tuple[str, Any]], headers: dict[str, str], body: Any, timeout: float
    ) -> tuple[int, str, bytes]:
        url = self.host + path + ("?" + urlencode(query) if query else "")
        # A str body is sent as it is (e.g. an apply patch); anything else as JSON.
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
        try:
            response = self.pool.request(
                method,
                url,
                body=data,
                headers={**self.headers, **headers},
                timeout=timeout,
                retries=False,
                preload_content=True,
            )
        except self.urllib3.exceptions.HTTPError as exc:
            raise KubeApiError(0, f"cannot reach {self.host}: {exc}", None, method, path) from exc
        return response.status, response.reason or "", response.data


# ---- the client


class KubeClient:
    """JSON in, JSON out. Thread safe (urllib3 pool). With a ``target`` (a client made by
    ``connect``), every failure is a KubeError explained for the operator; without one, a refusal
    is a KubeApiError and a transport failure is raised as the transport raised it."""

    def __init__(
        self,
        transport: LibraryTransport | Urllib3Transport,
        request_timeout: float = 60.0,
        target: Target | None = None,
    ) -> None:
        self.transport = transport
        self.request_timeout = request_timeout
        self.target = target
        # Until when (time.monotonic()) a transient failure is retried: None fails at once, as the
        # first contact with a cluster should (an unreachable cluster is an error to report, not to
        # wait for). A module that has a deadline of its own sets it (see retry_until).
        self.retry_deadline: float | None = None

    def retry_until(self, deadline: float | None) -> KubeClient:
        """Retry transient failures (see transient()) with backoff until ``deadline``
        (time.monotonic()), so that a restart of the API server or a moment of overload does not
        end the task; None: never retry."""
        self.retry_deadline = deadline
        return self

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def direct(self) -> bool:
        """True when requests bypass the kubernetes client (simple_kubeconfig)."""
        return isinstance(self.transport, Urllib3Transport)

    def plain(self) -> KubeClient:
        """The same connection, with the API's own errors (KubeApiError) instead of explained ones."""
        return KubeClient(self.transport, self.request_timeout)

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
        """One API request; a transient failure is retried with backoff (0.2 s doubling to 5 s)
        until retry_deadline."""
        pause = 0.2
        while True:
            try:
                return self._request_once(method, path, query, body, content_type, accept, timeout)
            except Exception as exc:
                left = (self.retry_deadline or 0.0) - time.monotonic()
                if left <= 0 or not transient(exc, method):
                    raise
                time.sleep(min(pause, left))
                pause = min(pause * 2, 5.0)

    def _request_once(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        accept: str,
        timeout: float | None,
    ) -> Any:
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        query_params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            status, reason, data = self.transport.send(
                method, path, query_params, headers, body, timeout or self.request_timeout
            )
        except KubeApiError as exc:  # refused by the server (library path) or not reached (direct path)
            if self.target is None:
                raise
            cause = exc if exc.status else (exc.__cause__ or exc)
            raise KubeError(explain(cause, self.target), exc.status or None) from exc
        except Exception as exc:
            if self.target is not None and (isinstance(exc, OSError) or _is_urllib3_error(exc)):
                raise KubeError(explain(exc, self.target)) from exc
            raise
        decoded: Any = None
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = {"message": data[: 300 if self.target else 500].decode("utf-8", "replace")}
        if not 200 <= status <= 299:
            if self.target is not None:
                raise KubeError(explain_status(status, reason, decoded, self.target), status)
            raise KubeApiError(status, reason, decoded if isinstance(decoded, dict) else None, method, path)
        return decoded

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str, **query: Any) -> Any:
        """The object, or None when the API server answers 404."""
        try:
            return self.get(path, **query)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list_items(
        self, path: str, *, page_size: int = 500, accept: str = "application/json", **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``continue`` tokens."""
        token = None
        while True:
            page = self.request("GET", path, query={**query, "limit": page_size, "continue": token}, accept=accept)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def items(self, path: str, **query: Any) -> list[dict[str, Any]]:
        """Every item of a list, as a list."""
        return list(self.list_items(path, **query))


def connect(kubeconfig: str | None, context: str | None, timeout: float = 15.0) -> KubeClient:
    """A client for the kubeconfig/context, failing fast (no retries) when unreachable."""
    path = kubeconfig_path(kubeconfig)
    data = read_kubeconfig(path)
    ctx_name, cluster, user, user_name = resolve(data, path, context)
    target = Target(kubeconfig=path, context=ctx_name, server=str(cluster.get("server", "")), user=user_name)
    base = os.path.dirname(os.path.abspath(path))
    simple = simple_credentials(cluster, user, base)
    if simple is not None:
        try:
            return KubeClient(Urllib3Transport(simple, 4, "mybinder.deploy"), timeout, target)
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
    return KubeClient(LibraryTransport(ApiClient(configuration=cfg)), timeout, target)


def build_client(params: Mapping[str, Any], *, pool_size: int = 10, user_agent: str | None = None) -> KubeClient:
    """A KubeClient from module parameters named as in kubernetes.core (see KUBE_CONNECTION_ARG_SPEC).
    ``pool_size`` is the number of connections kept open: at least the number of threads that
    send requests at the same time."""
    simple = simple_kubeconfig(params)
    if simple is not None:
        try:
            return KubeClient(Urllib3Transport(simple, max(int(pool_size), 4), user_agent or "mybinder.deploy"))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise KubeConnectionError(
                f"could not use the credentials of the kubeconfig context: {exc}. Check its certificate-authority, "
                "client-certificate and client-key (files readable, key matching the certificate)"
            ) from exc
    cfg = _configuration(params)
    cfg.connection_pool_maxsize = max(int(pool_size), 4)
    api_client = _import_kubernetes().client.ApiClient(cfg)
    api_client.user_agent = user_agent or "mybinder.deploy"
    return KubeClient(LibraryTransport(api_client))


def connection_params_from_env() -> dict[str, Any]:
    """The connection options as the K8S_AUTH_* variables set them (for scripts and tests that
    use build_client outside a module)."""
    params: dict[str, Any] = {}
    for name, spec in KUBE_CONNECTION_ARG_SPEC.items():
        for var in spec["fallback"][1]:
            if var in os.environ:
                params[name] = os.environ[var]
    return params


# ---- transient failures

# Answers that say "not now" rather than "no": the API server (or a proxy before it) is starting,
# overloaded or restarting. 429 is retried for reads only: to an eviction it is a
# PodDisruptionBudget's refusal, which the drain retries and reports itself.
RETRIED_STATUS = frozenset({502, 503, 504})
READS = frozenset({"GET", "HEAD"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def transient(exc: BaseException, method: str) -> bool:
    """Whether a failed request is worth repeating: the server answered 502/503/504 (or 429 to a
    read), or could not be reached. A request that never reached the server (connection refused)
    is repeated whatever its method; one whose connection broke or timed out on the way only when
    it is a read, since a write may have been applied."""
    status = getattr(exc, "status", None)
    if status in RETRIED_STATUS or (status == 429 and method in READS):
        return True
    if status:
        return False
    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return True
    network = any(isinstance(e, OSError) or _is_urllib3_error(e) for e in chain) or "cannot reach" in text
    return network and method in READS


# ---- operator diagnostics


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
