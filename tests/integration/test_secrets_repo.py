"""This repository's own secret tree: nothing marked for git-crypt is committed in plaintext, the public
demo key unlocks a fresh clone through the module, and the placeholders are what the deploy expects."""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml
from git_crypt_testlib import (
    HEADER,
    ROOT,
    ensure_git_crypt_on_path,
    make_repo,
    run_module,
    run_playbook,
    sh,
)

DEMO_KEY = "secret/DEMO-ONLY-PUBLIC-git-crypt.key"
ENVIRONMENTS = ("staging", "prod", "ovh", "local")
SECRET_FILES = sorted(
    [f"secret/config/{env}.yaml" for env in ENVIRONMENTS]
    + [
        "secret/ovh-kubeconfig.yml",
        "secret/ovh-wildcard-tls.crt",
        "secret/ovh-wildcard-tls.key",
        "secret/gke-staging-sa.json",
        "secret/gke-prod-sa.json",
    ]
)
PRIVATE = [
    "secret/gke-prod-sa.json",
    "secret/gke-staging-sa.json",
    "secret/ovh-kubeconfig.yml",
    "secret/ovh-wildcard-tls.key",
]


@pytest.fixture(scope="module", autouse=True)
def _git_crypt_on_path():
    ensure_git_crypt_on_path()


def test_no_file_marked_for_git_crypt_is_committed_in_plaintext():
    """The repository check of the issue: fails the suite as soon as someone commits a secret unencrypted."""
    res = sh(ROOT / "tools/check-plaintext-secrets.py", "--repo", ROOT, check=False)
    assert res.returncode == 0, res.stderr.decode()
    committed = sh("git", "ls-tree", "-r", "--name-only", "HEAD", "--", "secret", cwd=ROOT).stdout.decode().split()
    assert sorted(set(committed) - {DEMO_KEY, "secret/README.md"}) == SECRET_FILES
    for rel in SECRET_FILES:
        blob = sh("git", "cat-file", "blob", f"HEAD:{rel}", cwd=ROOT).stdout
        assert blob.startswith(HEADER), f"{rel} is committed unencrypted"
    attrs = sh(
        "git", "check-attr", "filter", "--", DEMO_KEY, "secret/README.md", *SECRET_FILES, cwd=ROOT
    ).stdout.decode()
    assert f"{DEMO_KEY}: filter: unspecified" in attrs and "secret/README.md: filter: unspecified" in attrs
    for rel in SECRET_FILES:
        assert f"{rel}: filter: git-crypt" in attrs


def test_the_check_fails_on_plaintext_committed_or_staged(tmp_path):
    repo = make_repo(tmp_path / "r", {"secret/ok.yaml": "a: encrypted-fine\n"})
    (repo.origin / "secret/leak.yaml").write_text("token: committed-plaintext\n")
    sh("git", "-c", "filter.git-crypt.clean=cat", "add", "secret/leak.yaml", cwd=repo.origin)
    sh("git", "commit", "-q", "-m", "leak", cwd=repo.origin)
    (repo.origin / "secret/staged.yaml").write_text("token: staged-plaintext\n")
    sh("git", "-c", "filter.git-crypt.clean=cat", "add", "secret/staged.yaml", cwd=repo.origin)
    res = sh(ROOT / "tools/check-plaintext-secrets.py", "--repo", repo.origin, check=False)
    assert res.returncode == 1
    err = res.stderr.decode()
    assert "secret/leak.yaml (committed in HEAD)" in err and "secret/staged.yaml (staged in the index)" in err
    assert "secret/ok.yaml" not in err
    assert "committed-plaintext" not in err
    play = run_playbook(
        ROOT / "playbooks/check-secrets.yml",
        "--tags",
        "secrets_repository",
        "-e",
        json.dumps({"secrets_repo_path": str(repo.origin)}),
        tmp=tmp_path,
    )
    assert play.returncode != 0
    assert "secret/leak.yaml (committed)" in " ".join(play.stdout.split())


