"""The cluster_access stage for GKE clusters (issue 4): credentials fetched with `gcloud container
clusters get-credentials` into a private kubeconfig, then the same checks as for any kubeconfig.

Google's API cannot be reached here, so `gcloud` is replaced by a small script that records its
arguments and environment and writes the local cluster's kubeconfig where gcloud would (into
$KUBECONFIG). Everything after it - the private directory and file, the API check, the reported
server version - runs for real against the local cluster.
"""

from __future__ import annotations

import json
import stat
import subprocess
import textwrap

import pytest
import yaml
from deploy_testlib import deploy, env, parse

from conftest import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def fake_gcloud(tmp_path, cluster, fail: str = "") -> tuple[str, object]:
    record = tmp_path / "gcloud-calls.jsonl"
    script = tmp_path / "bin" / "gcloud"
    script.parent.mkdir()
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env python3
            import json, os, shutil, sys
            with open({str(record)!r}, "a") as fh:
                fh.write(json.dumps({{"argv": sys.argv[1:], "KUBECONFIG": os.environ.get("KUBECONFIG"),
                                      "prompts": os.environ.get("CLOUDSDK_CORE_DISABLE_PROMPTS")}}) + "\\n")
            if sys.argv[1:2] == ["--version"]:
                print("Google Cloud SDK 500.0.0 (test double)")
                sys.exit(0)
            if {fail!r}:
                print({fail!r}, file=sys.stderr)
                sys.exit(1)
            shutil.copyfile({str(cluster.kubeconfig)!r}, os.environ["KUBECONFIG"])
            os.chmod(os.environ["KUBECONFIG"], 0o644)  # as a careless tool would leave it
            """
        )
    )
    script.chmod(0o755)
    return str(script), record


def gke(tmp_path, gcloud: str, zone: str):
    """An inventory of one GKE cluster: the local environment's group_vars, with host_vars as the
    prod inventory has them (cluster_access_kubeconfig empty: the role's private default)."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "group_vars" / "mybinder_clusters").symlink_to(
        ROOT / "inventories" / "local" / "group_vars" / "mybinder_clusters"
    )
    host = {
        "ansible_connection": "local",
        "mybinder_repo_dir": str(ROOT),
        "cluster_access_method": "gke",
        "cluster_access_gke_project": "binder-prod",
        "cluster_access_gke_zone": zone,
        "cluster_access_gke_cluster": "prod",
        "cluster_access_kubeconfig": "",
        "cluster_access_gke_kubeconfig_dir": str(tmp_path / "kube" / "mybinder-deploy"),
        "cluster_access_gcloud_binary": gcloud,
        "preflight_gcloud_binary": gcloud,
    }
    (inv / "hosts.yml").write_text(json.dumps({"mybinder_clusters": {"hosts": {"prod": host}}}))
    return inv


@pytest.mark.parametrize(("zone", "flag"), [("us-central1", "--region"), ("us-central1-a", "--zone")])
def test_gke_credentials_go_into_a_private_kubeconfig(cluster, tmp_path, zone, flag):
    gcloud, record = fake_gcloud(tmp_path, cluster)
    res = deploy(tmp_path, {}, "--tags", "cluster_access", inventory=gke(tmp_path, gcloud, zone))
    assert res.rc == 0, res.output
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    fetch = [c for c in calls if c["argv"][:1] == ["container"]]
    assert [c["argv"] for c in fetch] == [
        ["container", "clusters", "get-credentials", "prod", flag, zone, "--project", "binder-prod"]
    ]
    kubeconfig = tmp_path / "kube" / "mybinder-deploy" / f"binder-prod_{zone}_prod.kubeconfig"
    assert fetch[0]["KUBECONFIG"] == str(kubeconfig) and fetch[0]["prompts"] == "1"
    assert stat.S_IMODE(kubeconfig.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert "[prod] Kubernetes v1.34.4 at https://127.0.0.1:" in res.output


def test_later_tasks_reach_the_cluster_through_the_environment_it_sets(cluster, tmp_path):
    """After the stage, kubectl, helm and kubernetes.core modules find the GKE cluster through the
    fact cluster_access_environment, which deploy.yml exports to every later task: helm run with
    it, with no KUBECONFIG and no ~/.kube/config of its own, lists the cluster's releases."""
    gcloud, _ = fake_gcloud(tmp_path, cluster)
    inventory = gke(tmp_path, gcloud, "us-central1")
    kubeconfig = tmp_path / "kube" / "mybinder-deploy" / "binder-prod_us-central1_prod.kubeconfig"
    play = tmp_path / "play.yml"
    play.write_text(
        textwrap.dedent(
            f"""\
            - name: The deploy, up to cluster access
              ansible.builtin.import_playbook: {ROOT / "deploy.yml"}
            - name: A later task
              hosts: mybinder_clusters
              gather_facts: false
              tags: [always]
              vars:
                ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
              environment: "{{{{ cluster_access_environment }}}}"
              tasks:
                - name: Run tools with the exported environment
                  ansible.builtin.shell: env | grep -E '^(K8S_AUTH_|KUBECONFIG|HELM_KUBE)' | sort; helm list -A -q
                  changed_when: false
                  register: out
                - name: Show
                  ansible.builtin.debug:
                    msg: "{{{{ out.stdout_lines }}}}"
            """
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    run_env = {k: v for k, v in env().items() if k not in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG")}
    run_env["HOME"] = str(home)
    res = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(play), "-i", str(inventory), "--tags", "cluster_access"],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    run = parse(res.returncode, res.stdout + res.stderr)
    assert run.rc == 0, run.output
    assert deploy_environment() == "{{ cluster_access_environment }}"
    # each variable is one item of the printed list (the last one without a comma)
    assert f'"K8S_AUTH_KUBECONFIG={kubeconfig}"' in run.output, run.output
    assert f'"KUBECONFIG={kubeconfig}"' in run.output, run.output
    assert "K8S_AUTH_CONTEXT=" not in run.output and "HELM_KUBECONTEXT=" not in run.output  # none was given
    assert not (home / ".kube" / "config").exists()


def deploy_environment() -> str:
    (play,) = yaml.safe_load((ROOT / "deploy.yml").read_text())
    return play["environment"]


def test_gcloud_failure_is_explained(cluster, tmp_path):
    gcloud, _ = fake_gcloud(
        tmp_path,
        cluster,
        fail="ERROR: (gcloud.container.clusters.get-credentials) You do not currently have an active account selected.",
    )
    res = deploy(tmp_path, {}, "--tags", "cluster_access", inventory=gke(tmp_path, gcloud, "us-central1"))
    assert res.rc != 0
    assert "gcloud could not get credentials for GKE cluster prod (us-central1, project binder-prod)" in res.output
    assert "You do not currently have an active account selected" in res.output
    assert "gcloud auth list" in res.output


def test_missing_gcloud_is_refused_in_preflight(cluster, tmp_path):
    res = deploy(
        tmp_path,
        {},
        "--tags",
        "cluster_access",
        inventory=gke(tmp_path, str(tmp_path / "no-such-gcloud"), "us-central1"),
    )
    assert res.rc != 0
    assert "cluster_access_method is gke but gcloud" in res.output
    assert "TASK [mybinder.deploy.cluster_access" not in res.output
