#!/usr/bin/env python3
# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fail when a file that .gitattributes marks for git-crypt is committed (or staged) unencrypted.

    tools/check-plaintext-secrets.py [--repo PATH]

Needs git only (no git-crypt, no key): every blob of a file with `filter=git-crypt` (or
`git-crypt-NAME`) in HEAD and in the index must start with git-crypt's header. Exit status 0 when
all are encrypted, 1 when some are not (they are listed), 2 when the check could not run.
The same check runs in the test suite, in `playbooks/check-secrets.yml` and in every deploy
(role mybinder.deploy.secrets).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "module_utils"))
import _git_crypt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=".", help="the repository (default: the current directory)")
    args = parser.parse_args(argv)
    try:
        repo = _git_crypt.Repo(_git_crypt.GitCryptCli(args.repo))
        marked = repo.git_crypt_files()
        findings = _git_crypt.plaintext_committed(repo)
    except _git_crypt.GitCryptError as exc:
        print(f"check-plaintext-secrets: ERROR: {exc.msg}", file=sys.stderr)
        return 2
    if findings:
        print(
            f"check-plaintext-secrets: {len(findings)} file(s) marked for git-crypt in .gitattributes are in git "
            "UNENCRYPTED (consider their contents leaked and rotate them):",
            file=sys.stderr,
        )
        for f in findings:
            where = "committed in HEAD" if f.where == "HEAD" else "staged in the index"
            print(f"  {f.path} ({where})", file=sys.stderr)
        print(
            "Fix: unlock the repository (git-crypt configured), then "
            "`git rm --cached FILE && git add FILE` and commit.",
            file=sys.stderr,
        )
        return 1
    print(f"check-plaintext-secrets: ok, {len(marked)} file(s) marked for git-crypt, all encrypted ({repo.toplevel})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
