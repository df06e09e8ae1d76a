"""Values keys that no chart of the release knows, refused before anything is installed
(module_utils/_values_keys, run by values_layers), against the REAL charts: the meta chart built
with the packaged upstream charts of its Chart.lock (the chart repository directory that
tools/chart-mirror.py serves: $MYBINDER_CHART_DIR, else ../shared/charts beside the checkout)."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils import _values_keys as vk  # noqa: E402
from ansible_collections.mybinder.deploy.plugins.module_utils import _values_layers as vl  # noqa: E402
from ansible_collections.mybinder.deploy.plugins.module_utils._values_schema import (  # noqa: E402
    explain,
    subchart_prefixes,
)

ENVS = ("staging", "prod", "ovh", "local")
GITCRYPT_MAGIC = b"\x00GITCRYPT\x00"
# What the role lets through for the meta chart's own values (roles/mybinder/vars/main.yml).
CHART_ALLOWED = yaml.safe_load((ROOT / "roles" / "mybinder" / "vars" / "main.yml").read_text())[
    "_mybinder_values_unknown_allowed_chart"
]


def charts_dir() -> Path:
    named = os.environ.get("MYBINDER_CHART_DIR")
    return Path(named) if named else ROOT.parent / "shared" / "charts"


@functools.cache
def built_chart() -> str:
    """mybinder/ with charts/<name>-<version>.tgz of every Chart.lock pin, as chart_build leaves it."""
    if not (charts_dir() / "index.yaml").is_file():
        pytest.skip(f"no chart repository directory of the real charts at {charts_dir()} (set MYBINDER_CHART_DIR)")
    dest = Path(tempfile.mkdtemp(prefix="values-keys-")) / "mybinder"
    shutil.copytree(ROOT / "mybinder", dest, ignore=shutil.ignore_patterns("charts"))
    (dest / "charts").mkdir()
    for dep in yaml.safe_load((ROOT / "mybinder" / "Chart.lock").read_text())["dependencies"]:
        shutil.copy(charts_dir() / f"{dep['name']}-{dep['version']}.tgz", dest / "charts")
    return str(dest)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    if built_chart.cache_info().currsize:
        shutil.rmtree(Path(built_chart()).parent, ignore_errors=True)


def unknown(values: dict[str, Any], allow: list[str] | None = None) -> list[vk.Unknown]:
    refused, _ = vk.check(built_chart(), [("config/test.yaml", values)], [*CHART_ALLOWED, *(allow or [])])
    return refused


def paths(values: dict[str, Any], allow: list[str] | None = None) -> list[str]:
    return [u.path for u in unknown(values, allow)]


# --- subcharts without a schema that closes them: their default values tell ------------------


def test_a_misspelt_prometheus_key_is_named_with_the_key_it_may_mean():
    (u,) = unknown({"prometheus": {"server": {"nodeSelectr": {"pool": "core"}, "retention": "1d"}}})
    assert (u.path, u.files, u.hint) == ("prometheus.server.nodeSelectr", ("config/test.yaml",), ("nodeSelector",))
    assert u.line() == "prometheus.server.nodeSelectr (in config/test.yaml); did you mean nodeSelector?"


def test_a_misspelt_grafana_key_is_named_and_a_key_far_from_any_gets_no_hint():
    assert [(u.path, u.hint) for u in unknown({"grafana": {"ingres": {"enabled": True}, "zzzqqq": 1}})] == [
        ("grafana.ingres", ("ingress",)),
        ("grafana.zzzqqq", ()),
    ]


def test_keys_of_a_nested_subchart_are_checked_against_its_own_defaults():
    # prometheus -> kube-state-metrics: known from its own values.yaml and prometheus's condition key
    values = {"prometheus": {"kube-state-metrics": {"enabled": True, "nodeSelector": {}, "replicass": 2}}}
    assert paths(values) == ["prometheus.kube-state-metrics.replicass"]


@pytest.mark.parametrize(
    "values",
    [
        {"prometheus": {"server": {"nodeSelector": {"any.label/name": "x"}, "podAnnotations": {"a/b": "c"}}}},
        {"prometheus": {"server": {"extraArgs": {"web.enable-lifecycle": None}, "env": [{"name": "A"}]}}},
        {"grafana": {"env": {"GF_SERVER_ROOT_URL": "https://x"}, "nodeSelector": {"pool": "core"}}},
        {"grafana": {"resources": {"limits": {"cpu": "1"}}, "podAnnotations": {"x": "y"}}},  # podAnnotations: templates
        {"prometheus": {"kube-state-metrics": {"nodeSelector": {"pool": "core"}}}},
        {"global": {"anything": {"at": "all"}}, "prometheus": {"global": {"free": 1}}},
        {"prometheus": {"enabled": False, "alertmanager": {"enabled": False}}, "grafana": {"enabled": True}},
    ],
    ids=[
        "prometheus-free-maps",
        "prometheus-args-and-list",
        "grafana-env",
        "grafana-resources",
        "nested",
        "global",
        "conditions",
    ],
)
def test_free_form_maps_global_and_dependency_conditions_take_any_key(values):
    assert paths(values) == []


def test_an_allowed_path_or_prefix_is_let_through_and_reported():
    values = {"grafana": {"smtpx": {"host": "x"}, "ingres": {}}, "prometheus": {"server": {"nodeSelectr": {}}}}
    refused, allowed = vk.check(
        built_chart(), [("c.yaml", values)], [*CHART_ALLOWED, "grafana.smtpx", "prometheus.server"]
    )
    assert [u.path for u in refused] == ["grafana.ingres"]
    assert allowed[2:] == ["grafana.smtpx", "prometheus.server.nodeSelectr"]  # after the chart's own grafana.ini
    assert not vk.allowed("grafana.smtpxy", ["grafana.smtpx"])  # a prefix is a whole key


# --- charts whose schema closes them: binderhub, jupyterhub and the meta chart itself ---------


def test_a_schema_that_closes_a_mapping_is_followed_and_an_open_one_lets_anything_through():
    values = {
        "binderhub": {
            "replicass": 2,
            "config": {"AnyConfigurable": {"any": 1}},  # open in binderhub's schema
            "jupyterhub": {"hub": {"nodeSelectr": {}, "config": {"CryptKeeper": {"keys": ["x"]}}}},
        }
    }
    assert [(u.path, u.by_schema, u.hint) for u in unknown(values)] == [
        ("binderhub.replicass", "binderhub", ("replicas",)),
        ("binderhub.jupyterhub.hub.nodeSelectr", "jupyterhub", ("nodeSelector",)),
    ]


def test_a_misspelt_top_level_key_of_the_meta_chart_is_refused_by_its_schema():
    (u,) = unknown({"bindrhub": {"replicas": 2}})
    assert (u.path, u.by_schema, u.hint) == ("bindrhub", "mybinder", ("binderhub",))
    assert unknown({"redirector": {"replica": 2}})[0].line() == (
        "redirector.replica (in config/test.yaml); the mybinder chart's schema allows no such key;"
        " did you mean replicas?"
    )


def test_helm_refuses_it_too_and_the_error_is_said_as_key_paths(tmp_path):
    helm = shutil.which("helm")
    if not helm:
        pytest.skip("helm is not on PATH")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bindrhub:\n  replicas: 2\ntls:\n  secretNam: x\n")
    res = subprocess.run(
        [helm, "template", "t", built_chart(), "-f", str(secret_or_skip("local")), "-f", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode != 0
    assert sorted(explain(res.stderr, subchart_prefixes(built_chart())).splitlines()[1:]) == [
        "  - bindrhub: unknown key (the mybinder chart's schema allows no such key)",
        "  - tls.secretNam: unknown key (the mybinder chart's schema allows no such key)",
    ]


# --- the four environments --------------------------------------------------------------------


def secret_or_skip(env: str) -> Path:
    path = ROOT / "secret" / "config" / f"{env}.yaml"
    if path.read_bytes().startswith(GITCRYPT_MAGIC):
        pytest.skip(f"{path} is still encrypted: unlock the demo secrets first (make unlock)")
    return path


def inventory_layer(env: str) -> dict[str, Any]:
    """config/inventory-values.yaml.j2 rendered with the environment's inventory variables."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    def trusted(x: Any) -> Any:
        if isinstance(x, str):
            return trust_as_template(x)
        if isinstance(x, dict):
            return {k: trusted(v) for k, v in x.items()}
        if isinstance(x, list):
            return [trusted(v) for v in x]
        return x

    variables: dict[str, Any] = {"mybinder_env": env, "inventory_hostname": env}
    for f in [
        *sorted((ROOT / "group_vars" / "all").glob("*.yml")),
        *sorted((ROOT / "inventories" / env / "group_vars" / "mybinder_clusters").glob("*.yml")),
    ]:
        variables.update(yaml.safe_load(f.read_text()) or {})
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    text = (ROOT / "config" / "inventory-values.yaml.j2").read_text()
    return yaml.safe_load(templar.template(trust_as_template(text)))


