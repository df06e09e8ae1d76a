# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Charts of Helm repositories, fetched once per digest into a local cache.

Why: `helm template/upgrade --repo` downloads the repository index and the chart on every run,
and so does kubernetes.core.helm; a deploy with nothing to change then pays a download for each
release. Here the index is asked for with the validators of the last answer (ETag,
Last-Modified), so an unchanged repository answers 304 with no body, and the chart archive is
downloaded only when the digest that the index gives for the pinned version is not in the cache
yet. The archive must match that digest. A chart republished under the same version (a stand-in
being edited, a repository that rewrote a release) has a new digest and is fetched again. Copies
that no run used for 30 days are removed when a newer one of the same chart is fetched (prune).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
from typing import Any

from ansible.module_utils.urls import Request, make_context
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import SAFE_LOADER, yaml

_TLS_CONTEXT: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The verifying TLS context ansible's open_url makes by default (the system's CAs), made once
    per process. Why: open_url makes a new one per request, even for http URLs (a redirect may go
    to https), and loading the system's CA store costs ~30 ms; a run fetches a few indexes. The
    in-process runner (plugin_utils/_inprocess.py) makes it in Ansible's main process, so the
    worker of every task inherits it."""
    global _TLS_CONTEXT  # pylint: disable=global-statement
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = make_context()
    return _TLS_CONTEXT


def open_url(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> Any:
    """ansible's open_url (GET, certificates verified, proxies and netrc as it does) with the
    shared TLS context."""
    return Request().open("GET", url, headers=headers, timeout=timeout, context=tls_context())


STAND_IN = "mybinder.org/stand-in"
STAND_IN_FOR = "mybinder.org/stand-in-for"
DEFAULT_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "mybinder.deploy", "charts")


class ChartRepoError(ModuleError):
    pass


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def index_entry(repo: str, name: str, version: str, cache_dir: str, timeout: float = 30) -> dict[str, str]:
    """The digest and archive URL the repository's index gives for name/version."""
    repo = repo.rstrip("/")
    state_path = os.path.join(cache_dir, "index", f"{_key(repo, name, version)}.json")
    state = _read_json(state_path)
    headers = {}
    if state.get("digest"):
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
    url = f"{repo}/index.yaml"
    try:
        resp = open_url(url, headers=headers, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and state.get("digest"):
            return {"digest": state["digest"], "url": state["url"]}
        raise ChartRepoError(f"the chart repository {repo} answered {exc.code} for {url}") from exc
    except (OSError, ValueError) as exc:
        raise ChartRepoError(
            f"the chart repository {repo} does not answer ({url}: {getattr(exc, 'reason', exc)})"
        ) from exc
    with resp:
        body = resp.read()
        etag, modified = resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", "")
    try:
        index = yaml.load(body, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ChartRepoError(f"{url} is not a Helm repository index: {exc}") from exc
    entries = (index.get("entries") or {}).get(name) or []
    entry = next((e for e in entries if str(e.get("version")) == version), None)
    if entry is None:
        known = ", ".join(str(e.get("version")) for e in entries[:8]) or "none"
        raise ChartRepoError(
            f"the chart repository {repo} has no chart {name} version {version} (versions it has: {known})"
        )
    urls = entry.get("urls") or []
    if not urls or not entry.get("digest"):
        raise ChartRepoError(f"the index of {repo} gives no archive URL or digest for {name} {version}")
    found = {"digest": str(entry["digest"]), "url": urllib.parse.urljoin(f"{repo}/", str(urls[0]))}
    os.makedirs(os.path.dirname(state_path), exist_ok=True)
    _write_json(state_path, dict(found, etag=etag, last_modified=modified, repo=repo))
    return found


def pulled_chart(repo: str, name: str, version: str, cache_dir: str | None = None, timeout: float = 30) -> str:
    """The directory of the chart name/version of the repository, fetched if the cache lacks it."""
    cache_dir = os.path.expanduser(cache_dir or DEFAULT_CACHE)
    os.makedirs(cache_dir, exist_ok=True)
    entry = index_entry(repo, name, version, cache_dir, timeout)
    home = os.path.join(cache_dir, "charts", f"{name}-{version}-{entry['digest'][:16]}")
    chart = os.path.join(home, name)
    if os.path.isfile(os.path.join(chart, "Chart.yaml")):
        os.utime(home)  # in use: see prune()
        return chart
    os.makedirs(os.path.dirname(home), exist_ok=True)
    work = tempfile.mkdtemp(dir=os.path.dirname(home), prefix=".pull-")
    try:
        archive = os.path.join(work, "chart.tgz")
        try:
            with open_url(entry["url"], timeout=timeout) as resp, open(archive, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (OSError, ValueError) as exc:
            raise ChartRepoError(f"downloading {entry['url']} failed: {getattr(exc, 'reason', exc)}") from exc
        with open(archive, "rb") as fh:
            got = hashlib.file_digest(fh, "sha256").hexdigest()
        if got != entry["digest"]:
            raise ChartRepoError(
                f"{entry['url']} has digest {got}, but the index of {repo} says {entry['digest']}: "
                "refusing a chart that is not what the repository lists"
            )
        out = os.path.join(work, "out")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(out, filter="data")
        if not os.path.isfile(os.path.join(out, name, "Chart.yaml")):
            raise ChartRepoError(f"{entry['url']} does not hold a chart named {name}")
        try:
            os.rename(out, home)
        except OSError:
            if not os.path.isfile(os.path.join(chart, "Chart.yaml")):  # not a concurrent run that won
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prune(os.path.dirname(home), name, keep=home)
    return chart


# How long a cached chart that no run used is kept (every run that uses one touches its directory).
KEEP_UNUSED_SECONDS = 30 * 24 * 3600


def prune(charts_dir: str, name: str, keep: str, now: float | None = None) -> list[str]:
    """Remove the cached versions of chart ``name`` (other than ``keep``) that no run used for
    KEEP_UNUSED_SECONDS, and downloads an interrupted run left (``.pull-*``) older than a day; the
    names removed. Runs only when a new version was fetched, so the cache does not grow with every
    version bump, while a version another inventory still deploys (touched at each use) stays."""
    now = time.time() if now is None else now
    removed = []
    for entry in sorted(os.listdir(charts_dir)):
        path = os.path.join(charts_dir, entry)
        if path == keep or not os.path.isdir(path):
            continue
        if entry.startswith(".pull-"):
            limit = 24 * 3600
        elif entry.startswith(f"{name}-") and os.path.isfile(os.path.join(path, name, "Chart.yaml")):
            limit = KEEP_UNUSED_SECONDS
        else:
            continue  # another chart, or not ours
        try:
            if now - os.stat(path).st_mtime > limit:
                shutil.rmtree(path)
                removed.append(entry)
        except OSError:
            continue  # gone meanwhile (a concurrent run pruned it)
    return removed


def chart_info(meta: dict[str, Any]) -> dict[str, Any]:
    """Name, version and appVersion of a chart's metadata (its Chart.yaml), and whether it is a
    test stand-in."""
    notes = meta.get("annotations") or {}
    return {
        "name": str(meta.get("name", "")),
        "version": str(meta.get("version", "")),
        "app_version": str(meta.get("appVersion", "")),
        "stand_in": str(notes.get(STAND_IN, "")).lower() == "true",
        "stand_in_for": str(notes.get(STAND_IN_FOR, "")),
    }
