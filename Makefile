# make demo / make test set themselves up: the first call creates .venv from setup.py.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= work/demo

.PHONY: demo mammo test test-fast lint test-cluster browser venv clean

venv: $(STAMP)

# pip's output (and its warnings) go to $(VENV)/install.log; it is shown only if pip fails.
$(STAMP): setup.py
	@echo "creating $(VENV) and installing medgan (first run only, a few minutes)…"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install --disable-pip-version-check --upgrade pip && \
	   $(PY) -m pip install --disable-pip-version-check -e ".[test]"; } > $(VENV)/install.log 2>&1 || \
	 { cat $(VENV)/install.log >&2; echo "pip failed; its output is in $(VENV)/install.log" >&2; exit 1; }
	@touch $(STAMP)
	@echo "$(VENV) ready (pip's output: $(VENV)/install.log)"

demo: $(STAMP)
	@$(PY) -m medgan.main --config=configs/demo.py --workdir=$(WORKDIR)

# The mammography study (contextual lesion GAN, GAN-augmented cancer classification) at CPU size.
mammo: $(STAMP)
	@$(PY) -m medgan.main --config=configs/mammo_demo.py --workdir=work/mammo

# Two pytest workers (pytest-xdist): much of the suite is XLA compiling, which runs on one core.
# --dist loadfile keeps a module's tests, and so its module fixtures, in one worker.
PYTEST_WORKERS ?= 2
test: $(STAMP)
	mkdir -p work/test
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25 --junitxml=work/test/junit.xml
	@echo "test report: work/test/junit.xml"

# The suite without the end-to-end runs (pytest -m "not slow"): minutes instead of the whole suite's time.
test-fast: $(STAMP)
	mkdir -p work/test
	$(PY) -m pytest tests -q -m "not slow" --junitxml=work/test/junit-fast.xml

lint: $(STAMP)
	$(PY) -m ruff check .

# Chromium and its WebDriver (Debian packages, as root) for the reader-study page's browser test;
# without them that one test is skipped. CI runs this before make test.
browser:
	@if command -v chromedriver >/dev/null 2>&1; then echo "chromium-driver: $$(command -v chromedriver)"; \
	elif [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: install chromium and chromium-driver as root (apt-get), or skip the browser test" >&2; exit 1; \
	else echo "installing chromium and chromium-driver with apt-get (once)…"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
			-y -qq --no-install-recommends chromium chromium-driver; } > /tmp/medgan-browser-apt.log 2>&1 || \
		{ tail -n 30 /tmp/medgan-browser-apt.log >&2; echo "apt-get failed; log: /tmp/medgan-browser-apt.log" >&2; exit 1; }; \
	fi

# launch/slurm.py against a real SLURM: a single-node cluster on this host (as root; the first
# run installs slurm-wlm and munge with apt), two tiny demo_sweep points of 2 jax processes each.
# The cluster goes down whatever happens; the exit status is the check's (or down's, if it fails).
CLUSTER_WORKDIR ?= work/cluster
CLUSTER_POINTS := classes-2_per_class-50 classes-2_per_class-100
test-cluster: $(STAMP)
	rm -rf $(CLUSTER_WORKDIR)
	trap 'launch/local_slurm.sh down; exit 130' INT TERM; \
	status=0; \
	launch/local_slurm.sh up && \
	SLURM_CONF=$${MEDGAN_SLURM_DIR:-/tmp/medgan-slurm}/slurm.conf $(PY) launch/slurm.py \
		--config=configs/demo_sweep.py:size=tiny --workdir=$(CLUSTER_WORKDIR) --only=classes=2 \
		--nodes=1 --tasks-per-node=2 --cpus-per-task=1 --time=00:30:00 --wait && \
	$(PY) launch/check_cluster.py $(CLUSTER_WORKDIR) --processes=2 $(CLUSTER_POINTS) || status=$$?; \
	launch/local_slurm.sh down || status=1; \
	exit $$status

clean:
	rm -rf work .pytest_cache
