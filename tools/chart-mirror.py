#!/usr/bin/env python
"""A local Helm chart repository on loopback, serving the real upstream charts, and the command that
fills an air-gapped operator's mirror directory.

    chart-mirror.py source    the chart source of the local inventory, the tests and the benchmarks:
                              prints "" when every pinned upstream repository answers, otherwise
                              serves the mirror directory (below) and prints its URL
    chart-mirror.py start     serve the mirror directory; prints the URL (the only line on stdout)
    chart-mirror.py status    running or not, URL, directory, charts served (exit 3 when not running)
    chart-mirror.py url       the URL only (exit 3 when not running)
    chart-mirror.py stop      stop the server that `start` started
    chart-mirror.py pull DIR [--from URL]
                              mirror every chart this project pins (the meta chart's dependencies,
                              cert-manager with its CRD manifest, the ingress controllers, kube-lego)
                              from their upstream repositories (or from the one repository URL) into
                              DIR, a Helm chart repository directory; digests are checked against
                              the repository index, and a second run fetches nothing
    chart-mirror.py lock [--check]
                              write mybinder/Chart.lock for the exact versions pinned in
                              mybinder/Chart.yaml (what `helm dependency update` writes when the
                              upstream repositories are reachable); --check only verifies it

The mirror directory is a Helm chart repository directory (index.yaml + packaged charts, as `pull`
writes it): $MYBINDER_CHART_DIR, or else ../shared/charts beside this checkout when it exists.
Its charts are served as they are, never modified. An air-gapped operator points the deploy at
such a repository with `mybinder_chart_mirror` (a URL, or the directory itself).

Failure-injection fixtures (tests only, never the normal path): with $MYBINDER_FIXTURE_CHARTS set
to a directory of chart directories (tests/fixtures/charts, or a test's copy of it), `start`
packages those instead and serves them; every such chart must say that it is not a real chart
(annotation `mybinder.org/stand-in: "true"` and a description starting with STAND-IN). Tests use
them for what the real charts cannot show (a template that fails, a chart edited between two runs);
tests/fixtures/charts/README.md describes them.

State lives in $MYBINDER_CLUSTER_DIR/chart-mirror/ (default .cluster/chart-mirror/): server.pid,
url, served (the directory served), server.log, and for fixtures charts/ and stamps.json.
`start` is idempotent: a running server of the same directory is reused.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The charts to serve (overridable for tests of this tool).
# Failure-injection fixtures to package and serve instead of the mirror directory (tests only).
FIXTURES = Path(os.environ["MYBINDER_FIXTURE_CHARTS"]) if os.environ.get("MYBINDER_FIXTURE_CHARTS") else None
META_CHART = ROOT / "mybinder"
STATE = Path(os.environ.get("MYBINDER_CLUSTER_DIR", ROOT / ".cluster")) / "chart-mirror"
CHARTS = STATE / "charts"
PID_FILE = STATE / "server.pid"
URL_FILE = STATE / "url"
LOG_FILE = STATE / "server.log"
STAMPS = STATE / "stamps.json"
SERVED_FILE = STATE / "served"
PREFERRED_PORT = 8879  # the port of the old `helm serve`
STAND_IN_ANNOTATION = "mybinder.org/stand-in"


class MirrorError(Exception):
    """A failure with a message that says what went wrong and what to do."""


def say(msg: str) -> None:
    print(f"[chart-mirror] {msg}", file=sys.stderr, flush=True)


def helm_binary() -> str:
    found = os.environ.get("HELM") or shutil.which("helm")
    if found:
        return found
    out = subprocess.run(
        [str(ROOT / "tools" / "build-binaries.sh"), "--print"], capture_output=True, text=True, check=False
    )
    candidate = Path(out.stdout.strip()) / "helm"
    if out.returncode == 0 and candidate.is_file():
        return str(candidate)
    raise MirrorError("helm not found: put the project's tools on PATH (tools/build-binaries.sh --print) or set HELM")


def run_helm(*args: str) -> str:
    cmd = [helm_binary(), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise MirrorError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


# --------------------------------------------------------------------------------------------
# packaging


def mirror_dir() -> Path:
    """The directory of packaged real charts: $MYBINDER_CHART_DIR, else ../shared/charts."""
    named = os.environ.get("MYBINDER_CHART_DIR")
    path = Path(named) if named else ROOT.parent / "shared" / "charts"
    if not (path / "index.yaml").is_file():
        where = f"MYBINDER_CHART_DIR={named}" if named else f"{path} (the default when MYBINDER_CHART_DIR is unset)"
        raise MirrorError(
            f"no chart repository directory at {where}: it has no index.yaml. Fill one with "
            "`tools/chart-mirror.py pull DIR` on a machine that reaches the upstream repositories, "
            "then set MYBINDER_CHART_DIR=DIR"
        )
    return path.resolve()


def chart_dirs() -> list[Path]:
    """Every fixture chart directly under $MYBINDER_FIXTURE_CHARTS."""
    assert FIXTURES is not None
    return sorted(p.parent for p in FIXTURES.glob("*/Chart.yaml"))


# libyaml when PyYAML has it: `start` reads every fixture's Chart.yaml on each deploy
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_chart(path: Path) -> dict[str, Any]:
    with (path / "Chart.yaml").open() as fh:
        return yaml.load(fh, Loader=LOADER) or {}


def local_deps(path: Path, meta: dict[str, Any]) -> list[Path]:
    out = []
    for dep in meta.get("dependencies") or []:
        repo = str(dep.get("repository") or "")
        if repo.startswith("file://"):
            out.append((path / repo[len("file://") :]).resolve())
    return out


def tree_digest(path: Path, seen: set[Path] | None = None) -> str:
    """Digest of a chart's files and of its local file:// dependencies' files."""
    seen = set() if seen is None else seen
    seen.add(path.resolve())
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if rel.parts[0] == "charts" or f.suffix == ".tgz" or rel.name == "Chart.lock":
            continue  # build outputs
        h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    for dep in local_deps(path, load_chart(path)):
        if dep not in seen:
            h.update(tree_digest(dep, seen).encode())
    return h.hexdigest()


def check_stand_in(path: Path, meta: dict[str, Any]) -> None:
    annotations = meta.get("annotations") or {}
    if str(annotations.get(STAND_IN_ANNOTATION, "")).lower() != "true":
        raise MirrorError(
            f'{path}/Chart.yaml lacks the annotation {STAND_IN_ANNOTATION}: "true": '
            "every fixture chart this mirror packages must say it is not a real chart"
        )
    if not str(meta.get("description", "")).lstrip().upper().startswith("STAND-IN"):
        raise MirrorError(f"{path}/Chart.yaml: the description must start with STAND-IN")


def package_all() -> list[dict[str, Any]]:
    """Package every fixture whose files changed since the last start; write the index."""
    CHARTS.mkdir(parents=True, exist_ok=True)
    stamps: dict[str, str] = json.loads(STAMPS.read_text()) if STAMPS.exists() else {}
    served = []
    todo = []
    for path in chart_dirs():
        meta = load_chart(path)
        check_stand_in(path, meta)
        tgz = CHARTS / f"{meta['name']}-{meta['version']}.tgz"
        digest = tree_digest(path)
        served.append({"name": meta["name"], "version": str(meta["version"]), "file": tgz.name})
        if stamps.get(tgz.name) != digest or not tgz.exists():
            todo.append((path, tgz, digest))
    if todo:
        # Build in a copy: `helm dependency build` writes charts/ and Chart.lock into the chart.
        with tempfile.TemporaryDirectory(prefix="chart-mirror-") as tmp:
            assert FIXTURES is not None
            copy = Path(tmp) / "fixture-charts"
            shutil.copytree(FIXTURES, copy, ignore=shutil.ignore_patterns("*.tgz", "charts", "Chart.lock"))
            for path, tgz, digest in todo:
                work = copy / path.name
                if local_deps(work, load_chart(work)):
                    run_helm("dependency", "build", str(work))
                run_helm("package", str(work), "--destination", str(CHARTS))
                stamps[tgz.name] = digest
                say(f"packaged {tgz.name}")
    wanted = {s["file"] for s in served}
    for old in CHARTS.glob("*.tgz"):
        if old.name not in wanted:  # a fixture that was removed or re-versioned
            old.unlink()
            stamps.pop(old.name, None)
    if todo or not (CHARTS / "index.yaml").exists():
        run_helm("repo", "index", str(CHARTS))  # relative URLs: valid whatever the port
    STAMPS.write_text(json.dumps(stamps, indent=1, sort_keys=True))
    return served


# --------------------------------------------------------------------------------------------
# the server


def read_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # Only a process that is really our server counts (pids get reused).
    if not any(arg.endswith(b"chart-mirror.py") for arg in cmdline) or b"_serve" not in cmdline:
        return None
    return pid


def answers(url: str, timeout: float = 3) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/index.yaml", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def running_url(patience: float = 0) -> str | None:
    """The URL of our running server, or None. With patience, a server that is alive but slow to
    answer (a loaded machine) gets that many seconds before it counts as not running."""
    pid = read_pid()
    if pid is None or not URL_FILE.exists():
        return None
    url = URL_FILE.read_text().strip()
    deadline = time.monotonic() + patience
    while True:
        if answers(url):
            return url
        if time.monotonic() >= deadline or read_pid() is None:
            return None
        time.sleep(0.5)


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """One start/stop at a time per state directory (parallel forks or tests may call start)."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def free_port() -> int:
    for port in (PREFERRED_PORT, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise MirrorError("no free port on 127.0.0.1")


def serve(directory: Path, port: int) -> None:
    """The background server (`_serve`): static files of the repository, on loopback only."""
    import http.server  # only the server needs it (`start`, run on every deploy, does not)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def send_head(self) -> Any:
            # Always the full file, never "304 Not Modified": one URL (a port on loopback) serves
            # different directories over time, and an older index.yaml of another directory would
            # pass an If-Modified-Since check against the newer one a client remembers.
            for header in ("If-Modified-Since", "If-None-Match"):
                del self.headers[header]
            return super().send_head()

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def start() -> str:
    with state_lock():
        return _start()


def _start() -> str:
    if FIXTURES is not None:
        served, directory, what = package_all(), CHARTS, "fixture charts"
    else:
        directory = mirror_dir()
        served, what = list(index_entries(directory)), f"real charts of {directory}"
    url = running_url(patience=10)
    if url and SERVED_FILE.exists() and SERVED_FILE.read_text().strip() == str(directory):
        say(f"running at {url}, serving {len(served)} {what}")
        return url
    if url:
        say("the running server serves another directory: restarting it")
        _stop()
    elif read_pid() is not None:  # alive but not answering: replace it rather than leave it behind
        say(f"the server (pid {read_pid()}) does not answer: restarting it")
        _stop()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with LOG_FILE.open("ab") as log:
        proc = subprocess.Popen(
            # the state directory names the server among others of the same directory
            [sys.executable, str(Path(__file__).resolve()), "_serve", str(directory), str(port), str(STATE)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the caller, like a daemon
        )
    PID_FILE.write_text(f"{proc.pid}\n")
    URL_FILE.write_text(f"{url}\n")
    SERVED_FILE.write_text(f"{directory}\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MirrorError(f"the server exited at start ({proc.returncode}); see {LOG_FILE}")
        if running_url():
            say(f"started at {url} (pid {proc.pid}), serving {len(served)} {what}")
            return url
        time.sleep(0.1)
    raise MirrorError(f"the server did not answer on {url} within 15 s; see {LOG_FILE}")


def stop() -> None:
    with state_lock():
        _stop()


def _stop() -> None:
    pid = read_pid()
    if pid is None:
        say("not running")
    else:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and read_pid() is not None:
            time.sleep(0.1)
        if read_pid() is not None:
            os.kill(pid, signal.SIGKILL)
        say(f"stopped (pid {pid})")
    for f in (PID_FILE, URL_FILE, SERVED_FILE):
        f.unlink(missing_ok=True)


def status() -> int:
    url = running_url(patience=5)
    if not url:
        print("chart mirror: not running (tools/chart-mirror.py start)")
        return 3
    directory = Path(SERVED_FILE.read_text().strip()) if SERVED_FILE.exists() else CHARTS
    print(f"chart mirror: running at {url} (pid {read_pid()}), directory {directory}")
    for name, entry in sorted(index_entries(directory)):
        marker = "  STAND-IN" if STAND_IN_ANNOTATION in (entry.get("annotations") or {}) else ""
        print(f"  {name} {entry['version']}{marker}")
    return 0


def index_entries(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, entry) of every chart version in a repository directory's index.yaml."""
    with (directory / "index.yaml").open() as fh:
        index = yaml.load(fh, Loader=LOADER) or {}
    for name, versions in (index.get("entries") or {}).items():
        for entry in versions:
            yield name, entry


# --------------------------------------------------------------------------------------------
# the chart source of the local inventory, the tests and the benchmarks


# The charts the roles install as releases of their own: (role, chart, prefix of its
# <prefix>_version and <prefix>_repo defaults).
ROLE_CHARTS = [
    ("tls", "cert-manager", "tls_cert_manager_chart"),
    ("tls", "kube-lego", "tls_kube_lego_chart"),
    ("ingress", "ingress-nginx", "ingress_chart"),
]


def pinned_charts() -> list[dict[str, str]]:
    """Every chart this project deploys, as {name, version, repo}: the meta chart's dependencies
    (mybinder/Chart.yaml) and the charts the tls and ingress roles install (their defaults)."""
    pins = [
        {"name": str(d["name"]), "version": str(d["version"]), "repo": str(d["repository"])}
        for d in load_chart(META_CHART).get("dependencies") or []
    ]
    for role, name, prefix in ROLE_CHARTS:
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
        pins.append(
            {"name": name, "version": str(defaults[f"{prefix}_version"]), "repo": str(defaults[f"{prefix}_repo"])}
        )
    return pins


def upstream_reachable(timeout: float = 3) -> bool:
    """True when every pinned upstream repository answers for its index (HEAD, in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    def answers_head(repo: str) -> bool:
        req = urllib.request.Request(f"{repo.rstrip('/')}/index.yaml", method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    repos = sorted({pin["repo"] for pin in pinned_charts()})
    with ThreadPoolExecutor(max_workers=len(repos)) as pool:
        return all(pool.map(answers_head, repos))


def source() -> str:
    """ "" (the upstream repositories) when they all answer, else the URL of the served mirror."""
    if FIXTURES is None and not os.environ.get("MYBINDER_CHART_DIR") and upstream_reachable():
        say("every upstream chart repository answers: the charts come from there")
        return ""
    return start()


# --------------------------------------------------------------------------------------------
# pull: fill an air-gapped operator's mirror directory


CRDS_URL = "https://github.com/cert-manager/cert-manager/releases/download/{version}/cert-manager.crds.yaml"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path) -> None:
    """url to dest through a temporary file beside it (an interrupted download leaves no archive)."""
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as fh:
            shutil.copyfileobj(resp, fh)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise MirrorError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
    tmp.replace(dest)


def pull(dest: Path, from_url: str | None) -> int:
    """Mirror every pinned chart (and cert-manager's CRD manifest) into dest, then index it."""
    dest.mkdir(parents=True, exist_ok=True)
    indexes: dict[str, dict[str, Any]] = {}
    fetched = kept = 0
    for pin in pinned_charts():
        repo = (from_url or pin["repo"]).rstrip("/")
        if repo not in indexes:
            try:
                with urllib.request.urlopen(f"{repo}/index.yaml", timeout=30) as resp:
                    indexes[repo] = yaml.load(resp.read(), Loader=LOADER) or {}
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise MirrorError(
                    f"the chart repository {repo} does not answer ({getattr(exc, 'reason', exc)}): "
                    "run this where it is reachable, or name a reachable mirror with --from URL"
                ) from exc
        entry = next(
            (
                e
                for e in (indexes[repo].get("entries") or {}).get(pin["name"], [])
                if str(e.get("version")) == pin["version"]
            ),
            None,
        )
        if entry is None:
            raise MirrorError(
                f"{repo} has no chart {pin['name']} version {pin['version']} (the version this project pins)"
            )
        archive = dest / f"{pin['name']}-{pin['version']}.tgz"
        if archive.exists() and sha256_file(archive) == entry.get("digest"):
            kept += 1
            continue
        download(urllib.parse.urljoin(f"{repo}/", str(entry["urls"][0])), archive)
        if entry.get("digest") and sha256_file(archive) != entry["digest"]:
            archive.unlink()
            raise MirrorError(
                f"{pin['name']}-{pin['version']} from {repo} does not match the digest of its index: not kept"
            )
        fetched += 1
        say(f"fetched {archive.name} from {repo}")
    tls = yaml.safe_load((ROOT / "roles" / "tls" / "defaults" / "main.yml").read_text())
    version = str(tls["tls_cert_manager_chart_version"])
    crds = dest / "manifests" / "cert-manager.crds.yaml"
    crds.parent.mkdir(exist_ok=True)
    crds_url = (
        f"{from_url.rstrip('/')}/manifests/cert-manager.crds.yaml" if from_url else CRDS_URL.format(version=version)
    )
    download(crds_url, crds)
    run_helm("repo", "index", str(dest))  # relative URLs: valid wherever the directory is served from
    say(f"{dest}: {fetched} charts fetched, {kept} already there, cert-manager {version} CRDs; index written")
    return 0


# --------------------------------------------------------------------------------------------
# Chart.lock of the meta chart


def go_dependency(dep: dict[str, Any]) -> dict[str, Any]:
    """A dependency as helm's Go json.Marshal writes it (field order and omitempty of chart.Dependency)."""
    out: dict[str, Any] = {"name": str(dep["name"])}
    if dep.get("version"):
        out["version"] = str(dep["version"])
    out["repository"] = str(dep.get("repository") or "")
    for key in ("condition", "tags", "enabled", "import-values", "alias"):
        if dep.get(key):
            out[key] = dep[key]
    return out


def lock_digest(req: list[dict[str, Any]], lock: list[dict[str, Any]]) -> str:
    """helm's resolver.HashReq: sha256 of the JSON of [requirements, locked dependencies]."""
    data = json.dumps([[go_dependency(d) for d in req], [go_dependency(d) for d in lock]], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def expected_lock(chart: Path) -> dict[str, Any]:
    meta = load_chart(chart)
    req = meta.get("dependencies") or []
    locked = []
    for dep in req:
        version = str(dep.get("version", ""))
        if not version or any(c in version for c in "<>=~^*| ,x"):
            raise MirrorError(
                f"{chart.name}/Chart.yaml: dependency {dep.get('name')} has version {version!r}: pin one exact version"
            )
        locked.append({"name": dep["name"], "repository": dep["repository"], "version": version})
    return {"dependencies": locked, "digest": lock_digest(req, locked)}


def lock(check: bool, chart: Path = META_CHART) -> int:
    want = expected_lock(chart)
    path = chart / "Chart.lock"
    have = yaml.safe_load(path.read_text()) if path.exists() else None
    same = bool(have) and have.get("dependencies") == want["dependencies"] and have.get("digest") == want["digest"]
    if check:
        if not same:
            print(f"{path.relative_to(ROOT)} is out of sync with Chart.yaml: run tools/chart-mirror.py lock")
            return 1
        print(f"{path.relative_to(ROOT)} is in sync with Chart.yaml")
        return 0
    if same:
        say(f"{path.relative_to(ROOT)} already in sync")
        return 0
    generated = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    text = yaml.safe_dump({**want, "generated": generated}, sort_keys=False, default_flow_style=False)
    path.write_text(text)
    say(f"wrote {path.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("source", "start", "status", "url", "stop"):
        sub.add_parser(name)
    pull_p = sub.add_parser("pull")
    pull_p.add_argument("dest", type=Path)
    pull_p.add_argument("--from", dest="from_url", default=None)
    lock_p = sub.add_parser("lock")
    lock_p.add_argument("--check", action="store_true")
    serve_p = sub.add_parser("_serve")
    serve_p.add_argument("directory", type=Path)
    serve_p.add_argument("port", type=int)
    serve_p.add_argument("state", nargs="?")
    args = parser.parse_args(argv)
    try:
        if args.command == "source":
            print(source())
        elif args.command == "start":
            print(start())
        elif args.command == "pull":
            return pull(args.dest, args.from_url)
        elif args.command == "stop":
            stop()
        elif args.command == "status":
            return status()
        elif args.command == "url":
            url = running_url(patience=5)
            if not url:
                say("not running (tools/chart-mirror.py start)")
                return 3
            print(url)
        elif args.command == "lock":
            return lock(args.check)
        elif args.command == "_serve":
            serve(args.directory, args.port)
    except MirrorError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