@pytest.mark.parametrize("env", ENVS)
def test_every_values_file_of_an_environment_passes_the_check_and_helm(env, tmp_path):
    layer = tmp_path / "inventory-values.yaml"
    layer.write_text(yaml.safe_dump(inventory_layer(env)))
    files = [layer, secret_or_skip(env), ROOT / "config" / f"{env}.yaml"]
    layers = [{"path": str(f), "secret": "secret" in f.parts, "required": True} for f in files]
    res = vl.run(layers, chart=built_chart(), unknown_allowed=CHART_ALLOWED)
    assert res["paths"] == [str(f) for f in files]
    assert res["unknown_allowed"] == (["grafana.grafana.ini.auth.anonymous", "grafana.grafana.ini.auth.basic"])
    helm = shutil.which("helm")
    if helm:  # the meta chart's schema accepts them too
        cmd = [helm, "template", env, built_chart(), *(a for f in files for a in ("-f", str(f)))]
        assert subprocess.run(cmd, capture_output=True, text=True, check=False).returncode == 0


def test_keys_a_chart_shows_only_as_comments_are_known_from_its_templates():
    # grafana's values.yaml has `# adminPassword: ...` and `# ingressClassName: nginx` only; its templates read them
    values = {"grafana": {"adminPassword": "s3cret-value", "ingress": {"ingressClassName": "nginx", "hostz": []}}}
    assert paths(values) == ["grafana.ingress.hostz"]


