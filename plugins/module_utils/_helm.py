# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helm CLI (collection-private): one small class that runs helm against one cluster and a
failure that carries the exact command, rc, stdout and stderr; reading a release's history, and
the rules for going back in it.

The rest of helm release handling lives by concern: values and what a render depends on in
_helm_values.py, manifests, their comparison and redaction in _helm_manifests.py, the API
server's dry run of a render in _helm_validate.py, the deployed release read from helm's storage
objects in _helm_records.py.

Why this collection drives helm itself, and how a change is found: see _helm_release.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils import _values_schema
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm_manifests import HOOK
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

PENDING_STATES = ("pending-install", "pending-upgrade", "pending-rollback")


class HelmError(ModuleError):
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


class ReleaseReader:
    """What helm_release reads about a release: through the helm CLI (Helm) or straight from helm's
    storage objects (_helm_records.ClusterRecords), with the same answers."""

    def history(self, release: str, max_revisions: int = 64) -> list[dict[str, Any]]:
        """Revisions (oldest first) with their status, chart and app_version; [] when none."""
        raise NotImplementedError

    def release(
        self,
        release: str,
        revision: int | None = None,
        history: list[dict[str, Any]] | None = None,
        values: bool = False,
    ) -> dict[str, Any] | None:
        """A revision of the release (the latest by default, whatever its status): name, namespace,
        version, info.status, description, chart_ref and app_version (as `helm history` prints them),
        manifest, hooks, and with `values` the user-supplied values (config). None when there is none."""
        entry = pick_entry(history if history is not None else self.history(release), revision)
        return None if entry is None else self.read(release, entry, values)

    def read(self, release: str, entry: dict[str, Any], values: bool) -> dict[str, Any]:
        """release() of the revision of a `helm history` entry."""
        raise NotImplementedError

    def values(self, release: str, revision: int) -> dict[str, Any]:
        """The user-supplied values of a revision."""
        raise NotImplementedError

    def latest_entry(self, release: str) -> dict[str, Any] | None:
        """The newest `helm history` entry; None when the release has none."""
        raise NotImplementedError


@dataclass
class Helm(ReleaseReader):
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
        res = self.run(["history", release, "-o", "json", "--max", str(max_revisions)], check=False)
        if res.returncode != 0:
            if "release: not found" in res.stderr:
                return []
            raise HelmError(
                clean_error(res.stderr), [*self.base(), "history", release], res.returncode, res.stdout, res.stderr
            )
        return json.loads(res.stdout or "[]")

    def read(self, release: str, entry: dict[str, Any], values: bool) -> dict[str, Any]:
        # The `helm get` calls run in parallel: they cost about as much as one.
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
                (hooks if HOOK.search(doc) else plain).append(doc)
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
