# mybinder.deploy: one entry point for setting up, rehearsing and testing.
#   make demo          venv + tools + local cluster, then deploy.yml against inventories/local
#   make test          the whole suite (lint, sanity, unit, integration, molecule); CI runs this
#   make test-fast     lint + unit tests, for the inner loop
#   make cluster-up | cluster-down | cluster-status
#   make fleet-demo    three local clusters side by side, deployed by one run of deploy.yml
#   make fleet-up | fleet-down | fleet-status
#   make bench         benchmarks, written to docs/benchmarks.md
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(shell tools/build-binaries.sh --print)
export PATH := $(TOOLS_BIN):$(VENV)/bin:$(PATH)
export KUBECONFIG := $(CURDIR)/.cluster/kubeconfig
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.PHONY: help venv tools unlock cluster-up cluster-down cluster-status demo test test-fast lint \
        sanity unit integration molecule bench lock clean fleet-up fleet-down fleet-status fleet-demo

help:
	@sed -n 's/^#   //p' Makefile

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements.lock
	@command -v python3 >/dev/null || { echo "python3 (3.11) is required: apt-get install python3 python3-venv"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -c requirements.lock
	touch $@

lock: ## re-pin every transitive dependency after editing requirements.txt
	$(VENV)/bin/pip freeze --exclude-editable > requirements.lock

# helm, kubectl and the control plane from Go modules; git-crypt (and shellcheck for
# ansible-test sanity) from Debian's packages; all cached per version outside the work tree.
tools: $(TOOLS_BIN)/.complete
$(TOOLS_BIN)/.complete: tools/versions.env tools/build-binaries.sh tools/install-deb-tool.sh
	tools/build-binaries.sh >/dev/null
	ln -sfn "$$(tools/install-deb-tool.sh git-crypt)" $(TOOLS_BIN)/git-crypt
	ln -sfn "$$(tools/install-deb-tool.sh shellcheck)" $(TOOLS_BIN)/shellcheck
	touch $@

cluster-up: venv tools
	$(PY) tools/localcluster.py up

cluster-down:
	$(PY) tools/localcluster.py down

cluster-status:
	$(PY) tools/localcluster.py status

demo: venv tools cluster-up
	ansible-playbook deploy.yml -i inventories/local

# inventories/local-fleet: one local cluster per host, each in $(MYBINDER_FLEET_DIR)/<host>.
export MYBINDER_FLEET_DIR ?= $(CURDIR)/.cluster-fleet
FLEET_HOSTS = $(shell sed -n 's/^    \(local-[a-z0-9-]*\):$$/\1/p' inventories/local-fleet/hosts.yml)

fleet-up: venv tools
	for h in $(FLEET_HOSTS); do MYBINDER_CLUSTER_DIR=$(MYBINDER_FLEET_DIR)/$$h $(PY) tools/localcluster.py up; done

fleet-down:
	for h in $(FLEET_HOSTS); do MYBINDER_CLUSTER_DIR=$(MYBINDER_FLEET_DIR)/$$h $(PY) tools/localcluster.py down; done

fleet-status:
	rc=0; for h in $(FLEET_HOSTS); do echo "== $$h"; \
	  MYBINDER_CLUSTER_DIR=$(MYBINDER_FLEET_DIR)/$$h $(PY) tools/localcluster.py status || rc=1; done; exit $$rc

fleet-demo: venv tools fleet-up
	ansible-playbook deploy.yml -i inventories/local-fleet

# Unlock secret/ with the PUBLIC demo key through the git_crypt module (a no-op when unlocked):
# the tests read the placeholder secrets. Real keys never go through make.
unlock: venv tools
	ansible-playbook playbooks/check-secrets.yml -e secrets_unlock=true \
	  -e secrets_key_file=secret/DEMO-ONLY-PUBLIC-git-crypt.key

lint: venv
	yamllint -s .
	ruff check .
	ruff format --check .
	ansible-lint

sanity: venv
	tools/ansible-test-sanity.sh

unit: venv
	pytest tests/unit $(PYTEST_ARGS)

integration: venv tools unlock
	pytest tests/integration $(PYTEST_ARGS)

molecule: venv tools unlock cluster-up
	tools/molecule-all.sh

test-fast: lint unit

# The cluster is started first so that pytest reuses it (and leaves it running) for Molecule;
# a cluster this target started is stopped at the end, also when a test fails (one that was
# already running is left running).
test: lint sanity unlock tools
	@if $(PY) tools/localcluster.py status >/dev/null 2>&1; then started=; else started=1; fi; \
	  trap 'if [ -n "$$started" ]; then $(PY) tools/localcluster.py down; fi' EXIT; \
	  $(PY) tools/localcluster.py up && \
	  pytest tests $(PYTEST_ARGS) && \
	  tools/molecule-all.sh

bench: venv tools
	$(PY) tests/bench/run.py

clean: cluster-down
	rm -rf $(VENV) tests/output .pytest_cache .ruff_cache
