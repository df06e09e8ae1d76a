"""Leak test: run the git_crypt module and the secrets stage (role mybinder.deploy.secrets) with -vvv,
through success and failure paths, and search everything they print (and every file Ansible left in
its temporary directories) for the key, in any form, and for every secret value."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from pathlib import Path

import pytest
from git_crypt_testlib import (
    ensure_git_crypt_on_path,
    export_foreign_key,
    gc_utils,
    make_repo,
    run_playbook,
    write_play,
)


def random_files() -> tuple[dict[str, str], list[str]]:
    """Secret files whose every value is random (so any hit in the output is a real leak)."""
    values = []

    def v(prefix: str) -> str:
        value = f"{prefix}-{secrets.token_hex(16)}"
        values.append(value)
        return value

    pem_body = base64.b64encode(secrets.token_bytes(96)).decode()
    values += [pem_body[i : i + 32] for i in range(0, len(pem_body) - 32, 32)]
    files = {
        f"secret/config/{env}.yaml": (
            f"binderhub:\n  config:\n    GitHubRepoProvider:\n      access_token: {v(env + '-gh')}\n"
            f"  jupyterhub:\n    hub:\n      cookieSecret: {v(env + '-cookie')}\n"
            f"    proxy:\n      secretToken: {v(env + '-proxy')}\n"
            f"grafana:\n  adminPassword: {v(env + '-grafana')}\n"
        )
        for env in ("staging", "prod", "ovh")
    }
    files["secret/ovh-kubeconfig.yml"] = f"kind: Config\nusers:\n  - name: d\n    user:\n      token: {v('kube')}\n"
    files["secret/ovh-wildcard-tls.key"] = "-----BEGIN PRIVATE KEY-----\n" + pem_body + "\n-----END PRIVATE KEY-----\n"
    files["README.md"] = "# deploy\n"
    return files, values


def key_forms(raw: bytes, wrapped: str) -> list[bytes]:
    key = gc_utils.parse_key(raw)
    b64 = base64.b64encode(raw)
    forms = [raw, b64, b64.rstrip(b"="), raw.hex().encode()]
    forms += [line.strip().encode() for line in wrapped.splitlines() if len(line.strip()) >= 12]
    for e in key.entries:
        for material in (e.aes_key, e.hmac_key):
            forms += [material, material.hex().encode(), base64.b64encode(material)]
    # also the middle of the base64 text, whatever the line breaking was
    forms += [b64[i : i + 24] for i in range(0, len(b64) - 24, 24)]
    return forms


def wrap(b64: str) -> str:
    return "\n".join(b64[i : i + 40] for i in range(0, len(b64), 40)) + "\n"


MODULE_TASKS = """  tasks:
    - name: Unlock (pipelined, as the role does)
      mybinder.deploy.git_crypt:
        path: "{{ repo }}"
        key: "{{ deploy_key }}"
      vars:
        ansible_pipelining: true
    - name: Unlock again (idempotent)
      mybinder.deploy.git_crypt:
        path: "{{ repo }}"
        key: "{{ deploy_key }}"
      vars:
        ansible_pipelining: true
    - name: Lock
      mybinder.deploy.git_crypt:
        path: "{{ repo }}"
        state: locked
      vars:
        ansible_pipelining: true
    - name: Unlock with the key of another repository (fails)
      mybinder.deploy.git_crypt:
        path: "{{ repo }}"
        key: "{{ foreign_key }}"
      vars:
        ansible_pipelining: true
      ignore_errors: true
      register: wrong
    - name: The failure was the wrong key
      ansible.builtin.assert:
        that: "'does not belong' in wrong.msg"
"""

ROLE = """  roles:
    - role: mybinder.deploy.secrets
