"""Pure logic of plugins/module_utils/_git_crypt.py and _secrets.py: key format, base64, names, modes,
state classification, secret value comparison, and the exact command lines of the CLI wrapper."""

from __future__ import annotations

import base64
import json
import os
import stat
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from git_crypt_testlib import gc_utils as g  # also puts the collection on sys.path
from git_crypt_testlib import secrets_utils as s

AES = bytes(range(32))
HMAC = bytes(range(100, 164))


def field(fid: int, data: bytes) -> bytes:
    return struct.pack(">II", fid, len(data)) + data


def key_bytes(name: str | None = None, entries=((0, AES, HMAC),), version: int = 2, extra_header: bytes = b"") -> bytes:
    out = g.KEY_MAGIC + struct.pack(">I", version)
    if name:
        out += field(1, name.encode())
    out += extra_header + struct.pack(">I", 0)
    for ver, aes, hmac in entries:
        out += field(1, struct.pack(">I", ver)) + field(3, aes) + field(5, hmac) + struct.pack(">I", 0)
    return out


# -- key files ---------------------------------------------------------------------------------------


def test_parse_default_and_named_keys():
    k = g.parse_key(key_bytes())
    assert k.name is None and k.display_name == "default" and k.filter_name == "git-crypt"
    assert k.entries == (g.KeyEntry(0, AES, HMAC),)
    named = g.parse_key(key_bytes("ovh"))
    assert named.name == "ovh" and named.filter_name == "git-crypt-ovh"
    assert named != k, "same material under another name is another key"


def test_key_equality_is_by_material_and_repr_hides_it():
    a = g.parse_key(key_bytes())
    b = g.parse_key(key_bytes())
    other = g.parse_key(key_bytes(entries=((0, AES[::-1], HMAC),)))
    assert a == b and a != other
    assert AES.hex() not in repr(a) and repr(AES) not in repr(a) and "raw" not in repr(a)


def test_multiple_key_versions_and_unknown_optional_fields():
    data = key_bytes(entries=((0, AES, HMAC), (1, AES[::-1], HMAC[::-1])), extra_header=field(2, b"ignored"))
    k = g.parse_key(data)
    assert [e.version for e in k.entries] == [0, 1]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (key_bytes()[:-10], "truncated or corrupted"),
        (key_bytes(version=1), "key format version 1"),
        (key_bytes(extra_header=field(7, b"x")), "written by a newer git-crypt"),
        (key_bytes(entries=((0, AES[:16], HMAC),)), "wrong length"),
        (g.KEY_MAGIC + struct.pack(">II", 2, 0), "holds no key"),
        (key_bytes(name="bad name"), "key name is not valid"),
        (b"\x00GITCRYPT\x00" + os.urandom(30), "encrypted file, not a key"),
        (b"\x00GITCRYPTKE", "it is damaged"),
        (os.urandom(96), "git-crypt migrate-key"),
        (base64.b64encode(key_bytes()), "looks like base64 text"),
        (b"hello world\x01\x02", "does not start with the git-crypt key signature"),
    ],
    ids=[
        "truncated",
        "version",
        "critical-field",
        "short-aes",
        "no-entry",
        "bad-name",
        "encrypted",
        "damaged-magic",
        "legacy",
        "base64",
        "garbage",
    ],
)
def test_bad_keys_are_explained(data, expected):
    with pytest.raises(g.KeyFormatError) as err:
        g.parse_key(data, "key_file /x")
    assert expected in err.value.msg
    assert err.value.msg.startswith("key_file /x")


@pytest.mark.parametrize(
    "text",
    [
        lambda b: b,
        lambda b: "\n".join(b[i : i + 16] for i in range(0, len(b), 16)),
        lambda b: "  " + "\r\n\t".join(b[i : i + 7] for i in range(0, len(b), 7)) + "\n\n",
        lambda b: b.rstrip("="),
    ],
    ids=["plain", "wrapped", "spaces-crlf-tabs", "no-padding"],
)
def test_base64_text_is_tolerant_of_whitespace(text):
    raw = key_bytes()
    assert g.decode_key_text(text(base64.b64encode(raw).decode())) == raw


@pytest.mark.parametrize(("text", "expected"), [("", "is empty"), (" \n", "is empty"), ("abc$%^", "not base64")])
def test_bad_base64_is_explained_without_the_value(text, expected):
    with pytest.raises(g.KeyFormatError) as err:
        g.decode_key_text(text)
    assert expected in err.value.msg
    assert "$%^" not in err.value.msg


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("ovh", True),
        ("k8s_prod-2", True),
        ("", False),
        ("default", False),
        ("a b", False),
        ("x" * 129, False),
        ("é", False),
    ],
)
def test_key_names(name, ok):
    if ok:
        g.validate_key_name(name)
    else:
        with pytest.raises(g.GitCryptError):
            g.validate_key_name(name)


