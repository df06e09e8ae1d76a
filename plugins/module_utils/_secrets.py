# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret hygiene checks behind the secrets_check module (collection-private).

- still encrypted: a secret file the environment needs still starts with the git-crypt header;
- shared values: the same secret value in the files of two environments (staging and prod must never
  share one). Values are compared by SHA-256 digest and only key paths are ever reported;
- committed in plaintext: lives in _git_crypt.plaintext_committed (standard library only, for the CLI).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._git_crypt import HEADER
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

WHOLE_FILE = "(whole file)"


@dataclass(frozen=True)
class Location:
    file: str
    key: str


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, leaf value) pairs: ``a.b.c`` for mappings, ``a[0]`` for lists."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix or WHOLE_FILE, data


def secret_values(text: str) -> Iterator[tuple[str, str]]:
    """The comparable values of one secret file: YAML/JSON leaves, or the whole text of anything else."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, (dict, list)):
        if text.strip():
            yield WHOLE_FILE, text.strip()
        return
    for key, value in flatten(data):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (str, int, float)):
            yield key, str(value)


def shared_values(
    docs: dict[str, str],
    min_length: int = 8,
    ignore_keys: Sequence[str] = (),
    groups: dict[str, str] | None = None,
) -> list[list[Location]]:
    """Groups of locations, in files of two or more different environments, that hold the same value.

    ``groups`` maps a file label to its environment; files not in it are an environment of their own.
    Values are keyed by their SHA-256 digest, so no value is kept beyond the file text itself.
    """
    groups = groups or {}
    by_digest: dict[bytes, list[Location]] = {}
    for label, text in docs.items():
        for key, value in secret_values(text):
            if len(value) < min_length or any(fnmatch.fnmatchcase(key, pat) for pat in ignore_keys):
                continue
            digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
            by_digest.setdefault(digest, []).append(Location(label, key))
    shared = [locs for locs in by_digest.values() if len({groups.get(loc.file, loc.file) for loc in locs}) > 1]
    return shared  # in the order of ``docs``, first place first


def label_for(root: str, name: str) -> str:
    """How a file is named in results: relative to the repository when inside it, else absolute."""
    path = name if os.path.isabs(name) else os.path.join(root, name)
    path = os.path.normpath(path)
    return os.path.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else path


@dataclass
class FileCheck:
    encrypted: list[str]
    missing: list[str]
    texts: dict[str, str]


def read_secret_files(root: str, files: Sequence[str]) -> FileCheck:
    """Read ``files`` (absolute, or relative to ``root``); sort out missing and still-encrypted ones."""
    result = FileCheck(encrypted=[], missing=[], texts={})
    for name in dict.fromkeys(files):
        path = name if os.path.isabs(name) else os.path.join(root, name)
        label = label_for(root, name)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except (FileNotFoundError, IsADirectoryError):
            result.missing.append(label)
            continue
        if data.startswith(HEADER):
            result.encrypted.append(label)
            continue
        result.texts[label] = data.decode("utf-8", "surrogateescape")
    return result
