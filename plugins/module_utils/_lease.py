# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock (collection-private): one deploy of a release at a time, across machines, held
in the cluster itself as a coordination.k8s.io Lease per release.

A run takes the Lease of a release before it touches the release, renews it while it works, and
gives it back when the release has rolled out (or was rolled back). Every module of the deploy
that can run long renews it: helm_release while helm runs, rollout_status once per round,
helm_rollback while helm rolls back (``Renewing`` below). A run that dies (Ctrl-C, a lost
controller) stops renewing: its Lease expires ``duration`` seconds after the last renewal, and the
next run takes it over, saying from whom.

The Lease also remembers the revision whose rollout its holder has not confirmed yet (an
annotation, written after helm made the revision and removed once it rolled out or was rolled
back), so that the next run finishes what an interrupted one started: it waits for that rollout
again and, if it fails, rolls back to the revision it replaced.

And a revision that helm left pending while nobody holds the Lease is another helm run's (an
operator's own `helm upgrade --wait`): the run waits for it to end instead of treating it as
abandoned, up to a grace period (``pending_revisions``).

Why our own: helm has no lock. Two `helm upgrade` runs of one release race ("another operation is
in progress", or one rolls back what the other just deployed), and a pending revision cannot tell
a live helm run from a dead one. The Lease is the API's own object for this (leader election uses
it); its times are the holders' wall clocks, so the machines that deploy need synchronised clocks
(a few seconds of skew against a duration of a minute do no harm).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._helm import PENDING_STATES
from ansible_collections.mybinder.deploy.plugins.module_utils._kube_client import (
    KubeClient,
    KubeError,
    connect,
    transient,
)

API = "/apis/coordination.k8s.io/v1"
LEASE_NAMESPACE = "kube-system"
LEASE_DURATION = 60
PENDING_GRACE = 300
LOCK_TIMEOUT = 600
UNCONFIRMED = "mybinder.org/unconfirmed-rollout"
TOOK_OVER = "mybinder.org/took-over-from"
SECRET_KEYS = "mybinder.org/secret-value-keys"
RELEASE = "mybinder.org/release"

# The `lock` option of the modules that renew a lock they were given (helm_release,
# rollout_status, helm_rollback): what release_lock returned as `lock`.
LOCK_ARG_SPEC: dict[str, dict[str, Any]] = {
    "lock": {
        "type": "dict",
        "options": {
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "holder": {"type": "str", "required": True},
            "duration": {"type": "int", "default": LEASE_DURATION},
        },
    },
}


class LockError(ModuleError):
    """The lock is held by another run, or was lost to one."""


@dataclass(frozen=True)
class Lock:
    """A Lease and the run that holds (or wants) it."""

    name: str
    namespace: str
    holder: str
    duration: int = LEASE_DURATION

    @property
    def path(self) -> str:
        return f"{API}/namespaces/{self.namespace}/leases/{self.name}"

    def as_option(self) -> dict[str, Any]:
        """The value of the `lock` option of the modules that renew it."""
        return {"name": self.name, "namespace": self.namespace, "holder": self.holder, "duration": self.duration}


def lock_for(release: str, release_namespace: str, holder: str, lease_namespace: str, duration: int) -> Lock:
    """The Lock of a release: one Lease per release namespace and name."""
    return Lock(f"mybinder-deploy.{release_namespace}.{release}", lease_namespace, holder, duration)


def lock_option(option: dict[str, Any] | None) -> Lock | None:
    """The Lock a module's `lock` option names (None when it has none)."""
    if not option:
        return None
    return Lock(option["name"], option["namespace"], option["holder"], option.get("duration") or LEASE_DURATION)


def default_holder(playbook_pid: int) -> str:
    """Who holds a lock: the user, the machine and the ansible-playbook process of the run."""
    try:
        user = getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        user = "unknown user"  # no name for this uid
    return f"{user}@{socket.gethostname()} (ansible-playbook pid {playbook_pid})"


def now_utc() -> datetime:
    return datetime.now(UTC)


