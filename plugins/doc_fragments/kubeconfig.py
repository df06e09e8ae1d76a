# Copyright (c) mybinder.deploy developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The kubeconfig file and context, for the modules that read the file themselves or hand it
    # to helm (argument spec: plugins/module_utils/_kube_client.py KUBECONFIG_ARG_SPEC). The same
    # names, aliases and environment variables as kubernetes.core.helm; the modules that take every
    # connection option of kubernetes.core use mybinder.deploy.kube_connection instead.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description: Path of the kubeconfig file; E(K8S_AUTH_KUBECONFIG), else E(KUBECONFIG) or C(~/.kube/config).
    type: path
    aliases: [kubeconfig_path]
  context:
    description: Kubeconfig context; E(K8S_AUTH_CONTEXT), else the kubeconfig's current context.
    type: str
    aliases: [kube_context]
"""