"""


@pytest.fixture(scope="module", autouse=True)
def _git_crypt_on_path():
    ensure_git_crypt_on_path()


def test_nothing_secret_in_vvv_output_or_temporary_files(tmp_path: Path):
    files, values = random_files()
    repo = make_repo(tmp_path / "origin", files)
    clone = repo.clone(tmp_path / "clone")
    foreign = export_foreign_key(tmp_path / "other")
    wrapped = wrap(repo.key_b64())
    inputs = tmp_path / "inputs"  # what CI would hold: the key as a secret variable
    inputs.mkdir(mode=0o700)
    (inputs / "vars.json").write_text(
        json.dumps({"repo": str(clone), "deploy_key": wrapped, "foreign_key": wrap(base64.b64encode(foreign).decode())})
    )
    required = ["secret/config/prod.yaml", "secret/ovh-kubeconfig.yml", "secret/ovh-wildcard-tls.key"]
    compare = ["secret/config/staging.yaml", "secret/config/ovh.yaml"]
    role_vars = {"secrets_repo_path": str(clone), "secrets_required_files": required, "secrets_compare_files": compare}
    outputs: list[str] = []

    def play(name: str, text: str, *args: str, ok: bool) -> str:
        res = run_playbook(write_play(tmp_path / f"{name}.yml", text), "-vvv", *args, tmp=tmp_path)
        out = res.stdout + res.stderr
        outputs.append(out)
        assert (res.returncode == 0) is ok, f"{name}: rc={res.returncode}\n{out[-4000:]}"
        return out

    out = play("module", MODULE_TASKS, "-e", f"@{inputs / 'vars.json'}", ok=True)
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in out, "-vvv shows the module arguments, censored"
    assert "AnsiballZ_git_crypt.py" not in out, "pipelining: the arguments never went into a temporary file"

    # The secrets stage: unlock through the role, checks pass; then the failure paths.
    role_with_key = {**role_vars, "secrets_unlock": True, "secrets_key": wrapped}
    (inputs / "role.json").write_text(json.dumps(role_with_key))
    out = play("role-ok", ROLE, "-e", f"@{inputs / 'role.json'}", ok=True)
    assert "locked -> unlocked" in out
    (inputs / "role-foreign.json").write_text(
        json.dumps({**role_vars, "secrets_unlock": True, "secrets_key": base64.b64encode(foreign).decode()})
    )
    out = play("role-wrong-key", ROLE, "-e", f"@{inputs / 'role-foreign.json'}", ok=False)
    assert "already unlocked with a different git-crypt key" in " ".join(out.split())
    # a shared value: prod reuses staging's GitHub token
    staging_token = files["secret/config/staging.yaml"].split("access_token: ")[1].split("\n")[0]
    prod = clone / "secret/config/prod.yaml"
    prod_token = files["secret/config/prod.yaml"].split("access_token: ")[1].split("\n")[0]
    prod.write_text(prod.read_text().replace(prod_token, staging_token))
    (inputs / "role-shared.json").write_text(json.dumps(role_with_key))
    out = play("role-shared", ROLE, "-e", f"@{inputs / 'role-shared.json'}", ok=False)
    assert "binderhub.config.GitHubRepoProvider.access_token" in out, "the key path is reported"
    subprocess.run(["git", "checkout", "--", "secret/config/prod.yaml"], cwd=clone, check=True)
    # locked again, no unlock requested: the encrypted-file refusal
    subprocess.run(["git-crypt", "lock"], cwd=clone, check=True, capture_output=True)
    (inputs / "role-locked.json").write_text(json.dumps(role_vars))
    out = play("role-locked", ROLE, "-e", f"@{inputs / 'role-locked.json'}", ok=False)
    assert "still encrypted" in out

    everything = "\n".join(outputs).encode()
    for form in key_forms(repo.key(), wrapped) + key_forms(foreign, wrap(base64.b64encode(foreign).decode())):
        assert form not in everything, "key material in the -vvv output"
    for value in values:
        assert value.encode() not in everything, f"secret value {value[:6]}... in the -vvv output"
    # Ansible's temporary directories hold nothing with the key or a secret value.
    for d in (tmp_path / "ansible-local", tmp_path / "ansible-remote"):
        for p in d.rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                assert not any(f in data for f in key_forms(repo.key(), wrapped)), f"key in {p}"
                assert not any(v.encode() in data for v in values), f"secret value in {p}"
