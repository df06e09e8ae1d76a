# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets_check runner (collection-private): the checks of _secrets.py and _git_crypt.py on a
repository (files still encrypted, values shared between environments, files committed in
plaintext), failing with every problem found.

The module (plugins/modules/secrets_check.py) only documents, declares its options and calls ``run``.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import (
    GitCryptCli,
    GitCryptError,
    Repo,
    plaintext_committed,
)
from ansible_collections.mybinder.deploy.plugins.module_utils._secrets import (
    label_for,
    read_secret_files,
    shared_values,
)


def _list(items: list[str], limit: int = 20) -> str:
    return ", ".join(items[:limit]) + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def run_checks(p: dict[str, Any], git: str | None) -> tuple[dict, list[str]]:
    """The result of every check asked for, and the problems found (``git``: its executable)."""
    root = p["path"]
    repo = None
    try:
        repo = Repo(GitCryptCli(root, git=git or "git"))
        root = str(repo.toplevel)
    except GitCryptError:
        if p["committed_plaintext"]:
            raise
    result: dict = {
        "changed": False,
        "repository": root,
        "encrypted_files": [],
        "missing_files": [],
        "shared_values": [],
        "committed_plaintext": [],
        "checked": {"required": len(p["required_files"]), "compared": 0},
    }
    problems: list[str] = []

    compare = list(p["compare_files"])
    if compare:
        compare = list(p["environment_files"]) + compare  # this environment first in messages
    files = read_secret_files(root, list(p["required_files"]) + compare)
    result["encrypted_files"] = files.encrypted
    result["missing_files"] = files.missing
    if files.encrypted:
        problems.append(
            f"secret files are still encrypted (they start with the git-crypt header): {_list(files.encrypted)}. "
            "Unlock the repository first: with the mybinder.deploy.secrets role set secrets_unlock=true and "
            "secrets_key_file=<exported key file> (CI: secrets_key=<base64 of the key>), or run "
            f"`git-crypt unlock <key file>` in {root}"
        )
    if files.missing:
        problems.append(f"secret files do not exist: {_list(files.missing)}")

    if p["compare_files"]:
        this_env = {label_for(root, name): "(this environment)" for name in p["environment_files"]}
        wanted = [label_for(root, name) for name in compare]
        compared = {k: files.texts[k] for k in dict.fromkeys(wanted) if k in files.texts}
        groups = shared_values(compared, p["compare_min_length"], p["compare_ignore_keys"], this_env)
        result["checked"]["compared"] = len(compared)
        result["shared_values"] = [[{"file": loc.file, "key": loc.key} for loc in g] for g in groups]
        if groups:
            described = "; ".join(" = ".join(f"{loc.file}: {loc.key}" for loc in g) for g in groups[:20])
            problems.append(
                f"{len(groups)} secret value(s) are shared between environments (values not shown): {described}. "
                "Every environment needs its own secrets: generate a new value for one side "
                "(for example `openssl rand -hex 32`)"
            )

    if p["committed_plaintext"] and repo is not None:
        findings = plaintext_committed(repo)
        result["checked"]["marked_for_git_crypt"] = len(repo.git_crypt_files())
        result["committed_plaintext"] = [{"path": f.path, "where": f.where} for f in findings]
        if findings:
            listed = _list([f"{f.path} ({'committed' if f.where == 'HEAD' else 'staged'})" for f in findings])
            problems.append(
                f"files marked for git-crypt in .gitattributes are in git unencrypted: {listed}. Their contents "
                "are readable by anyone with the repository. Consider them leaked: rotate those secrets; then make "
                "sure the repository is unlocked (git-crypt configured) and run `git rm --cached FILE && git add "
                "FILE` so they are encrypted, and commit"
            )
    return result, problems


def run(p: dict[str, Any], git: str | None) -> dict[str, Any]:
    """One run of secrets_check with its module parameters: a ModuleError naming every problem found."""
    result, problems = run_checks(p, git)
    if problems:
        raise ModuleError("; ".join(problems), **result)
    return result
