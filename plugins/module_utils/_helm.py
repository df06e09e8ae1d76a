# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm release handling shared by the helm_release and helm_rollback modules.

Why not only kubernetes.core.helm: it decides "changed" from the chart version and the values
(or needs the helm-diff plugin, which an offline machine does not have), so an edited template
without a version bump is reported "ok" and never deployed; it treats a release stuck in
pending-install/pending-upgrade as absent and runs into "another operation is in progress"; it
cannot show per-object manifest changes in check/diff mode without helm-diff; and it copies the
kubeconfig to a temporary file outside the repository.

How a change is found: the chart is rendered as the upgrade would render it (`helm template
--dry-run=server --validate --is-upgrade`: live lookups, the cluster's capabilities) and every
object (hooks included) is compared with the deployed release; the chart name, version and
appVersion too; the values through a digest of the values files recorded in the revision
description (and, when it differs, the merged values). The deployed release is read from helm's
storage objects through the API (_helm_records.py), or with `helm history` and `helm get` for
storage drivers that reader does not know. `helm upgrade --dry-run` would give the same answer but
costs seconds more: it builds and schema-checks every object against the API server, which a
no-op deploy does not need (the API server's own dry run checks the objects when an upgrade is
due, see server_validate).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils import _values_schema

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
    YAML_IMPORT_ERROR = str(exc)


PENDING_STATES = ("pending-install", "pending-upgrade", "pending-rollback")
# The annotation that makes an object a hook (helm.sh/hook-weight etc. come with it).
_HOOK = re.compile(r"""^\s+["']?helm\.sh/hook["']?\s*:""", re.MULTILINE)
# libyaml's parser when PyYAML has it: manifests are parsed on every run.
_Loader = (getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader) if HAS_YAML else None
REDACTED = "<redacted>"


class HelmError(Exception):
    """A helm command failed: carries the exact command, rc, stdout and stderr."""

    def __init__(
        self,
        msg: str,
        command: list[str] | None = None,
        rc: int | None = None,
        stdout: str = "",
        stderr: str = "",
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(msg)
        self.msg = msg
        self.command = command or []
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        # Facts a caller needs after a failure (e.g. the revision to roll back to).
        self.extra: dict[str, Any] = dict(extra or {})

    def result(self) -> dict[str, Any]:
        # stdout is left out on purpose: a failed render may print the manifest, Secrets included.
        out: dict[str, Any] = {"msg": self.msg}
        if self.command:
            out.update(command=" ".join(self.command), rc=self.rc, stderr=self.stderr)
        return {**out, **self.extra}


def pick_entry(history: list[dict[str, Any]], revision: int | None = None) -> dict[str, Any] | None:
    """The history entry of ``revision`` (the newest when None); None when there is none."""
    if not history:
        return None
    if revision is None:
        return history[-1]
    return next((h for h in history if h.get("revision") == revision), None)


def history_entry(release: dict[str, Any]) -> dict[str, Any]:
    """A release as helm stores it (and prints it with `--output json`) shaped like a `helm history`
    entry: revision, status, chart, app_version, description."""
    info = release.get("info") or {}
    meta = (release.get("chart") or {}).get("metadata") or {}
    return {
        "revision": int(release.get("version") or 0),
        "status": info.get("status", ""),
        "chart": f"{meta.get('name', '')}-{meta.get('version', '')}",
        "app_version": meta.get("appVersion", "") or "",
        "description": info.get("description", ""),
    }


@dataclass
class Helm:
    """Runs the helm CLI against one cluster. Never puts values or credentials on a command line:
    values travel in files, the kubeconfig by path."""

    binary: str
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def base(self) -> list[str]:
        cmd = [self.binary]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--kube-context", self.context]
        if self.namespace:
            cmd += ["--namespace", self.namespace]
        return cmd

    def run(
        self, args: list[str], check: bool = True, timeout: float | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = self.base() + args
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, env=self.env or None, timeout=timeout, check=False, input=stdin
            )
        except FileNotFoundError as exc:
            raise HelmError(f"helm binary not found: {self.binary}", cmd) from exc
        except subprocess.TimeoutExpired as exc:
            raise HelmError(f"helm did not finish within {timeout} s", cmd) from exc
        if check and res.returncode != 0:
            raise HelmError(
                clean_error(res.stderr) or f"helm exited with {res.returncode}",
                cmd,
                res.returncode,
                res.stdout,
                res.stderr,
            )
        return res

    # ---- reading
    def history(self, release: str, max_revisions: int = 64) -> list[dict[str, Any]]:
        """Revisions (oldest first) with their status, chart and app_version; [] when none."""
        res = self.run(["history", release, "-o", "json", "--max", str(max_revisions)], check=False)
        if res.returncode != 0:
            if "release: not found" in res.stderr:
                return []
            raise HelmError(
                clean_error(res.stderr), [*self.base(), "history", release], res.returncode, res.stdout, res.stderr
            )
        return json.loads(res.stdout or "[]")

    def release(
        self,
        release: str,
        revision: int | None = None,
        history: list[dict[str, Any]] | None = None,
        values: bool = False,
    ) -> dict[str, Any] | None:
        """A revision of the release (the latest by default, whatever its status): name, namespace,
        version, info.status, description, chart_ref and app_version (as `helm history` prints them),
        manifest, hooks, and with `values` the user-supplied values (config). None when there is none.
        The `helm get` calls run in parallel: they cost about as much as one."""
        entry = pick_entry(history if history is not None else self.history(release), revision)
        if entry is None:
            return None
        rev = ["--revision", str(entry["revision"])]
        calls = {"manifest": ["get", "manifest", release, *rev], "hooks": ["get", "hooks", release, *rev]}
        if values:
            calls["values"] = ["get", "values", release, "-o", "json", *rev]
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {k: pool.submit(self.run, args) for k, args in calls.items()}
            out = {k: f.result().stdout for k, f in futures.items()}
        result = {
            "name": release,
            "namespace": self.namespace,
            "version": int(entry["revision"]),
            "info": {"status": entry.get("status", ""), "description": entry.get("description", "")},
            "chart_ref": entry.get("chart", ""),
            "app_version": entry.get("app_version", ""),
            "manifest": out["manifest"],
            "hooks": [{"manifest": out["hooks"]}] if out["hooks"].strip() else [],
        }
        if values:
            result["config"] = json.loads(out["values"] or "null") or {}
        return result

    def values(self, release: str, revision: int) -> dict[str, Any]:
        res = self.run(["get", "values", release, "-o", "json", "--revision", str(revision)])
        return json.loads(res.stdout or "null") or {}

    def latest_entry(self, release: str) -> dict[str, Any] | None:
        """The newest `helm history` entry; None when the release has none."""
        hist = self.history(release, max_revisions=1)
        return hist[-1] if hist else None

    def upgrade_args(
        self, release: str, chart: str, values_files: list[str], opts: UpgradeOptions, inline: bool = False
    ) -> list[str]:
        args = ["upgrade", release, chart, "--install", *values_args(values_files, inline)]
        if opts.create_namespace:
            args.append("--create-namespace")
        if opts.cleanup_on_fail:
            args.append("--cleanup-on-fail")
        if opts.history_max is not None:
            args += ["--history-max", str(opts.history_max)]
        if opts.timeout:
            args += ["--timeout", opts.timeout]
        if opts.take_ownership:
            args.append("--take-ownership")
        if opts.skip_crds:
            args.append("--skip-crds")
        if opts.disable_openapi_validation:
            args.append("--disable-openapi-validation")
        if opts.description:
            args += ["--description", opts.description]
        # Values are always the chart defaults plus the given files, never reused from the
        # release: a value removed from a file must disappear from the cluster.
        args.append("--reset-values")
        return args

    def template(
        self,
        release: str,
        chart: str,
        values_files: list[str],
        is_upgrade: bool,
        inline: dict[str, Any] | None = None,
        skip_crds: bool = False,
        take_ownership: bool = False,
    ) -> dict[str, Any]:
        """Render the chart as `helm upgrade` would (lookups against the cluster, the cluster's
        Kubernetes version and API versions), shaped like a release object: manifest, hooks (split
        by their helm.sh/hook annotation) and chart metadata (from Chart.yaml). Reads no release
        record, so it also works while a release is pending."""
        # --validate talks to the cluster (capabilities, lookups); its OpenAPI schema check is
        # left out: it costs ~0.3 s per render, and before any upgrade the API server itself
        # dry-runs every object (server_validate), which is the stricter check.
        args = [
            "template",
            release,
            chart,
            "--dry-run=server",
            "--validate",
            "--disable-openapi-validation",
            *values_args(values_files, inline),
        ]
        if is_upgrade:
            args.append("--is-upgrade")
        if skip_crds:
            args.append("--skip-crds")
        if take_ownership:  # a first install's render checks that no object exists outside the release
            args.append("--take-ownership")
        try:
            res = self.run(args, stdin=stdin_values(inline))
        except HelmError as exc:
            # values that break a chart's values.schema.json: named by their key path
            explained = _values_schema.explain(exc.stderr or "", _values_schema.subchart_prefixes(chart))
            if explained is None:
                raise
            raise HelmError(explained, exc.command, exc.rc, exc.stdout, exc.stderr) from exc
        plain, hooks = [], []
        for doc in re.split(r"^---\s*$", res.stdout, flags=re.MULTILINE):
            if doc.strip():
                (hooks if _HOOK.search(doc) else plain).append(doc)
        with open(f"{chart}/Chart.yaml", encoding="utf-8") as fh:
            meta = yaml.safe_load(fh) or {}
        return {
            "name": release,
            "namespace": self.namespace,
            "manifest": "\n---\n".join(plain),
            "hooks": [{"manifest": h} for h in hooks],
            "chart": {"metadata": meta},
            "version": 0,
        }

    def upgrade(
        self,
        release: str,
        chart: str,
        values_files: list[str],
        opts: UpgradeOptions,
        inline: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Run the upgrade; the revision it made as a `helm history` entry (None if helm printed
        no release). helm prints the new release as JSON (`-o json`), which saves reading it back;
        that output holds the values and the manifest, so it is parsed here and never returned."""
        args = self.upgrade_args(release, chart, values_files, opts, inline is not None)
        res = self.run([*args, "--output", "json"], stdin=stdin_values(inline))
        try:
            return history_entry(json.loads(res.stdout))
        except (ValueError, AttributeError):
            return None

    def rollback(self, release: str, revision: int, timeout: str | None = None) -> list[str]:
        args = ["rollback", release, str(revision), "--cleanup-on-fail"]
        if timeout:
            args += ["--timeout", timeout]
        self.run(args)
        return self.base() + args

    def uninstall(self, release: str, timeout: str | None = None) -> list[str]:
        args = ["uninstall", release]
        if timeout:
            args += ["--timeout", timeout]
        self.run(args)
        return self.base() + args


@dataclass
class UpgradeOptions:
    create_namespace: bool = True
    cleanup_on_fail: bool = True
    history_max: int | None = 10
    timeout: str | None = None
    take_ownership: bool = False
    description: str | None = None
    skip_crds: bool = False
    # Only after the API server's own dry run accepted every object (server_validate): helm's
    # client-side OpenAPI check then adds nothing but fetching and parsing the schema (~0.2 s).
    disable_openapi_validation: bool = False


def clean_error(stderr: str) -> str:
    """helm's error without its noise (warnings about kubeconfig permissions, blank lines)."""
    lines = [
        ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Kubernetes configuration file")
    ]
    return "\n".join(lines).strip()


# --------------------------------------------------------------------------------------------
# values

DIGEST_MARK = "mybinder.deploy values sha256:"


if HAS_YAML:

    class _ValuesLoader(yaml.SafeLoader):
        """YAML as helm reads values files: dates stay strings (PyYAML would make them dates)."""

    _ValuesLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def merge_values(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """helm's rule for several --values files (pkg/cli/values mergeMaps): maps merge key by key,
    anything else in the later file replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_values(out[k], v)
        else:
            out[k] = v
    return out


def values_args(values_files: list[str], inline: bool | dict[str, Any] | None) -> list[str]:
    """--values for each file in order, then `--values -` (standard input) for inline values."""
    args = []
    for vf in values_files:
        args += ["--values", vf]
    if inline is not None and inline is not False:
        args += ["--values", "-"]
    return args


def stdin_values(inline: dict[str, Any] | None) -> str | None:
    """Inline values travel on helm's standard input (JSON is YAML), never on its command line."""
    return None if inline is None else json.dumps(inline)


def user_values(values_files: list[str], inline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The user-supplied values helm records for a release installed with these files (and the
    inline values after them)."""
    merged: dict[str, Any] = {}
    for path in values_files:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_ValuesLoader) or {}  # a SafeLoader subclass
        merged = merge_values(merged, data)
    if inline is not None:
        merged = merge_values(merged, inline)
    # Same types as `helm get values -o json` gives back (e.g. integer map keys become strings).
    return json.loads(json.dumps(merged, default=str))


def values_digest(values_files: list[str], inline: dict[str, Any] | None = None) -> str:
    """A digest of the values files (order included) and the inline values: equal digests mean
    equal values."""
    h = hashlib.sha256()
    for path in values_files:
        with open(path, "rb") as fh:
            data = fh.read()
        h.update(f"{len(data)}:".encode())
        h.update(data)
    if inline is not None:
        data = json.dumps(inline, sort_keys=True).encode()
        h.update(f"inline {len(data)}:".encode())
        h.update(data)
    return h.hexdigest()[:40]


# The digest of everything a render depends on, recorded after the values digest (inputs_digest).
INPUTS_MARK = " inputs sha256:"
DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


def recorded_inputs(description: str) -> str | None:
    if INPUTS_MARK in (description or ""):
        return description.split(INPUTS_MARK, 1)[1].split()[0]
    return None


def chart_tree_digest(chart_dir: str) -> str:
    """A digest of every file of an unpacked chart (subcharts and their archives included), by path."""
    h = hashlib.sha256()
    root = os.path.realpath(chart_dir)
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            with open(path, "rb") as fh:
                data = fh.read()
            h.update(f"{os.path.relpath(path, root)}\0{len(data)}:".encode())
            h.update(data)
    return h.hexdigest()


def capabilities_digest(client: Any) -> str:
    """A digest of what helm's .Capabilities hold for this cluster: the server version and every
    group/version/kind the API serves (aggregated discovery: two requests)."""
    version = client.request("GET", "/version")
    kinds: set[str] = set()
    for path in ("/api", "/apis"):
        doc = client.request("GET", path, accept=DISCOVERY_ACCEPT)
        if doc.get("kind") != "APIGroupDiscoveryList":
            # A server without aggregated discovery: group versions only (/api answers APIVersions,
            # /apis an APIGroupList).
            kinds.update(f"/{v}" for v in doc.get("versions") or [])
            for group in doc.get("groups") or []:
                kinds.update(f"{group.get('name', '')}/{v.get('version', '')}" for v in group.get("versions") or [])
            continue
        for group in doc.get("items") or []:
            name = (group.get("metadata") or {}).get("name", "")
            for v in group.get("versions") or []:
                kinds.add(f"{name}/{v.get('version', '')}")
                for res in v.get("resources") or []:
                    kinds.add(f"{name}/{v.get('version', '')}/{(res.get('responseKind') or {}).get('kind', '')}")
    h = hashlib.sha256(json.dumps([version.get("gitVersion", ""), sorted(kinds)]).encode())
    return h.hexdigest()


def inputs_digest(
    chart_dir: str, values: str, helm_binary: str, capabilities: str, release: str, namespace: str
) -> str:
    """What a render of the release depends on, besides live lookups: the chart's files, the values
    (values_digest), the helm binary, the cluster's capabilities (capabilities_digest), the
    release's name and namespace. Equal digests render equal manifests, lookups, random values and
    timestamps aside."""
    found = os.path.realpath(shutil.which(helm_binary) or helm_binary)
    try:
        st = os.stat(found)
        helm_id = f"{found}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        helm_id = helm_binary
    parts = [chart_tree_digest(chart_dir), values, helm_id, capabilities, release, namespace]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def recorded_digest(description: str) -> str | None:
    if DIGEST_MARK in (description or ""):
        return description.split(DIGEST_MARK, 1)[1].split()[0]
    return None


# --------------------------------------------------------------------------------------------
# manifests


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
    for doc in yaml.load_all(text, Loader=_Loader):
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


def value_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two values trees differ (paths only: values may hold secrets)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(p)
            else:
                out.extend(value_paths(a[k], b[k], p))
        return out
    return [] if a == b else [prefix or "(root)"]


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
    from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import KubeApiError
    from ansible_collections.mybinder.deploy.plugins.module_utils._kube_objects import (
        KubeObjectError,
        Resources,
        dry_run_apply,
        dry_run_create,
    )

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


# --------------------------------------------------------------------------------------------
# history and recovery


def last_good_revision(history: list[dict[str, Any]], exclude: int | None = None) -> int | None:
    """The revision to go back to: the newest `deployed` one, else the newest `superseded` one."""
    for wanted in ("deployed", "superseded"):
        revs = [h["revision"] for h in history if h.get("status") == wanted and h.get("revision") != exclude]
        if revs:
            return max(revs)
    return None


_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$")


def valid_duration(value: str) -> bool:
    """A Go duration as helm's --timeout takes it (e.g. 5m, 90s, 1h30m)."""
    return bool(value) and bool(_DURATION.match(value))
