"""helm's values-schema errors turned into the operator's key paths (module_utils/_values_schema)."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".collections"))
from ansible_collections.mybinder.deploy.plugins.module_utils._values_schema import (
    explain,
    subchart_prefixes,
)

# What helm 3.19 prints for a misspelt jupyterhub key, a wrong type in binderhub and one in jupyterhub.
HELM = """Error: values don't meet the specifications of the schema(s) in the following chart(s):
binderhub:
- at '/replicas': got string, want integer
jupyterhub:
- at '/cull/maxAge': got string, want null or integer
- at '/hub': additional properties 'nodeSelectr', 'extraEnvv' not allowed
"""
PREFIXES = {"mybinder": "", "binderhub": "binderhub.", "jupyterhub": "binderhub.jupyterhub.", "grafana": "grafana."}


def test_each_problem_is_named_by_its_key_path_in_the_values_files_with_the_schemas_reason():
    assert explain(HELM, PREFIXES) == (
        "the values break the charts' values schemas (nothing was installed):\n"
        "  - binderhub.replicas: got string, want integer\n"
        "  - binderhub.jupyterhub.cull.maxAge: got string, want null or integer\n"
        "  - binderhub.jupyterhub.hub.nodeSelectr: unknown key (the jupyterhub chart's schema allows no such key)\n"
        "  - binderhub.jupyterhub.hub.extraEnvv: unknown key (the jupyterhub chart's schema allows no such key)"
    )


def test_a_problem_at_the_top_of_a_subchart_and_a_single_unknown_key():
    text = (
        "Error: values don't meet the specifications of the schema(s) in the following chart(s):\n"
        "binderhub:\n- at '': additional properties 'replicass' not allowed\n- at '': got string, want object\n"
    )
    assert explain(text, PREFIXES).splitlines()[1:] == [
        "  - binderhub.replicass: unknown key (the binderhub chart's schema allows no such key)",
        "  - binderhub: got string, want object",
    ]


def test_other_helm_errors_are_left_alone():
    assert explain("Error: INSTALLATION FAILED: cannot re-use a name that is still in use", PREFIXES) is None


def chart_archive(name: str, nested: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(path: str, doc: dict) -> None:
            data = yaml.safe_dump(doc).encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add(f"{name}/Chart.yaml", {"name": name, "version": "1.0.0"})
        for sub in nested:
            add(f"{name}/charts/{sub}/Chart.yaml", {"name": sub, "version": "2.0.0"})
    return buf.getvalue()


def test_prefixes_follow_the_built_dependency_tree_and_aliases(tmp_path: Path):
    (tmp_path / "charts").mkdir()
    (tmp_path / "Chart.yaml").write_text(
        yaml.safe_dump(
            {"name": "mybinder", "dependencies": [{"name": "binderhub"}, {"name": "grafana", "alias": "dashboards"}]}
        )
    )
    (tmp_path / "charts" / "binderhub-1.0.0.tgz").write_bytes(chart_archive("binderhub", ["jupyterhub"]))
    (tmp_path / "charts" / "grafana-1.0.0.tgz").write_bytes(chart_archive("grafana", []))
    assert subchart_prefixes(str(tmp_path)) == {
        "mybinder": "",
        "binderhub": "binderhub.",
        "jupyterhub": "binderhub.jupyterhub.",
        "grafana": "dashboards.",
    }
