"""Role mybinder.deploy.secrets (and playbooks/check-secrets.yml) with ansible-playbook, on real
git-crypt repositories in temporary directories."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from git_crypt_testlib import (
    ROOT,
    ensure_git_crypt_on_path,
    export_foreign_key,
    make_repo,
    recap_changed,
    run_playbook,
    sh,
    tree_state,
    worktree_encrypted,
    write_play,
)

FILES = {
    "secret/config/staging.yaml": "hub: {cookieSecret: stg-cookie-0a61f3d2}\ngrafana: {adminPassword: stg-pw-71c0aa}\n",
    "secret/config/prod.yaml": "hub: {cookieSecret: prod-cookie-9be47c11}\ngrafana: {adminPassword: prod-pw-3302fe}\n",
    "secret/config/ovh.yaml": "hub: {cookieSecret: ovh-cookie-5d8e2b90}\ngrafana: {adminPassword: ovh-pw-c4d5e6}\n",
    "secret/ovh-kubeconfig.yml": "kind: Config\nusers: [{name: d, user: {token: ovh-kube-token-44aa}}]\n",
    "README.md": "# deploy\n",
}
ROLE = """  roles:
    - role: mybinder.deploy.secrets
"""


@pytest.fixture(scope="module", autouse=True)
def _git_crypt_on_path():
    ensure_git_crypt_on_path()


@pytest.fixture
def repo(tmp_path: Path):
    return make_repo(tmp_path / "origin", FILES)


@pytest.fixture
def clone(repo, tmp_path: Path) -> Path:
    return repo.clone(tmp_path / "clone")


@pytest.fixture
def key_file(repo, tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    path = keys / "deploy.key"
    path.write_bytes(repo.key())
    path.chmod(0o600)
    return path


def role_play(tmp_path: Path) -> Path:
    return write_play(tmp_path / "play.yml", ROLE)


def flat(text: str) -> str:
    """Output with whitespace runs collapsed (the yaml result format folds long messages)."""
    return " ".join(text.split())


def ev(**values) -> list[str]:
    return ["-e", json.dumps(values)]


def test_locked_repository_is_refused_naming_files_and_how_to_unlock(clone, tmp_path):
    res = run_playbook(
        role_play(tmp_path),
        *ev(
            secrets_repo_path=str(clone),
            secrets_required_files=["secret/config/prod.yaml", str(clone / "secret/ovh-kubeconfig.yml")],
        ),
        tmp=tmp_path,
    )
    assert res.returncode != 0
    assert "secret files are still encrypted" in flat(res.stdout)
    assert "secret/config/prod.yaml, secret/ovh-kubeconfig.yml" in flat(res.stdout)
    assert "secrets_unlock=true" in res.stdout and "git-crypt unlock" in flat(res.stdout)


def test_role_unlocks_then_changes_nothing(clone, key_file, tmp_path):
    args = ev(
        secrets_repo_path=str(clone),
        secrets_unlock=True,
        secrets_key_file=str(key_file),
        secrets_required_files=["secret/config/prod.yaml", "secret/ovh-kubeconfig.yml"],
        secrets_compare_files=["secret/config/staging.yaml", "secret/config/ovh.yaml"],
    )
    first = run_playbook(role_play(tmp_path), *args, tmp=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap_changed(first.stdout) == 1
    assert "locked -> unlocked" in first.stdout and "made private: " in flat(first.stdout)
    assert (clone / "secret/config/prod.yaml").read_text() == FILES["secret/config/prod.yaml"]
    # every decrypted file is a secret: owner-only, the values files as much as the kubeconfig
    for path in FILES:
        if path.startswith("secret/"):
            assert (clone / path).stat().st_mode & 0o777 == 0o600, path
    assert (clone / "README.md").stat().st_mode & 0o777 == 0o644
    state = tree_state(clone)
    second = run_playbook(role_play(tmp_path), *args, tmp=tmp_path)
    assert second.returncode == 0 and recap_changed(second.stdout) == 0, second.stdout[-3000:]
    assert tree_state(clone) == state


def test_role_check_mode_changes_nothing_and_predicts_the_unlock(clone, key_file, tmp_path):
    before = tree_state(clone)
    args = ev(
        secrets_repo_path=str(clone),
        secrets_unlock=True,
        secrets_key_file=str(key_file),
        secrets_required_files=["secret/config/prod.yaml"],
        secrets_compare_files=["secret/config/staging.yaml"],
    )
    res = run_playbook(role_play(tmp_path), "--check", *args, tmp=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert recap_changed(res.stdout) == 1 and "locked -> unlocked" in res.stdout
    assert tree_state(clone) == before


def test_relative_key_file_and_base64_key(repo, clone, tmp_path):
    (clone / ".keys").mkdir()
    (clone / ".keys/k").write_bytes(repo.key())
    res = run_playbook(
        role_play(tmp_path),
        *ev(secrets_repo_path=str(clone), secrets_unlock=True, secrets_key_file=".keys/k"),
        tmp=tmp_path,
    )
    assert res.returncode == 0 and recap_changed(res.stdout) == 1, res.stdout[-3000:]
    b64 = base64.encodebytes(repo.key()).decode()  # 76-column lines, as many CI systems store it
    res = run_playbook(
        role_play(tmp_path), *ev(secrets_repo_path=str(clone), secrets_unlock=True, secrets_key=b64), tmp=tmp_path
    )
    assert res.returncode == 0 and recap_changed(res.stdout) == 0, res.stdout[-3000:]


def test_shared_value_is_refused_with_key_paths_only(repo, clone, key_file, tmp_path):
    sh("git-crypt", "unlock", key_file, cwd=clone)
    prod = clone / "secret/config/prod.yaml"
    prod.write_text(prod.read_text().replace("prod-pw-3302fe", "stg-pw-71c0aa"))  # same password as staging
    res = run_playbook(
        role_play(tmp_path),
        *ev(
            secrets_repo_path=str(clone),
            secrets_required_files=["secret/config/prod.yaml", "secret/ovh-kubeconfig.yml"],
            secrets_compare_files=["secret/config/staging.yaml", "secret/config/ovh.yaml"],
        ),
        tmp=tmp_path,
    )
    assert res.returncode != 0
    assert "shared between environments" in flat(res.stdout)
    expected = "secret/config/prod.yaml: grafana.adminPassword = secret/config/staging.yaml: grafana.adminPassword"
    assert expected in flat(res.stdout)
    assert "stg-pw-71c0aa" not in res.stdout + res.stderr


def test_one_environment_may_repeat_a_value_in_its_own_files(repo, clone, key_file, tmp_path):
    sh("git-crypt", "unlock", key_file, cwd=clone)
    kube = clone / "secret/ovh-kubeconfig.yml"
    kube.write_text(kube.read_text().replace("ovh-kube-token-44aa", "ovh-cookie-5d8e2b90"))
    res = run_playbook(
        role_play(tmp_path),
        *ev(
            secrets_repo_path=str(clone),
            secrets_required_files=["secret/config/ovh.yaml", "secret/ovh-kubeconfig.yml"],
            secrets_compare_files=["secret/config/staging.yaml", "secret/config/prod.yaml"],
        ),
        tmp=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:]


def test_plaintext_commit_is_refused(repo, tmp_path):
    origin = repo.origin
    (origin / "secret/leak.yaml").write_text("token: leaked-in-plaintext-1234\n")
    sh("git", "-c", "filter.git-crypt.clean=cat", "add", "secret/leak.yaml", cwd=origin)
    sh("git", "commit", "-q", "-m", "oops", cwd=origin)
    res = run_playbook(role_play(tmp_path), *ev(secrets_repo_path=str(origin)), tmp=tmp_path)
    assert res.returncode != 0
    assert "unencrypted: secret/leak.yaml (committed)" in flat(res.stdout)
    assert "leaked-in-plaintext-1234" not in res.stdout
    # the same check from the command line
    tool = sh(ROOT / "tools/check-plaintext-secrets.py", "--repo", origin, check=False)
    assert tool.returncode == 1 and b"secret/leak.yaml (committed in HEAD)" in tool.stderr


def test_key_and_key_file_together_are_refused(repo, clone, key_file, tmp_path):
    res = run_playbook(
        role_play(tmp_path),
        *ev(secrets_repo_path=str(clone), secrets_unlock=True, secrets_key="abcd", secrets_key_file=str(key_file)),
        tmp=tmp_path,
    )
    assert res.returncode != 0 and "needs exactly one of secrets_key" in flat(res.stdout) and "got both" in res.stdout


def test_wrong_key_error_is_shown_although_the_task_is_no_log(clone, tmp_path):
    foreign = tmp_path / "foreign.key"
    foreign.write_bytes(export_foreign_key(tmp_path / "other"))
    before = tree_state(clone)
    res = run_playbook(
        role_play(tmp_path),
        *ev(secrets_repo_path=str(clone), secrets_unlock=True, secrets_key_file=str(foreign)),
        tmp=tmp_path,
    )
    assert res.returncode != 0
    assert "this key does not belong to this repository" in flat(res.stdout)
    assert tree_state(clone) == before
    assert worktree_encrypted(clone, "secret/config/prod.yaml")


def test_check_secrets_playbook_repository_check_needs_no_key(clone, tmp_path):
    """`--tags secrets_repository` runs only the plaintext-commit check, which works on a locked clone."""
    res = run_playbook(
        ROOT / "playbooks/check-secrets.yml",
        "--tags",
        "secrets_repository",
        *ev(secrets_repo_path=str(clone)),
        tmp=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Check that nothing marked for git-crypt is committed in plaintext" in res.stdout