def test_without_the_roles_allowance_the_meta_charts_own_grafana_ini_sections_are_named():
    refused, _ = vk.check(built_chart(), [], [])
    assert [(u.path, u.files) for u in refused] == [
        ("grafana.grafana.ini.auth.anonymous", ("the mybinder chart's values.yaml",)),
        ("grafana.grafana.ini.auth.basic", ("the mybinder chart's values.yaml",)),
    ]


# --- through the runner of values_layers: the operator's message ------------------------------


def test_the_values_check_fails_naming_paths_files_and_the_fix_but_no_value(tmp_path):
    public = tmp_path / "public.yaml"
    public.write_text("prometheus:\n  server:\n    nodeSelectr:\n      pool: hidden-value-1\n")
    secret = tmp_path / "secret.yaml"
    secret.write_text("grafana:\n  ingres:\n    password: hidden-value-2\nbindrhub:\n  token: hidden-value-3\n")
    layers = [
        {"path": str(secret), "secret": True, "required": True},
        {"path": str(public), "secret": False, "required": True},
    ]
    with pytest.raises(vl.LayerError) as err:
        vl.run(layers, chart=built_chart(), unknown_allowed=CHART_ALLOWED)
    msg = str(err.value)
    assert "nothing was installed" in msg and "mybinder_values_unknown_allowed" in msg
    assert f"  - grafana.ingres (in {secret}); did you mean ingress?" in msg
    assert f"  - bindrhub (in {secret}); the mybinder chart's schema allows no such key; did you mean binderhub?" in msg
    assert f"  - prometheus.server.nodeSelectr (in {public}); did you mean nodeSelector?" in msg
    assert "hidden-value" not in msg
    assert err.value.details["unknown_keys"] == ["grafana.ingres", "bindrhub", "prometheus.server.nodeSelectr"]
    # allowed: the same files pass, and without a chart nothing is checked
    ok = vl.run(
        layers, chart=built_chart(), unknown_allowed=[*CHART_ALLOWED, "grafana.ingres", "bindrhub", "prometheus"]
    )
    assert ok["unknown_allowed"] == [
        "grafana.grafana.ini.auth.anonymous",  # the chart's own values.yaml, allowed by the role
        "grafana.grafana.ini.auth.basic",
        "grafana.ingres",
        "bindrhub",
        "prometheus.server.nodeSelectr",
    ]
    assert vl.run(layers)["unknown_allowed"] == []


def test_a_still_encrypted_layer_is_left_to_the_later_full_check(tmp_path):
    enc = tmp_path / "secret.yaml"
    enc.write_bytes(GITCRYPT_MAGIC + b"bytes")
    public = tmp_path / "public.yaml"
    public.write_text("grafana:\n  ingres: {}\n")
    layers = [
        {"path": str(enc), "secret": True, "required": True},
        {"path": str(public), "secret": False, "required": True},
    ]
    with pytest.raises(vl.LayerError, match=r"grafana\.ingres"):
        vl.run(layers, allow_encrypted=True, chart=built_chart(), unknown_allowed=CHART_ALLOWED)


# --- the dependency tree, on a small chart ----------------------------------------------------


def archive(name: str, files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, text in {"Chart.yaml": f"name: {name}\nversion: 1.0.0\n", **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_one_chart_under_two_aliases_and_the_keys_its_templates_read(tmp_path):
    (tmp_path / "charts").mkdir()
    deps = [{"name": "sub", "alias": "one"}, {"name": "sub", "alias": "two", "condition": "two.on"}]
    (tmp_path / "Chart.yaml").write_text(yaml.safe_dump({"name": "top", "dependencies": deps}))
    (tmp_path / "charts" / "sub-1.0.0.tgz").write_bytes(
        archive("sub", {"values.yaml": "a:\n  b: 1\n", "templates/x.yaml": "{{ $.Values.c.d }}{{ .Values.a.e }}"})
    )
    values = {"one": {"a": {"b": 2, "e": 3, "x": 4}, "c": {"anything": 1}}, "two": {"on": True, "d": 1}, "sub": {}}
    refused, _ = vk.check(str(tmp_path), [("v.yaml", values)], [])
    # the top chart has no schema: its own keys (sub) are not this check's
    assert [u.path for u in refused] == ["one.a.x", "two.d"]


def test_a_chart_that_cannot_be_read_is_named(tmp_path):
    (tmp_path / "Chart.yaml").write_text("name: top\n")
    (tmp_path / "values.schema.json").write_text("{not json")
    public = tmp_path / "v.yaml"
    public.write_text("a: 1\n")
    with pytest.raises(vl.LayerError, match=f"the chart {tmp_path} could not be read to check the values keys"):
        vl.run([{"path": str(public), "secret": False, "required": True}], chart=str(tmp_path))
