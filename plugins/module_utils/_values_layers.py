# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The values_layers runner (collection-private): the values files of a release in order, each
readable (not still encrypted), valid YAML and a mapping, and no key set by both a secret and a
public layer; given the built chart, no key that no chart of the release knows (_values_keys); a
generated layer is written only when its content changed.

The module (plugins/modules/values_layers.py) only documents, declares its options and calls ``run``.
"""

from __future__ import annotations

import functools
import os
import tarfile
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils import _values_keys
from ansible_collections.mybinder.deploy.plugins.module_utils._errors import ModuleError
from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import read_unlocked, yaml


class LayerError(ModuleError):
    pass


def leaf_paths(tree: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Key paths of the leaves of a values tree (lists and scalars are leaves; empty maps too)."""
    if isinstance(tree, dict) and tree:
        out: set[tuple[str, ...]] = set()
        for k, v in tree.items():
            out |= leaf_paths(v, (*prefix, str(k)))
        return out
    return {prefix} if prefix else set()


def overlaps(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Paths of `a` equal to, or a prefix of, or below a path of `b`."""
    prefixes_b = {p[:i] for p in b for i in range(1, len(p) + 1)}
    out = []
    for p in a:
        if p in prefixes_b or any(p[:i] in b for i in range(1, len(p))):
            out.append(p)
    return sorted(out)


def write(path: str, content: str) -> bool:
    """Write a generated layer if it differs; True when written."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return True


class Encrypted(LayerError):
    pass


class DuplicateKey(Exception):
    def __init__(self, key: object, first_line: int, second_line: int) -> None:
        super().__init__(f"key {str(key)!r} is set twice in one mapping (lines {first_line} and {second_line})")


@functools.cache  # one class per process, not one per file read
def _unique_key_loader() -> Any:
    """The safe loader (libyaml's when there) refusing a key set twice in one mapping: YAML
    parsers, helm's too, keep the last one silently, so a pasted block would override another."""
    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class UniqueKeyLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[object, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the constructor below says so
                    continue
                if first != key_node.start_mark.line + 1:
                    raise DuplicateKey(key, first, key_node.start_mark.line + 1)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load(path: str) -> dict[str, Any]:
    unlock = "unlock the secrets first (the secrets stage, mybinder.deploy.secrets)"
    raw = read_unlocked(path, "values file", unlock, LayerError, Encrypted)
    try:
        data = yaml.load(raw, Loader=_unique_key_loader())
    except DuplicateKey as exc:
        raise LayerError(f"values file {path}: {exc}; the later one would silently win: keep one") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # The parser's own message can quote the offending text, which may be a secret: not shown.
        raise LayerError(f"values file {path} is not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LayerError(f"values file {path} must be a mapping of values, not a {type(data).__name__}")
    return data


def run(
    layers: list[dict[str, Any]],
    allow_encrypted: bool = False,
    chart: str | None = None,
    unknown_allowed: list[str] | None = None,
) -> dict[str, Any]:
    paths: list[str] = []
    skipped: list[str] = []
    encrypted: list[str] = []
    written: list[str] = []
    loaded: list[tuple[str, bool, set[tuple[str, ...]]]] = []
    trees: list[tuple[str, dict[str, Any]]] = []
    for layer in layers:
        path = os.path.abspath(layer["path"])
        if layer.get("content") is not None and write(path, layer["content"]):
            written.append(path)
        if not layer["required"] and not os.path.exists(path):
            skipped.append(path)
            continue
        try:
            data = load(path)
        except Encrypted:
            if not allow_encrypted:
                raise
            encrypted.append(path)
            paths.append(path)
            continue
        if layer["secret"] and not data:
            # Deploying it would silently drop every secret the release holds (tokens, keys).
            raise LayerError(
                f"secret values file {path} is empty (or holds only comments): deploying it would remove every "
                f"secret the release holds; restore it (git checkout -- {path}, then unlock the secrets) or, for an "
                "environment without secrets, leave it out of the secret values files"
            )
        paths.append(path)
        loaded.append((path, layer["secret"], leaf_paths(data)))
        trees.append((path, data))
    clashes = []
    for spath, secret, skeys in loaded:
        if not secret:
            continue
        for ppath, psecret, pkeys in loaded:
            if psecret:
                continue
            for key in overlaps(skeys, pkeys):
                clashes.append(f"{'.'.join(key)} (secret {spath}, public {ppath})")
    if clashes:
        raise LayerError(
            "a secret values file and a public one set the same keys, so one would silently override the other; "
            "set each key in one place only: " + "; ".join(clashes)
        )
    allowed: list[str] = []
    if chart:
        try:
            unknown, allowed = _values_keys.check(chart, trees, unknown_allowed or [])
        except (OSError, ValueError, yaml.YAMLError, tarfile.TarError) as exc:
            raise LayerError(f"the chart {chart} could not be read to check the values keys: {exc}") from exc
        if unknown:
            raise LayerError(_values_keys.message(unknown), unknown_keys=[u.path for u in unknown])
    # The key paths the secret layers set (names, never values): the deploy keeps them with the
    # release's lock and refuses a secret file that lost one the deployed release has.
    secret_keys = sorted({".".join(k) for _path, secret, keys in loaded if secret for k in keys})
    return {
        "changed": False,
        "paths": paths,
        "skipped": skipped,
        "encrypted": encrypted,
        "written": written,
        "secret_keys": secret_keys,
        "unknown_allowed": allowed,
    }