# -- modes, patterns, state ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "private"),
    [
        ("secret/ovh-kubeconfig.yml", True),
        ("secret/clusters/prod.kubeconfig", True),
        ("secret/ovh-wildcard-tls.key", True),
        ("secret/ovh-wildcard-tls.crt", False),
        ("secret/gke-prod-sa.json", True),
        ("secret/google-service-account.json", True),
        ("secret/ssh/id_ed25519", True),
        ("secret/tls/bundle.pem", True),
        ("secret/config/prod.yaml", False),
        ("secret/README.md", False),
    ],
)
def test_default_private_patterns(path, private):
    assert (g.private_files([path], g.DEFAULT_PRIVATE_PATTERNS) == [path]) is private


def test_patterns_match_full_path_or_base_name():
    paths = ["secret/config/prod.yaml", "secret/other/prod.yaml", "prod.yaml"]
    assert g.private_files(paths, ["secret/config/*"]) == ["secret/config/prod.yaml"]
    assert g.private_files(paths, ["prod.yaml"]) == sorted(paths)


@pytest.mark.parametrize(
    ("value", "mode"), [("0600", 0o600), ("600", 0o600), ("0o640", 0o640), (0o600, 0o600), (384, 0o600)]
)
def test_modes(value, mode):
    assert g.parse_mode(value) == mode


@pytest.mark.parametrize("value", ["rw-------", "0900", True, None, "99999"])
def test_bad_modes(value):
    with pytest.raises(g.GitCryptError):
        g.parse_mode(value)


@pytest.mark.parametrize(
    ("installed", "configured", "unreadable", "state"),
    [
        (False, False, False, "locked"),
        (False, False, True, "locked"),
        (True, True, False, "unlocked"),
        (True, True, True, "partial"),
        (True, False, False, "partial"),
        (False, True, False, "partial"),
    ],
)
def test_classify(installed, configured, unreadable, state):
    assert g.classify(installed, configured, unreadable) == state


def test_modes_after_checkout_follow_umask_and_exec_bit():
    files = [g.TrackedFile("a.key", "100644", "x"), g.TrackedFile("b.key", "100755", "y")]
    old = os.umask(0o022)
    try:
        assert g.modes_after_checkout(files, ["a.key", "b.key"], 0o600) == ["a.key", "b.key"]
        assert g.modes_after_checkout(files, ["a.key"], 0o644) == []
        os.umask(0o077)
        assert g.modes_after_checkout(files, ["a.key"], 0o600) == []
    finally:
        os.umask(old)


# -- secret values ----------------------------------------------------------------------------------------


def test_flatten_paths():
    data = {"a": {"b": [1, {"c": "x"}]}, "d": None}
    assert list(s.flatten(data)) == [("a.b[0]", 1), ("a.b[1].c", "x"), ("d", None)]


def test_shared_values_report_key_paths_not_values():
    docs = {
        "staging.yaml": "hub:\n  cookieSecret: aaaaaaaaaaaaaaaa\n  token: unique-staging-1\nenabled: true\n",
        "prod.yaml": "hub:\n  cookieSecret: bbbbbbbbbbbbbbbb\nproxy:\n  secretToken: unique-staging-1\nenabled: true\n",
        "ovh.yaml": "x: {y: cccccccccccccccc, z: cccccccccccccccc}\n",
    }
    groups = s.shared_values(docs)
    assert groups == [[s.Location("staging.yaml", "hub.token"), s.Location("prod.yaml", "proxy.secretToken")]]
    assert "unique-staging-1" not in repr(groups)


def test_shared_values_min_length_ignore_and_groups():
    docs = {
        "a.yaml": "k: short\nu: https://accounts.example/x\n",
        "b.yaml": "k: short\nu: https://accounts.example/x\n",
    }
    assert s.shared_values(docs, min_length=8) == [[s.Location("a.yaml", "u"), s.Location("b.yaml", "u")]]
    assert s.shared_values(docs, min_length=5)[0][0].key == "k"
    assert s.shared_values(docs, ignore_keys=["u"]) == []
    # files of one environment may repeat a value; against another environment they may not
    assert s.shared_values(docs, groups={"a.yaml": "env", "b.yaml": "env"}) == []


def test_non_yaml_files_compare_as_a_whole():
    pem = "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----\n"
    docs = {"staging.key": pem, "prod.key": pem, "sa.json": json.dumps({"private_key": pem.strip()})}
    groups = s.shared_values(docs)
    keys = sorted((loc.file, loc.key) for loc in groups[0])
    assert keys == [("prod.key", s.WHOLE_FILE), ("sa.json", "private_key"), ("staging.key", s.WHOLE_FILE)]


def test_numbers_compare_as_text_booleans_do_not():
    docs = {"a.yaml": "client_id: 123456789012\nflag: true\n", "b.yaml": "id: 123456789012\nflag: true\n"}
    assert [[loc.key for loc in g_] for g_ in s.shared_values(docs, min_length=4)] == [["client_id", "id"]]


