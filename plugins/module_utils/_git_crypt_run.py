# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The git_crypt runner (collection-private): the module's parameters turned into a request of
_git_crypt.py (key loaded, git and git-crypt found), the repository brought into the state asked
for, and the diff of its state.

The module (plugins/modules/git_crypt.py) only documents, declares its options and calls ``run``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import (
    GitCryptCli,
    GitCryptError,
    Request,
    ensure,
    find_git_crypt,
    load_key,
    parse_mode,
    validate_key_name,
)


def build_request(
    p: dict[str, Any], check_mode: bool, bin_path: Callable[[str], str | None]
) -> tuple[GitCryptCli, Request]:
    """The request of the parameters, with the git and git-crypt executables (``bin_path``: None if missing)."""
    git = bin_path("git")
    if not git:
        raise GitCryptError("git was not found on PATH: install git")
    git_crypt = find_git_crypt(p["binary_path"], bin_path("git-crypt"))
    if p["key_name"] is not None:
        validate_key_name(p["key_name"])
    key = None
    key_file = None
    if p["state"] == "unlocked":
        key_file = p["key_file"]
        if key_file is not None and not key_file.startswith("/"):
            key_file = f"{p['path'].rstrip('/')}/{key_file}"
        key = load_key(key_text=p["key"], key_file=key_file)
    request = Request(
        path=p["path"],
        state=p["state"],
        key=key,
        key_name=p["key_name"],
        force=p["force"],
        private_file_patterns=p["private_file_patterns"],
        private_file_mode=parse_mode(p["private_file_mode"]),
        check_mode=check_mode,
        key_file=key_file if p["state"] == "unlocked" else None,
    )
    return GitCryptCli(p["path"], git_crypt=git_crypt, git=git), request


def run(p: dict[str, Any], check_mode: bool, diff: bool, bin_path: Callable[[str], str | None]) -> dict[str, Any]:
    """One run of git_crypt: the repository in the state asked for, with the diff of its state."""
    cli, request = build_request(p, check_mode, bin_path)
    result = ensure(cli, request)
    if diff:
        result["diff"] = {
            "before": f"state: {result['state_before']}\n",
            "after": f"state: {result['state']}\nreadable files: {len(result['decrypted'])}\n",
        }
    return result
