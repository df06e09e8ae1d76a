"""mybinder.deploy.git_crypt against the real git-crypt, on repositories made in temporary directories.

The module runs the way Ansible runs it with pipelining: the interpreter, arguments as JSON on
standard input (git_crypt_testlib.run_module). Playbook-level runs (-vvv, the role) are in
test_secrets_leak.py and test_secrets_role.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from git_crypt_testlib import (
    comparable,
    ensure_git_crypt_on_path,
    env_without_git_crypt,
    export_foreign_key,
    gc_utils,
    git_crypt_path,
    make_repo,
    module_command,
    module_env,
    run_module,
    sh,
    tree_state,
    worktree_encrypted,
)

SECRET_FILES = {
    "secret/config/prod.yaml": "hub:\n  cookieSecret: prod-cookie-3f9a1c\n",
    "secret/config/staging.yaml": "hub:\n  cookieSecret: staging-cookie-77b2e0\n",
    "secret/ovh-kubeconfig.yml": "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: ovh-token-1a2b}}]\n",
    "secret/tls/wildcard.key": "-----BEGIN PRIVATE KEY-----\nplaceholder-key-body\n-----END PRIVATE KEY-----\n",
    "secret/tls/wildcard.crt": "-----BEGIN CERTIFICATE-----\nplaceholder-cert-body\n-----END CERTIFICATE-----\n",
    "secret/gke-prod-sa.json": '{"type": "service_account", "private_key": "sa-key-9c8d"}\n',
}
PLAIN_FILES = {"README.md": "# test repository\n", "config/prod.yaml": "binderhub: {replicas: 1}\n"}
PRIVATE = ["secret/gke-prod-sa.json", "secret/ovh-kubeconfig.yml", "secret/tls/wildcard.key"]


@pytest.fixture(scope="module", autouse=True)
def _git_crypt_on_path():
    ensure_git_crypt_on_path()


@pytest.fixture
def origin(tmp_path: Path):
    return make_repo(tmp_path / "origin", {**SECRET_FILES, **PLAIN_FILES})


@pytest.fixture
def clone(origin, tmp_path: Path) -> Path:
    return origin.clone(tmp_path / "clone")


def unlock_args(clone: Path, origin, **extra) -> dict:
    return {"path": str(clone), "key": origin.key_b64(), **extra}


def assert_locked_like_a_fresh_clone(clone: Path) -> None:
    state = tree_state(clone, with_times=False)
    # git-crypt lock leaves an empty .git/git-crypt/keys behind; no key file may remain.
    assert set((state["git_crypt_dir"] or {}).values()) <= {"dir"}, "a key is still installed"
    assert state["config"] == "", "git-crypt filters are still configured"
    assert state["status"] == "", "the work tree is not clean"
    for rel in SECRET_FILES:
        assert worktree_encrypted(clone, rel), f"{rel} is not encrypted in the work tree"


# -- unlock, re-run, lock, re-lock -------------------------------------------------------------------


def test_unlock_check_real_then_rerun_changes_nothing(origin, clone):
    before = tree_state(clone)
    predicted = run_module(unlock_args(clone, origin), check=True)
    assert predicted["_rc"] == 0, predicted
    assert predicted["changed"] is True
    assert (predicted["state_before"], predicted["state"]) == ("locked", "unlocked")
    assert predicted["key_name"] is None
    assert predicted["decrypted"] == sorted(SECRET_FILES)
    assert tree_state(clone) == before, "check mode changed the repository"

    real = run_module(unlock_args(clone, origin))
    assert comparable(real) == comparable(predicted), "check mode did not predict the real run"
    for rel, content in SECRET_FILES.items():
        assert (clone / rel).read_text() == content
    assert (clone / ".git/git-crypt/keys/default").read_bytes() == origin.key()
    assert tree_state(clone)["status"] == ""

    after = tree_state(clone)
    check_again = run_module(unlock_args(clone, origin), check=True)
    again = run_module(unlock_args(clone, origin))
    for res in (check_again, again):
        assert res["_rc"] == 0 and res["changed"] is False, res
        assert (res["state_before"], res["state"]) == ("unlocked", "unlocked")
        assert res["decrypted"] == sorted(SECRET_FILES) and res["permissions_fixed"] == []
    assert comparable(check_again) == comparable(again)
    assert tree_state(clone) == after, "the idempotent run touched files (mtime, inode, mode or content changed)"


def test_lock_check_real_then_relock_changes_nothing(origin, clone):
    assert run_module(unlock_args(clone, origin))["changed"] is True
    before = tree_state(clone)
    predicted = run_module({"path": str(clone), "state": "locked"}, check=True)
    assert predicted["_rc"] == 0 and predicted["changed"] is True
    assert (predicted["state_before"], predicted["state"], predicted["decrypted"]) == ("unlocked", "locked", [])
    assert tree_state(clone) == before, "check mode changed the repository"

    real = run_module({"path": str(clone), "state": "locked"})
    assert comparable(real) == comparable(predicted)
    assert_locked_like_a_fresh_clone(clone)

    after = tree_state(clone)
    for check in (True, False):
        res = run_module({"path": str(clone), "state": "locked"}, check=check)
        assert res["_rc"] == 0 and res["changed"] is False, res
        assert (res["state_before"], res["state"]) == ("locked", "locked")
    assert tree_state(clone) == after


def test_diff_mode_shows_the_state_change(origin, clone):
    res = run_module(unlock_args(clone, origin), diff=True)
    assert res["diff"]["before"] == "state: locked\n"
    assert res["diff"]["after"].startswith("state: unlocked\n")


# -- wrong keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [True, False], ids=["check_mode", "real"])
def test_key_of_another_repository_is_refused_and_nothing_changes(origin, clone, tmp_path, check):
    foreign = export_foreign_key(tmp_path / "other")
    before = tree_state(clone)
    res = run_module({"path": str(clone), "key": base64.b64encode(foreign).decode()}, check=check)
    assert res["_rc"] != 0 and res["failed"]
    assert "this key does not belong to this repository" in res["msg"]
    assert "Nothing was changed" in res["msg"]
    assert tree_state(clone) == before
    assert_locked_like_a_fresh_clone(clone)


def make_mixed_origin(tmp_path: Path):
    """A repository whose second encrypted file was encrypted with another repository's key: the key is
    right for secret/a.yaml (so the pre-check passes) and `git-crypt unlock` itself fails half way."""
    repo = make_repo(tmp_path / "mixed", {"secret/a.yaml": "a: first-secret-5e1f\n", "README.md": "x\n"})
    other = make_repo(tmp_path / "foreign", {"secret/b.yaml": "b: foreign-secret-0d2c\n"})
    blob = sh("git", "cat-file", "blob", "HEAD:secret/b.yaml", cwd=other.origin).stdout
    sha = sh("git", "hash-object", "-w", "--no-filters", "--stdin", cwd=repo.origin, input=blob).stdout.decode().strip()
    sh("git", "update-index", "--add", "--cacheinfo", f"100644,{sha},secret/b.yaml", cwd=repo.origin)
    sh("git", "commit", "-q", "-m", "a file encrypted with another key", cwd=repo.origin)
    return repo


def test_failing_unlock_is_rolled_back_exactly(tmp_path):
    repo = make_mixed_origin(tmp_path)
    clone = repo.clone(tmp_path / "clone")
    before = tree_state(clone, with_times=False)
    res = run_module({"path": str(clone), "key": repo.key_b64()})
    assert res["_rc"] != 0
    assert "this key does not belong to this repository" in res["msg"]
    assert "secret/b.yaml" in res["msg"]
    assert "restored exactly as it was" in res["msg"]
    assert res["command"][1:] == ["unlock", "-"], "the failing command is reported (and holds no key)"
    # Raw git-crypt leaves the key installed and the repository half unlocked here; the module does not.
    assert tree_state(clone, with_times=False) == before
    assert not (clone / ".git/git-crypt").exists()


def test_raw_git_crypt_leaves_the_same_repository_half_unlocked(tmp_path):
    """The failure the module guards against, shown with git-crypt itself (documents the baseline)."""
    repo = make_mixed_origin(tmp_path)
    clone = repo.clone(tmp_path / "clone")
    res = sh(git_crypt_path(), "unlock", "-", cwd=clone, input=repo.key(), check=False)
    assert res.returncode != 0
    assert (clone / ".git/git-crypt/keys/default").exists()
    assert tree_state(clone, with_times=False)["status"] != ""


def test_unlocked_with_a_different_key_is_an_error(origin, clone, tmp_path):
    assert run_module(unlock_args(clone, origin))["changed"]
    foreign = export_foreign_key(tmp_path / "other")
    before = tree_state(clone)
    res = run_module({"path": str(clone), "key": base64.b64encode(foreign).decode()})
    assert res["_rc"] != 0
    assert "already unlocked with a different git-crypt key" in res["msg"]
    assert "Nothing was changed" in res["msg"]
    assert tree_state(clone) == before


def test_half_unlocked_with_a_wrong_key_can_be_locked_and_unlocked(origin, clone, tmp_path):
    foreign = export_foreign_key(tmp_path / "other")
    assert sh(git_crypt_path(), "unlock", "-", cwd=clone, input=foreign, check=False).returncode != 0
    res = run_module(unlock_args(clone, origin))
    assert res["_rc"] != 0 and "half unlocked with a different git-crypt key" in res["msg"]
    locked = run_module({"path": str(clone), "state": "locked"})  # no force: only git-crypt's debris is "dirty"
    assert locked["_rc"] == 0 and locked["changed"] and locked["state_before"] == "partial", locked
    assert_locked_like_a_fresh_clone(clone)
    assert run_module(unlock_args(clone, origin))["state"] == "unlocked"


def test_half_finished_unlock_with_the_same_key_is_completed(origin, clone):
    sh(git_crypt_path(), "unlock", "-", cwd=clone, input=origin.key())
    # What an interrupted unlock leaves: one file still the encrypted blob, one not written yet.
    blob = sh("git", "cat-file", "blob", ":secret/config/prod.yaml", cwd=clone).stdout
    (clone / "secret/config/prod.yaml").write_bytes(blob)
    (clone / "secret/config/staging.yaml").unlink()
    predicted = run_module(unlock_args(clone, origin), check=True)
    res = run_module(unlock_args(clone, origin))
    assert res["_rc"] == 0 and res["changed"] and res["state_before"] == "partial", res
    assert comparable(predicted) == comparable(res)
    for rel, content in SECRET_FILES.items():
        assert (clone / rel).read_text() == content
    assert tree_state(clone)["status"] == ""


# -- refusals --------------------------------------------------------------------------------------------


def test_dirty_tree_is_refused_with_the_files_and_nothing_changes(origin, clone):
    (clone / "README.md").write_text("local edit\n")
    (clone / "config/prod.yaml").write_text("binderhub: {replicas: 2}\n")
    before = tree_state(clone)
    for check in (True, False):
        res = run_module(unlock_args(clone, origin), check=check)
        assert res["_rc"] != 0
        assert "modified tracked files: README.md, config/prod.yaml" in res["msg"]
        assert res["dirty_files"] == ["README.md", "config/prod.yaml"]
        assert "Nothing was changed" in res["msg"]
    assert tree_state(clone) == before


def test_lock_of_a_dirty_tree_needs_force(origin, clone):
    run_module(unlock_args(clone, origin))
    (clone / "secret/config/prod.yaml").write_text("hub:\n  cookieSecret: edited\n")
    before = tree_state(clone)
    res = run_module({"path": str(clone), "state": "locked"})
    assert res["_rc"] != 0
    assert res["dirty_files"] == ["secret/config/prod.yaml"] and "force=true" in res["msg"]
    assert tree_state(clone) == before
    forced = run_module({"path": str(clone), "state": "locked", "force": True})
    assert forced["_rc"] == 0 and forced["changed"]
    assert_locked_like_a_fresh_clone(clone)


def test_missing_git_crypt_gives_the_install_hint(origin, clone):
    before = tree_state(clone)
    res = run_module(unlock_args(clone, origin), env=module_env(env_without_git_crypt()))
    assert res["_rc"] != 0
    assert "git-crypt was not found on PATH" in res["msg"]
    assert "apt-get install git-crypt" in res["msg"] and "tools/install-git-crypt.sh" in res["msg"]
    res = run_module(unlock_args(clone, origin, binary_path=str(clone / "no-such-git-crypt")))
    assert res["_rc"] != 0 and "is not an executable file" in res["msg"] and "apt-get install" in res["msg"]
    assert tree_state(clone) == before


def test_explicit_binary_path_is_used(origin, clone):
    res = run_module(unlock_args(clone, origin, binary_path=git_crypt_path()), env=module_env(env_without_git_crypt()))
    assert res["_rc"] == 0 and res["changed"], res


def test_not_a_git_crypt_repository(tmp_path, origin):
    plain = tmp_path / "plain"
    plain.mkdir()
    sh("git", "init", "-q", cwd=plain)
    (plain / "README.md").write_text("x\n")
    sh("git", "add", "README.md", cwd=plain)
    sh("git", "commit", "-q", "-m", "x", cwd=plain)
    for args in ({"key": origin.key_b64()}, {"state": "locked"}):
        res = run_module({"path": str(plain), **args})
        assert res["_rc"] != 0 and "is not a git-crypt repository" in res["msg"], res
        assert "filter=git-crypt" in res["msg"]
    not_git = tmp_path / "not-git"
    not_git.mkdir()
    res = run_module({"path": str(not_git), "key": origin.key_b64()})
    assert res["_rc"] != 0 and "is not inside a git work tree" in res["msg"]


BAD_KEYS = [
    ("truncated", lambda key, blob: key[:100], "is truncated or corrupted"),
    ("random bytes", lambda key, blob: os.urandom(148), "is not a git-crypt key"),
    ("an encrypted file", lambda key, blob: blob, "is a git-crypt encrypted file, not a key"),
    ("base64 text", lambda key, blob: base64.b64encode(key) + b"\n", "looks like base64 text"),
    ("legacy key", lambda key, blob: os.urandom(96), "git-crypt migrate-key"),
    ("version 1", lambda key, blob: key[:12] + b"\x00\x00\x00\x01" + key[16:], "key format version 1"),
    ("empty", lambda key, blob: b"", "is not a git-crypt key"),
]


@pytest.mark.parametrize(("make", "expected"), [(row[1], row[2]) for row in BAD_KEYS], ids=[row[0] for row in BAD_KEYS])
def test_corrupted_or_non_key_file_is_a_clear_error(origin, clone, tmp_path, make, expected):
    blob = (clone / "secret/config/prod.yaml").read_bytes()
    bad = tmp_path / "bad.key"
    bad.write_bytes(make(origin.key(), blob))
    before = tree_state(clone)
    res = run_module({"path": str(clone), "key_file": str(bad)})
    assert res["_rc"] != 0 and expected in res["msg"], res["msg"]
    assert tree_state(clone) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [("not base64 at all!", "is not base64 text"), ("   \n ", "`key` is empty")],
    ids=["garbage", "blank"],
)
def test_bad_base64_key_is_a_clear_error_without_the_value(origin, clone, text, expected):
    res = run_module({"path": str(clone), "key": text})
    assert res["_rc"] != 0 and expected in res["msg"]
    assert "at all" not in res["msg"]


def test_key_and_key_file_are_exclusive_and_one_is_required(origin, clone, tmp_path):
    res = run_module({"path": str(clone), "key": origin.key_b64(), "key_file": str(tmp_path / "k")})
    assert res["_rc"] != 0 and "mutually exclusive" in res["msg"]
    res = run_module({"path": str(clone)})
    assert res["_rc"] != 0 and "key, key_file" in res["msg"]


def test_missing_key_file(origin, clone, tmp_path):
    res = run_module({"path": str(clone), "key_file": str(tmp_path / "nope.key")})
    assert res["_rc"] != 0 and "does not exist" in res["msg"]


# -- key forms -----------------------------------------------------------------------------------------


def test_base64_with_line_breaks_and_spaces(origin, clone):
    b64 = origin.key_b64()
    wrapped = "\n  " + "\r\n ".join(b64[i : i + 20] for i in range(0, len(b64), 20)) + " \n\t"
    res = run_module({"path": str(clone), "key": wrapped})
    assert res["_rc"] == 0 and res["changed"] and res["state"] == "unlocked", res
    unpadded = b64.rstrip("=")  # some CI systems drop the padding
    assert run_module({"path": str(clone), "key": unpadded})["changed"] is False


def test_key_file_relative_to_the_repository_warns_unless_ignored(origin, clone, tmp_path):
    keydir = clone / "keys-outside-git"
    keydir.mkdir()
    (keydir / "k").write_bytes(origin.key())
    res = run_module({"path": str(clone), "key_file": "keys-outside-git/k"})
    assert res["_rc"] == 0 and res["changed"], res
    # untracked and not ignored inside the work tree: one `git add -A` away from being committed
    assert "keys-outside-git/k is inside the repository's work tree" in json.dumps(res["warnings"])
    (clone / ".git/info/exclude").write_text("keys-outside-git/\n")
    assert "warnings" not in run_module({"path": str(clone), "key_file": "keys-outside-git/k"})


def test_named_keys(tmp_path):
    repo = make_repo(
        tmp_path / "origin",
        {"secret/prod.yaml": "p: default-key-secret\n", "secret/ovh/kubeconfig": "token: ovh-key-secret\n"},
        attributes="secret/** filter=git-crypt diff=git-crypt\nsecret/ovh/** filter=git-crypt-ovh diff=git-crypt-ovh\n",
        key_names=(None, "ovh"),
    )
    clone = repo.clone(tmp_path / "clone")
    # The name comes from the key file; key_name must agree with it.
    res = run_module({"path": str(clone), "key": repo.key_b64("ovh"), "key_name": "other"})
    assert res["_rc"] != 0 and "is git-crypt key 'ovh', but key_name is 'other'" in res["msg"]
    res = run_module({"path": str(clone), "key": repo.key_b64(None), "key_name": "ovh"})
    assert res["_rc"] != 0 and "key_name is 'ovh'" in res["msg"]
    res = run_module({"path": str(clone), "key": repo.key_b64("ovh"), "key_name": "ovh"})
    assert res["_rc"] == 0 and res["changed"] and res["key_name"] == "ovh", res
    assert res["decrypted"] == ["secret/ovh/kubeconfig"]
    assert (clone / "secret/ovh/kubeconfig").read_text() == "token: ovh-key-secret\n"
    assert worktree_encrypted(clone, "secret/prod.yaml"), "the default key's files must stay encrypted"
    assert (clone / ".git/git-crypt/keys/ovh").exists() and not (clone / ".git/git-crypt/keys/default").exists()
    # The default key is still locked: locking it is a no-op; unlocking it works independently.
    assert run_module({"path": str(clone), "state": "locked"})["changed"] is False
    assert run_module({"path": str(clone), "key": repo.key_b64(None)})["decrypted"] == ["secret/prod.yaml"]
    assert run_module({"path": str(clone), "key": repo.key_b64("ovh")})["changed"] is False
    locked = run_module({"path": str(clone), "state": "locked", "key_name": "ovh"})
    assert locked["changed"] and locked["key_name"] == "ovh"
    assert worktree_encrypted(clone, "secret/ovh/kubeconfig")
    assert (clone / "secret/prod.yaml").read_text() == "p: default-key-secret\n"
    res = run_module({"path": str(clone), "state": "locked", "key_name": "nope"})
    assert res["_rc"] != 0 and "no file in" in res["msg"] and "'nope'" in res["msg"]
    res = run_module({"path": str(clone), "state": "locked", "key_name": "bad name"})
    assert res["_rc"] != 0 and "not a valid git-crypt key name" in res["msg"]


# -- credential file modes -------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_credential_files_become_private(origin, clone):
    res = run_module(unlock_args(clone, origin))
    assert res["permissions_fixed"] == PRIVATE
    for rel in SECRET_FILES:
        assert mode(clone / rel) == (0o600 if rel in PRIVATE else 0o644), rel
    assert mode(clone / "README.md") == 0o644
    # Someone loosens one again: the next run fixes only that, and check mode predicts it.
    os.chmod(clone / "secret/ovh-kubeconfig.yml", 0o644)
    predicted = run_module(unlock_args(clone, origin), check=True)
    assert mode(clone / "secret/ovh-kubeconfig.yml") == 0o644
    real = run_module(unlock_args(clone, origin))
    assert real["changed"] and real["permissions_fixed"] == ["secret/ovh-kubeconfig.yml"]
    assert comparable(predicted) == comparable(real)
    assert mode(clone / "secret/ovh-kubeconfig.yml") == 0o600
    assert run_module(unlock_args(clone, origin))["changed"] is False


def test_credential_patterns_and_mode_are_configurable(origin, clone):
    res = run_module(unlock_args(clone, origin, private_file_patterns=["secret/config/*"], private_file_mode="0640"))
    assert res["permissions_fixed"] == ["secret/config/prod.yaml", "secret/config/staging.yaml"]
    assert mode(clone / "secret/config/prod.yaml") == 0o640
    assert mode(clone / "secret/ovh-kubeconfig.yml") == 0o644
    res = run_module(unlock_args(clone, origin, private_file_mode="rw-------"))
    assert res["_rc"] != 0 and "not an octal mode" in res["msg"]


# -- the key is never left behind ---------------------------------------------------------------------------


def key_forms(key: bytes) -> list[bytes]:
    parsed = gc_utils.parse_key(key)
    forms = [key, base64.b64encode(key), key.hex().encode()]
    for entry in parsed.entries:
        forms += [entry.aes_key, entry.hmac_key, entry.aes_key.hex().encode(), entry.hmac_key.hex().encode()]
        forms += [base64.b64encode(entry.aes_key), base64.b64encode(entry.hmac_key)]
    return forms


def files_holding_key(root: Path, key: bytes, allowed: set[Path]) -> list[str]:
    forms = key_forms(key)
    found = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and p not in allowed:
            data = p.read_bytes()
            if any(f in data for f in forms):
                found.append(str(p))
    return found


def test_key_never_left_behind_on_success_or_failure(tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = module_env({"TMPDIR": str(tmpdir)})
    ok = make_repo(tmp_path / "ok", {"secret/a.yaml": "a: 1\n"})
    mixed = make_mixed_origin(tmp_path / "m")
    foreign = export_foreign_key(tmp_path / "foreign")
    ok_clone = ok.clone(tmp_path / "ok-clone")
    mixed_clone = mixed.clone(tmp_path / "mixed-clone")
    # success, wrong key (refused before git-crypt), and git-crypt itself failing half way
    assert run_module({"path": str(ok_clone), "key": ok.key_b64()}, env=env)["changed"]
    assert run_module({"path": str(ok_clone), "state": "locked"}, env=env)["changed"]
    assert run_module({"path": str(ok_clone), "key": base64.b64encode(foreign).decode()}, env=env)["_rc"] != 0
    assert run_module({"path": str(mixed_clone), "key": mixed.key_b64()}, env=env)["_rc"] != 0
    assert list(tmpdir.iterdir()) == []
    # The exported keys exist only where git-crypt itself keeps them in the origin repositories.
    for repo in (ok, mixed):
        allowed = {repo.origin / ".git/git-crypt/keys/default"}
        assert files_holding_key(tmp_path, repo.key(), allowed) == []
    assert files_holding_key(tmp_path, foreign, {tmp_path / "foreign/.git/git-crypt/keys/default"}) == []


@pytest.fixture(scope="module")
def big_origin(tmp_path_factory):
    ensure_git_crypt_on_path()
    files = {f"secret/f{i:03}.yaml": f"value: {i}-{os.urandom(8).hex()}\n" for i in range(300)}
    return make_repo(tmp_path_factory.mktemp("big") / "origin", files)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_unlock_is_rolled_back_and_leaves_no_key(big_origin, tmp_path, sig):
    # The signal is sent once git-crypt has installed the key and is checking out the files. On a
    # busy machine the checkout can finish before the signal lands; then the unlock is complete
    # (not half done) and the attempt is repeated, until one is interrupted half way.
    for attempt in range(5):
        clone = big_origin.clone(tmp_path / f"clone-{attempt}")
        tmpdir = tmp_path / f"tmpdir-{attempt}"
        tmpdir.mkdir()
        before = tree_state(clone, with_times=False)
        argv, stdin = module_command({"path": str(clone), "key": big_origin.key_b64()})
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=module_env({"TMPDIR": str(tmpdir)}),
            # A shell's background job ignores SIGINT, and a process started with SIGINT ignored keeps
            # ignoring it (Python then installs no KeyboardInterrupt handler): give the module the
            # default disposition a terminal's Ctrl-C meets, however the tests were started.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        proc.stdin.write(stdin)
        proc.stdin.close()
        installed = clone / ".git/git-crypt/keys/default"
        deadline = time.monotonic() + 60
        while not installed.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert installed.exists(), "git-crypt never installed the key"
        proc.send_signal(sig)  # git-crypt is now checking out the 300 files
        out = proc.stdout.read()
        proc.stderr.read()
        proc.wait(timeout=120)
        res = json.loads(out)
        assert list(tmpdir.iterdir()) == []
        if not res.get("failed"):
            assert res["changed"] and res["state"] == "unlocked", res  # finished before the signal: whole
            continue
        assert "interrupted while unlocking" in res["msg"] and "restored exactly as it was" in res["msg"], res["msg"]
        assert tree_state(clone, with_times=False) == before
        assert not installed.exists()
        break
    else:
        pytest.fail("in 5 attempts the signal never arrived while git-crypt was still checking out")
    assert (
        files_holding_key(
            tmp_path, big_origin.key(), {tmp_path / f"clone-{i}/.git/git-crypt/keys/default" for i in range(attempt)}
        )
        == []
    )
