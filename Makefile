# make demo / make test set themselves up: the first call creates .venv from setup.py.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= work/demo

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m medgan.main --config=configs/demo.py --workdir=$(WORKDIR)

test: $(STAMP)
	mkdir -p work/test
	$(PY) -m pytest tests -q --junitxml=work/test/junit.xml
	@echo "test report: work/test/junit.xml"

clean:
	rm -rf work .pytest_cache