def test_read_secret_files_sorts_out_missing_and_encrypted(tmp_path):
    (tmp_path / "plain.yaml").write_text("a: b\n")
    (tmp_path / "enc.yaml").write_bytes(g.HEADER + os.urandom(20))
    res = s.read_secret_files(str(tmp_path), ["plain.yaml", str(tmp_path / "enc.yaml"), "gone.yaml"])
    assert res.encrypted == ["enc.yaml"] and res.missing == ["gone.yaml"] and list(res.texts) == ["plain.yaml"]


# -- the CLI wrapper: exact command lines, key only on stdin or a pipe -------------------------------------------

RECORDER = """#!{python}
import json, os, sys
args = sys.argv[1:]
rec = {{"argv": sys.argv[1:], "env": dict(os.environ), "stdin": sys.stdin.buffer.read().hex()}}
for a in args:
    if a.startswith("--key-file=/dev/fd/"):
        with open(a.split("=", 1)[1], "rb") as fh:
            rec["key_file"] = fh.read().hex()
with open({log!r}, "a") as fh:
    fh.write(json.dumps(rec) + "\\n")
sys.exit(int(os.environ.get("RECORDER_RC", "0")))
"""


@pytest.fixture
def recorder(tmp_path):
    log = tmp_path / "calls.jsonl"
    exe = tmp_path / "git-crypt"
    exe.write_text(RECORDER.format(python=sys.executable, log=str(log)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()]

    return str(exe), calls


@pytest.mark.parametrize(
    ("action", "argv"),
    [
        (lambda cli, key: cli.unlock(key), ["unlock", "-"]),
        (lambda cli, key: cli.lock(None, False), ["lock"]),
        (lambda cli, key: cli.lock("ovh", False), ["lock", "--key-name", "ovh"]),
        (lambda cli, key: cli.lock(None, True), ["lock", "--force"]),
        (lambda cli, key: cli.lock("ovh", True), ["lock", "--key-name", "ovh", "--force"]),
    ],
    ids=["unlock", "lock", "lock-named", "lock-force", "lock-named-force"],
)
def test_exact_command_lines(recorder, tmp_path, action, argv):
    exe, calls = recorder
    key = g.parse_key(key_bytes())
    cli = g.GitCryptCli(str(tmp_path), git_crypt=exe)
    action(cli, key)
    (call,) = calls()
    assert call["argv"] == argv
    assert cli.commands == [[exe, *argv]]
    assert call["stdin"] == (key.raw.hex() if argv[0] == "unlock" else "")
    blob = json.dumps(call["env"]) + json.dumps(call["argv"])
    for form in (key.raw.hex(), base64.b64encode(key.raw).decode(), AES.hex(), HMAC.hex()):
        assert form not in blob, "key material in the environment or on the command line"


def test_key_check_passes_the_key_through_a_pipe(recorder, tmp_path):
    exe, calls = recorder
    key = g.parse_key(key_bytes())
    cli = g.GitCryptCli(str(tmp_path), git_crypt=exe)
    assert cli.decrypts(key, b"\x00GITCRYPT\x00blob") is True
    (call,) = calls()
    assert call["argv"][0] == "smudge" and call["argv"][1].startswith("--key-file=/dev/fd/")
    assert call["key_file"] == key.raw.hex(), "git-crypt reads the key from the inherited pipe"
    assert call["stdin"] == b"\x00GITCRYPT\x00blob".hex()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.jsonl", "git-crypt"], "no key file was written"


def test_failures_carry_rc_stderr_and_command_but_no_secret_output(recorder, tmp_path, monkeypatch):
    exe = recorder[0]
    monkeypatch.setenv("RECORDER_RC", "3")
    cli = g.GitCryptCli(str(tmp_path), git_crypt=exe)
    with pytest.raises(g.GitCryptCommandError) as err:
        cli.lock(None, False)
    assert (err.value.rc, err.value.command) == (3, [exe, "lock"])
    assert "git-crypt lock failed (rc=3)" in err.value.msg
    assert cli.decrypts(g.parse_key(key_bytes()), b"x") is False  # a failed key check is an answer, not an error


def test_missing_binaries_are_explained(tmp_path):
    with pytest.raises(g.GitCryptError) as err:
        g.find_git_crypt(None, None)
    assert "apt-get install git-crypt" in err.value.msg and "tools/install-git-crypt.sh" in err.value.msg
    with pytest.raises(g.GitCryptError) as err:
        g.find_git_crypt(str(tmp_path / "nope"), "/usr/bin/git-crypt")
    assert "binary_path" in err.value.msg
    cli = g.GitCryptCli(str(tmp_path), git_crypt=str(tmp_path / "vanished"))
    with pytest.raises(g.GitCryptError) as err:
        cli.lock(None, False)
    assert "could not be started" in err.value.msg and "apt-get install git-crypt" in err.value.msg