def micro_time(t: datetime) -> str:
    """A time as the API's MicroTime."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    return None


@dataclass(frozen=True)
class Holding:
    """What a Lease says about its holder."""

    holder: str
    acquired: datetime | None
    renewed: datetime | None
    duration: int
    unconfirmed: dict[str, int] | None
    took_over: dict[str, str] | None = None
    secret_keys: list[str] | None = None

    def live(self, now: datetime) -> bool:
        """Held by a run that renewed it within its duration."""
        return bool(self.holder) and self.renewed is not None and self.renewed + timedelta(seconds=self.duration) > now

    def describe(self, now: datetime) -> str:
        since = f" since {self.acquired:%Y-%m-%d %H:%M:%S} UTC" if self.acquired else ""
        ago = f", renewed {max(0, int((now - self.renewed).total_seconds()))} s ago" if self.renewed else ""
        return f"{self.holder}{since}{ago}"

    def as_result(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "acquired": micro_time(self.acquired) if self.acquired else None,
            "renewed": micro_time(self.renewed) if self.renewed else None,
        }


def holding_of(lease: dict[str, Any] | None) -> Holding:
    spec = (lease or {}).get("spec") or {}
    annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
    unconfirmed = took_over = None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        data = json.loads(annotations[UNCONFIRMED])
        unconfirmed = {"revision": int(data["revision"]), "replaces": int(data["replaces"])}
    with contextlib.suppress(ValueError, TypeError, KeyError):
        data = json.loads(annotations[TOOK_OVER])
        took_over = {
            "holder": str(data["holder"]),
            "acquired": str(data["acquired"] or ""),
            "renewed": str(data["renewed"] or ""),
        }
    secret_keys = None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        secret_keys = [str(k) for k in json.loads(annotations[SECRET_KEYS])]
    return Holding(
        holder=spec.get("holderIdentity") or "",
        acquired=parse_time(spec.get("acquireTime")),
        renewed=parse_time(spec.get("renewTime")),
        duration=int(spec.get("leaseDurationSeconds") or LEASE_DURATION),
        unconfirmed=unconfirmed,
        took_over=took_over,
        secret_keys=secret_keys,
    )


def read_lease(client: KubeClient, lock: Lock) -> dict[str, Any] | None:
    return client.get_or_none(lock.path)


@dataclass(frozen=True)
class Acquired:
    """The lock is this run's. ``took_over``: the holder whose lock had expired when this run took
    it (a run that died: holder, acquired, renewed), None when it was free; ``unconfirmed``: the
    rollout a former holder left unconfirmed; ``secret_keys``: the secret values' key paths the
    release last rolled out with (None: not recorded yet)."""

    took_over: dict[str, str] | None
    unconfirmed: dict[str, int] | None
    secret_keys: list[str] | None = None


def try_acquire(client: KubeClient, lock: Lock, release: str) -> Acquired | Holding:
    """One attempt to take the lock: Acquired, or the live Holding of another run. A lock this run
    holds already is renewed. Two runs that try at once cannot both win: the write carries the
    resourceVersion it read (or is a create), and the server refuses the second (409)."""
    now = now_utc()
    lease = read_lease(client, lock)
    held = holding_of(lease)
    if held.holder == lock.holder and lease is not None:
        try:
            renew(client, lock)
        except LockError:
            return holding_of(read_lease(client, lock))
        return Acquired(took_over=held.took_over, unconfirmed=held.unconfirmed, secret_keys=held.secret_keys)
    if lease is not None and held.live(now):
        return held
    took_over = held.as_result() if held.holder else None
    annotations = dict(((lease or {}).get("metadata") or {}).get("annotations") or {}, **{RELEASE: release})
    annotations.pop(TOOK_OVER, None)
    if took_over:
        annotations[TOOK_OVER] = json.dumps(took_over, sort_keys=True)
    spec = {
        "holderIdentity": lock.holder,
        "leaseDurationSeconds": lock.duration,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": int(((lease or {}).get("spec") or {}).get("leaseTransitions") or 0) + 1,
    }
    try:
        if lease is None:
            client.request(
                "POST",
                f"{API}/namespaces/{lock.namespace}/leases",
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": lock.name,
                        "namespace": lock.namespace,
                        "labels": {"app.kubernetes.io/managed-by": "mybinder.deploy"},
                        "annotations": annotations,
                    },
                    "spec": spec,
                },
            )
        else:
            lease["metadata"]["annotations"] = annotations
            lease["spec"] = spec
            client.request("PUT", lock.path, body=lease)
    except KubeError as exc:
        if exc.status == 409:  # another run wrote it first: its holding is what the next read shows
            return holding_of(read_lease(client, lock))
        raise
    return Acquired(took_over=took_over, unconfirmed=held.unconfirmed, secret_keys=held.secret_keys)


_KEEP: Any = object()


def renew(client: KubeClient, lock: Lock, unconfirmed: Any = _KEEP) -> None:
    """Renew this run's lock (and set or clear the unconfirmed rollout it records); LockError when
    another run holds it now (this run stopped renewing for longer than the duration)."""
    for _attempt in range(3):
        lease = read_lease(client, lock)
        held = holding_of(lease)
        if lease is None or held.holder != lock.holder:
            taken = f"{held.describe(now_utc())} holds it now" if held.holder else "nobody holds it now"
            raise LockError(
                f"lost the deploy lock {lock.namespace}/{lock.name}: {taken} (this run did not renew it within "
                f"{lock.duration} s)"
            )
        lease["spec"]["renewTime"] = micro_time(now_utc())
        if unconfirmed is not _KEEP:
            annotations = lease["metadata"].setdefault("annotations", {})
            if unconfirmed is None:
                annotations.pop(UNCONFIRMED, None)
            else:
                annotations[UNCONFIRMED] = json.dumps(unconfirmed, sort_keys=True)
        try:
            client.request("PUT", lock.path, body=lease)
            return
        except KubeError as exc:
            if exc.status != 409:
                raise
    raise LockError(f"renewing the deploy lock {lock.namespace}/{lock.name} kept conflicting with other writers")


def release(
    client: KubeClient, lock: Lock, rollout_confirmed: bool, secret_keys: list[str] | None = None
) -> Holding | None:
    """Give the lock back (clearing the unconfirmed rollout when ``rollout_confirmed``, recording
    the secret values' key paths the release was deployed with when given); None when released,
    or the holding of the run that holds it instead of this one (nothing is changed)."""
    for _attempt in range(3):
        lease = read_lease(client, lock)
        held = holding_of(lease)
        if lease is None:
            return None
        if held.holder != lock.holder:
            return held if held.holder else None
        lease["spec"] = {
            "leaseDurationSeconds": lock.duration,
            "leaseTransitions": lease["spec"].get("leaseTransitions") or 0,
            "renewTime": micro_time(now_utc()),
        }
        annotations = lease["metadata"].get("annotations") or {}
        annotations.pop(TOOK_OVER, None)
        if rollout_confirmed:
            annotations.pop(UNCONFIRMED, None)
        if secret_keys is not None:
            annotations[SECRET_KEYS] = json.dumps(sorted(set(secret_keys)))
        lease["metadata"]["annotations"] = annotations
        try:
            client.request("PUT", lock.path, body=lease)
            return None
        except KubeError as exc:
            if exc.status != 409:
                raise
    raise LockError(f"releasing the deploy lock {lock.namespace}/{lock.name} kept conflicting with other writers")


@dataclass(frozen=True)
class PendingRevision:
    revision: int
    status: str
    created: datetime | None


def pending_revisions(client: KubeClient, release_name: str, namespace: str) -> list[PendingRevision]:
    """The revisions of a release that helm left pending (from helm's storage Secrets' labels)."""
    items = client.items(
        f"/api/v1/namespaces/{namespace}/secrets",
        labelSelector=f"owner=helm,name={release_name},status in ({','.join(PENDING_STATES)})",
    )
    found = []
    for item in items:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        with contextlib.suppress(ValueError, TypeError):
            found.append(
                PendingRevision(
                    int(labels.get("version")), labels.get("status", ""), parse_time(meta.get("creationTimestamp"))
                )
            )
    return sorted(found, key=lambda p: p.revision)


class Renewing:
    """Keeps a lock renewed from a thread while a module works (every third of its duration):
    ``with Renewing(client, lock): ...``. ``check()`` raises the LockError of a lost lock; a
    renewal that fails for another reason (the API unreachable for a moment) is tried again at
    the next tick. ``lock`` None: nothing is renewed."""

    def __init__(self, client: KubeClient, lock: Lock | None) -> None:
        self.client, self.lock = client, lock
        self.lost: LockError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Renewing:
        if self.lock is not None:
            self.renew_now()
            self._thread = threading.Thread(target=self._run, name="lock-renewal", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def renew_now(self) -> None:
        """Renew at once; the LockError of a lost lock is raised. An API server that does not
        answer for a moment (a restart) is not an error here: the thread tries again."""
        if self.lock is not None:
            try:
                renew(self.client, self.lock)
            except LockError:
                raise
            except Exception as exc:
                if not transient(exc, "GET"):
                    raise

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    def _run(self) -> None:
        if self.lock is None:
            return
        interval = max(1.0, self.lock.duration / 3)
        while not self._stop.wait(interval):
            try:
                renew(self.client, self.lock)
            except LockError as exc:
                self.lost = exc
                return
            except Exception:  # pylint: disable=broad-except
                continue  # tried again at the next tick


# ---- the release_lock runner


def outside_helm_run(
    client: KubeClient, release_name: str, namespace: str, got: Acquired, grace: int, now: datetime
) -> str | None:
    """What the lock holder must wait for before it touches the release: a revision helm left
    pending less than ``grace`` seconds ago while no run of this collection held the lock (another
    helm run, as an operator's `helm upgrade --wait`, still working on it); None when there is none.
    A pending revision made while the run this one took the lock over from held it is that dead
    run's: the deploy recovers it (helm_release's recover_pending)."""
    dead_since = parse_time((got.took_over or {}).get("acquired"))
    for pending in pending_revisions(client, release_name, namespace):
        if pending.created is None:
            continue
        if dead_since is not None and pending.created >= dead_since - timedelta(seconds=5):
            continue
        age = (now - pending.created).total_seconds()
        if age < grace:
            return (
                f"revision {pending.revision} of release {release_name} has been {pending.status} for {age:.0f} s: "
                f"a helm run outside this deploy is working on it; this run waits for it to end (and treats it "
                f"as abandoned {grace} s after it began)"
            )
    return None


def release_lock(p: dict[str, Any], check_mode: bool, playbook_pid: int) -> dict[str, Any]:
    """One run (one round) of release_lock with its module parameters ``p``."""
    for option in ("duration", "timeout", "pending_grace"):
        if p[option] < (1 if option == "duration" else 0):
            raise ModuleError(
                f"{option}={p[option]} is out of range: a whole number of seconds, at least "
                f"{1 if option == 'duration' else 0}"
            )

    client = connect(p["kubeconfig"], p["context"])
    lock = lock_for(
        p["release"],
        p["release_namespace"],
        p["holder"] or default_holder(playbook_pid),
        p["lease_namespace"],
        p["duration"],
    )
    what = f"release {p['release']} (namespace {p['release_namespace']})"
    result: dict[str, Any] = {"changed": False, "lock": lock.as_option(), "done": True}
    if p["state"] == "released":
        if check_mode:
            return dict(result, released=False)
        other = release(client, lock, p["rollout_confirmed"], p["secret_keys"])
        if other is not None:
            return dict(
                result,
                released=False,
                held_by=other.as_result(),
                warning=f"the deploy lock of {what} was not this run's to release: "
                f"{other.describe(now_utc())} holds it",
            )
        return dict(result, released=True)
    if check_mode:  # --check never takes the lock; it says who holds it
        held = holding_of(read_lease(client, lock))
        live = held.live(now_utc()) and held.holder != lock.holder
        return dict(
            result,
            acquired=False,
            secret_keys=held.secret_keys,
            held_by=held.as_result() if live else None,
            warning=f"{what} is being deployed by {held.describe(now_utc())}: this check may "
            "predict changes that run is making"
            if live
            else None,
        )
    if p["record_rollout"] is not None:
        record = None
        if p["record_rollout"]:
            try:
                record = {k: int(p["record_rollout"][k]) for k in ("revision", "replaces")}
            except (KeyError, TypeError, ValueError) as exc:
                raise ModuleError(
                    f"record_rollout needs whole numbers revision and replaces, got {p['record_rollout']!r}"
                ) from exc
        renew(client, lock, unconfirmed=record)
        return dict(result, acquired=True, recorded=record)
    wait = p["wait_seconds"] if p["wait_seconds"] is not None else float(p["timeout"])
    deadline = time.monotonic() + wait
    while True:
        got = try_acquire(client, lock, f"{p['release_namespace']}/{p['release']}")
        now = now_utc()
        if isinstance(got, Acquired):
            waiting = outside_helm_run(client, p["release"], p["release_namespace"], got, p["pending_grace"], now)
            if waiting is None:
                return dict(
                    result,
                    acquired=True,
                    took_over=got.took_over,
                    unconfirmed_rollout=got.unconfirmed,
                    secret_keys=got.secret_keys,
                )
        else:
            waiting = f"the deploy lock is held by {got.describe(now)}"
        left = deadline - time.monotonic()
        if left <= 0:
            if not p["fail_on_timeout"]:
                return dict(result, done=False, acquired=isinstance(got, Acquired), waiting_for=waiting)
            if isinstance(got, Acquired):
                release(client, lock, rollout_confirmed=False)
            raise LockError(
                f"{what} is being deployed by another run, so this run changed nothing: {waiting} "
                f"(lock {lock.namespace}/{lock.name}, waited {p['timeout']} s). Deploy again when that run "
                "has finished, or give this one a longer timeout to wait for it",
                lock=lock.as_option(),
                held_by=None if isinstance(got, Acquired) else got.as_result(),
            )
        time.sleep(min(1.0, left))
