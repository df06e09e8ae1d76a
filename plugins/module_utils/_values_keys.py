# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unknown keys in the values of the meta chart, named before anything is installed.

Why: helm hands every chart the values under its key and a chart reads what its templates ask
for; a key no template reads is dropped without a word. `prometheus.server.nodeSelectr` in
config/<env>.yaml deploys "fine" and the server lands on any node. Only a chart that ships a
values.schema.json closing its mappings (`additionalProperties: false`: binderhub, jupyterhub,
the meta chart itself) makes helm refuse such a key, and helm says so late (when the release is
rendered, after the TLS and ingress stages installed theirs), in the subchart's own terms.

What counts as known, per chart of the built dependency tree (charts/*.tgz, nested charts inside):
- a chart whose schema closes its top level is taken at its word: where a mapping of the schema
  says `additionalProperties: false`, its `properties` (and keys matching its `patternProperties`)
  are the known keys; wherever the schema leaves a mapping open, or says it in ways this check
  does not follow (`$ref`, `oneOf`, `if`...), anything goes. So this is never stricter than helm.
- any other chart (no schema, or one that only checks types, as prometheus's generated one does)
  is read from its default values.yaml: where the defaults hold a mapping with keys, those keys
  (and what the chart's parent sets for it in its own values.yaml, and what its templates name as
  `.Values.<path>`: charts show some keys only as comments, e.g. grafana's adminPassword) are the
  known ones; below a default that is an empty mapping `{}`, a list, a scalar or null, anything
  goes (free-form maps such as nodeSelector, annotations, extraEnv).
- everywhere: `global` is free-form; the keys of a chart's own subcharts (name or alias) lead into
  that subchart; a dependency's `condition` key and `tags` are known.
- the meta chart's own keys are its schema's (mybinder/values.schema.json); its values.yaml is a
  layer like the others: it is checked, never taken as what the subcharts know.

The result names each unknown key by its path in the values files (`prometheus.server.nodeSelectr`),
the files that set it and, when one is close (difflib), the known keys it may have meant. It never
names a value: values may be secrets.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mybinder.deploy.plugins.module_utils._yaml import yaml

# The files of a chart this check reads, at any depth of charts/<name>/.
_WANTED = re.compile(
    r"^(?:charts/[^/]+/)*(?:Chart\.yaml|values\.yaml|values\.schema\.json|charts/[^/]+\.tgz|templates/.+\.(?:yaml|yml|tpl|txt))$"
)
# `.Values.a.b` in a template: the chart reads a.b (a reference through `with`, `index` or a
# variable is not seen; those keys need their default or mybinder_values_unknown_allowed).
_REFERENCE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_COMPOSED = ("$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependencies", "propertyNames")


@dataclass(frozen=True)
class Chart:
    """One chart of the dependency tree, as far as its values are concerned."""

    name: str
    defaults: dict[str, Any]
    schema: dict[str, Any] | None
    # values key (alias or name) -> the subchart nested there
    subcharts: dict[str, Chart] = field(default_factory=dict)
    # key paths below the chart's top level that its dependencies' conditions read ("redis.enabled")
    conditions: tuple[tuple[str, ...], ...] = ()
    tags: bool = False
    # key paths its templates name as .Values.<path>
    referenced: frozenset[tuple[str, ...]] = frozenset()

    @property
    def schema_closed(self) -> bool:
        """Whether its schema refuses unknown keys at its top level: its authors decided, mapping by
        mapping, which keys are free; helm enforces it."""
        return isinstance(self.schema, dict) and self.schema.get("additionalProperties") is False


@dataclass(frozen=True)
class Unknown:
    """An unknown key: its path, the layers that set it, and the known keys it may have meant."""

    path: str
    files: tuple[str, ...]
    hint: tuple[str, ...]
    by_schema: str = ""  # the chart whose schema refuses it ("" when told by the default values)

    def line(self) -> str:
        where = f" (in {', '.join(self.files)})" if self.files else ""
        why = f"; the {self.by_schema} chart's schema allows no such key" if self.by_schema else ""
        hint = f"; did you mean {' or '.join(self.hint)}?" if self.hint else ""
        return f"{self.path}{where}{why}{hint}"


# --- reading the built chart ------------------------------------------------------------------


def _files_of_dir(root: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for here, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(here, name), root).replace(os.sep, "/")
            if _WANTED.match(rel):
                with open(os.path.join(here, name), "rb") as fh:
                    out[rel] = fh.read()
    return out


def _files_of_archive(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 1)  # <chart>/<path>
            if member.isfile() and len(parts) == 2 and _WANTED.match(parts[1]):
                fh = tar.extractfile(member)
                if fh is not None:
                    out[parts[1]] = fh.read()
    return out


def _mapping(data: bytes | None) -> dict[str, Any]:
    loaded = yaml.safe_load(data) if data else None
    return loaded if isinstance(loaded, dict) else {}


def _chart(files: dict[str, bytes]) -> Chart:
    meta = _mapping(files.get("Chart.yaml"))
    schema_data = files.get("values.schema.json")
    schema = json.loads(schema_data) if schema_data else None
    deps = [d for d in meta.get("dependencies") or [] if isinstance(d, dict) and d.get("name")]
    built: dict[str, Chart] = {}  # chart name -> the chart in charts/ (a .tgz or a directory)
    nested: dict[str, dict[str, bytes]] = {}
    referenced: set[tuple[str, ...]] = set()
    for rel, data in files.items():
        parts = rel.split("/")
        if parts[0] == "templates":
            text = data.decode("utf-8", "replace")
            referenced.update(tuple(m.group(1)[1:].split(".")) for m in _REFERENCE.finditer(text))
        elif parts[0] == "charts" and len(parts) == 2:  # charts/<name>-<version>.tgz
            sub = _chart(_files_of_archive(data))
            built[sub.name] = sub
        elif parts[0] == "charts":  # charts/<dir>/...
            nested.setdefault(parts[1], {})["/".join(parts[2:])] = data
    for files_of_sub in nested.values():
        if "Chart.yaml" in files_of_sub:
            sub = _chart(files_of_sub)
            built[sub.name] = sub
    # each dependency under its alias (one chart may be used under several), the rest by name
    subcharts = {str(d.get("alias") or d["name"]): built[d["name"]] for d in deps if d["name"] in built}
    used = {str(d["name"]) for d in deps}
    subcharts.update({name: sub for name, sub in built.items() if name not in used})
    conditions = tuple(
        tuple(c.strip().split(".")) for d in deps for c in str(d.get("condition") or "").split(",") if c.strip()
    )
    return Chart(
        name=str(meta.get("name", "")),
        defaults=_mapping(files.get("values.yaml")),
        schema=schema if isinstance(schema, dict) else None,
        subcharts=subcharts,
        conditions=conditions,
        tags=any(d.get("tags") for d in deps),
        referenced=frozenset(referenced),
    )


def load_chart(chart_dir: str) -> Chart:
    """The chart of a directory whose dependencies are built (charts/*.tgz or charts/<name>/)."""
    return _chart(_files_of_dir(chart_dir))


# --- walking the values ---------------------------------------------------------------------


def _coalesce(base: Any, over: Any) -> Any:
    """over on top of base, mappings merged key by key (as helm coalesces a parent's values for a
    subchart onto the subchart's defaults)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _coalesce(base.get(k), v)
        return out
    return base if over is None else over


def _with_conditions(defaults: dict[str, Any], conditions: Iterable[tuple[str, ...]]) -> dict[str, Any]:
    out = dict(defaults)
    for cond in conditions:
        node = out
        for key in cond[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node.setdefault(cond[-1], None)
    return out


def _hint(key: str, known: Iterable[str]) -> tuple[str, ...]:
    return tuple(difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75))


@dataclass
class _Walk:
    found: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)

    def unknown(self, path: tuple[str, ...], known: Iterable[str], by_schema: str = "") -> None:
        self.found.append((".".join(path), _hint(path[-1], known), by_schema))

    def chart(
        self,
        chart: Chart,
        values: Any,
        path: tuple[str, ...] = (),
        parent_defaults: Any = None,
        parent_conditions: tuple[tuple[str, ...], ...] = (),
        root: bool = True,
    ) -> None:
        """One chart's values: subchart keys lead into the subchart, the rest is the chart's own.
        Its known keys: its defaults, with what its parent's values.yaml and conditions set for it."""
        if not isinstance(values, dict):
            return
        # The meta chart's own keys are its schema's; its values.yaml is a layer, checked, not trusted.
        own = [c for c in chart.conditions if len(c) == 1]
        defaults = (
            {} if root else _with_conditions(_coalesce(chart.defaults, parent_defaults), [*parent_conditions, *own])
        )
        known = set(chart.subcharts) | {"global"} | ({"tags"} if chart.tags else set())
        for key, value in values.items():
            key = str(key)
            if key == "global" or (key == "tags" and chart.tags):
                continue
            if key in chart.subcharts:
                conditions = tuple(c[1:] for c in chart.conditions if len(c) > 1 and c[0] == key)
                parent = None if root else defaults.get(key)
                self.chart(chart.subcharts[key], value, (*path, key), parent, conditions, root=False)
            elif chart.schema_closed:
                self.schema(chart.name, chart.schema or {}, {key: value}, path, extra_known=known)
            elif not root:
                self.defaults(defaults, {key: value}, path, (), chart.referenced, extra_known=known)

    def defaults(
        self,
        default: Any,
        values: Any,
        path: tuple[str, ...],
        rel: tuple[str, ...],
        referenced: frozenset[tuple[str, ...]],
        extra_known: Iterable[str] = (),
    ) -> None:
        """Known keys are those of a default mapping that has keys, and those the chart's templates
        name there; below anything else, anything goes. `rel` is `path` within the chart."""
        if not (isinstance(default, dict) and default and isinstance(values, dict)):
            return
        named = {r[len(rel)] for r in referenced if len(r) > len(rel) and r[: len(rel)] == rel}
        known = {str(k) for k in default} | named | set(extra_known)
        for key, value in values.items():
            key = str(key)
            if key in default:
                self.defaults(default[key], value, (*path, key), (*rel, key), referenced)
            elif key not in known:
                self.unknown((*path, key), known)

    def schema(
        self, chart: str, node: Any, values: Any, path: tuple[str, ...], extra_known: Iterable[str] = ()
    ) -> None:
        """Known keys are a closed mapping's properties (and patternProperties); an open or composed
        schema mapping lets anything through, as helm does."""
        if not (isinstance(node, dict) and isinstance(values, dict)):
            return
        if node.get("additionalProperties") is not False or any(k in node for k in _COMPOSED):
            return
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        patterns = [str(p) for p in node.get("patternProperties") or {}]
        known = set(props) | set(extra_known)
        for key, value in values.items():
            key = str(key)
            if key in props:
                self.schema(chart, props[key], value, (*path, key))
            elif key not in known and not any(re.search(p, key) for p in patterns):
                self.unknown((*path, key), known, by_schema=chart)


def unknown_keys(chart: Chart, values: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
    """(path, hint, chart whose schema refuses it or "") of each unknown key of one values tree,
    given to the meta chart `chart`."""
    walk = _Walk()
    walk.chart(chart, values)
    return walk.found


def allowed(path: str, allow: Sequence[str]) -> bool:
    """Whether the operator allows `path`: it is one of `allow`, or below one."""
    return any(path == a or path.startswith(f"{a}.") for a in (a.strip().strip(".") for a in allow) if a)


def check(
    chart_dir: str, layers: Sequence[tuple[str, dict[str, Any]]], allow: Sequence[str]
) -> tuple[list[Unknown], list[str]]:
    """The unknown keys of the values layers (name, values) given to the built chart `chart_dir`,
    in the order of their first layer, and the unknown paths that `allow` lets through. The chart's
    own values.yaml is checked first, as the layer it is."""
    chart = load_chart(chart_dir)
    order: list[str] = []
    seen: dict[str, tuple[list[str], tuple[str, ...], str]] = {}
    for name, values in [(f"the {chart.name} chart's values.yaml", chart.defaults), *layers]:
        for path, hint, by_schema in unknown_keys(chart, values):
            if path not in seen:
                order.append(path)
                seen[path] = ([], hint, by_schema)
            if name not in seen[path][0]:
                seen[path][0].append(name)
    refused = [Unknown(p, tuple(seen[p][0]), seen[p][1], seen[p][2]) for p in order if not allowed(p, allow)]
    return refused, [p for p in order if allowed(p, allow)]


def message(unknown: Sequence[Unknown]) -> str:
    """What the operator reads: every unknown key path and where it is set, then the two fixes."""
    lines = "\n".join(f"  - {u.line()}" for u in unknown)
    return (
        f"the values set {len(unknown)} key(s) that no chart of the release knows; each would be ignored "
        f"without a word (nothing was installed):\n{lines}\n"
        "Correct each key (see the chart's values.yaml), or, when a chart really reads it although its default "
        "values do not show it, add its path to mybinder_values_unknown_allowed."
    )