@pytest.fixture(scope="module")
def demo_clone(tmp_path_factory) -> Path:
    ensure_git_crypt_on_path()
    dest = tmp_path_factory.mktemp("demo") / "clone"
    sh("git", "clone", "-q", "--no-hardlinks", ROOT, dest)
    return dest


def test_demo_key_unlocks_a_fresh_clone_through_the_module(demo_clone):
    for rel in SECRET_FILES:
        assert (demo_clone / rel).read_bytes().startswith(HEADER), f"{rel} should be encrypted in a fresh clone"
    res = run_module({"path": str(demo_clone), "key_file": DEMO_KEY})
    assert res["_rc"] == 0, res
    assert res["changed"] and res["state_before"] == "locked" and res["decrypted"] == SECRET_FILES
    assert "warnings" not in res, "the demo key is tracked: no warning about a key inside the work tree"
    assert res["permissions_fixed"] == PRIVATE
    for rel in PRIVATE:
        assert (demo_clone / rel).stat().st_mode & 0o777 == 0o600
    assert run_module({"path": str(demo_clone), "key_file": DEMO_KEY})["changed"] is False


def test_check_secrets_playbook_passes_on_the_unlocked_demo_clone(demo_clone, tmp_path):
    run_module({"path": str(demo_clone), "key_file": DEMO_KEY})
    res = run_playbook(
        ROOT / "playbooks/check-secrets.yml", "-e", json.dumps({"secrets_repo_path": str(demo_clone)}), tmp=tmp_path
    )
    assert res.returncode == 0, res.stdout[-3000:]


def load(clone: Path, rel: str):
    return yaml.safe_load((clone / rel).read_text())


def test_placeholder_values_have_the_chart_keys_and_differ_between_environments(demo_clone):
    run_module({"path": str(demo_clone), "key_file": DEMO_KEY})
    hex64 = re.compile(r"[0-9a-f]{64}")
    leaves = {}
    for env in ENVIRONMENTS:
        values = load(demo_clone, f"secret/config/{env}.yaml")
        bh = values["binderhub"]
        hub = bh["jupyterhub"]["hub"]
        env_leaves = {
            "access_token": bh["config"]["GitHubRepoProvider"]["access_token"],
            "cookieSecret": hub["cookieSecret"],
            "apiToken": hub["services"]["binder"]["apiToken"],
            "secretToken": bh["jupyterhub"]["proxy"]["secretToken"],
            "adminPassword": values["grafana"]["adminPassword"],
        }
        for name in ("cookieSecret", "apiToken", "secretToken"):
            assert hex64.fullmatch(env_leaves[name]), f"{env} {name} must be 64 hex characters"
        assert "placeholder" in env_leaves["access_token"] and "placeholder" in env_leaves["adminPassword"]
        assert "DEMO PLACEHOLDER" in (demo_clone / f"secret/config/{env}.yaml").read_text()
        leaves[env] = set(env_leaves.values())
    for a, b in itertools.combinations(ENVIRONMENTS, 2):
        assert not leaves[a] & leaves[b], f"{a} and {b} share a placeholder value"


def test_placeholder_credentials_are_well_formed(demo_clone):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    run_module({"path": str(demo_clone), "key_file": DEMO_KEY})
    kube = load(demo_clone, "secret/ovh-kubeconfig.yml")
    assert kube["kind"] == "Config" and kube["current-context"] == "ovh"
    assert {c["name"] for c in kube["contexts"]} == {"ovh"}
    x509.load_pem_x509_certificate(base64.b64decode(kube["clusters"][0]["cluster"]["certificate-authority-data"]))
    cert = x509.load_pem_x509_certificate((demo_clone / "secret/ovh-wildcard-tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "*.mybinder.ovh" in names
    key = serialization.load_pem_private_key((demo_clone / "secret/ovh-wildcard-tls.key").read_bytes(), None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers(), "key and certificate match"
    for env in ("staging", "prod"):
        sa = json.loads((demo_clone / f"secret/gke-{env}-sa.json").read_text())
        assert sa["type"] == "service_account" and f"demo-placeholder-mybinder-{env}" == sa["project_id"]
        serialization.load_pem_private_key(sa["private_key"].encode(), None)
