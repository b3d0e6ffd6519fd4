# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
TORCH  ?= torch==2.13.0
# Slow model-training tests are left out by default: `make test PYTEST_ARGS="-m slow"` runs them.
PYTEST_ARGS ?= -m "not slow"
HOTLINE_HOST ?= 127.0.0.1
HOTLINE_PORT ?= 8000
export HOTLINE_HOST HOTLINE_PORT

.PHONY: serve test install prepare clean lint

# A stamp so that `make test` re-installs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the local CPU wheel: otherwise a dependency pulls a multi-GB CUDA build.
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

# Everything the main job needs before it can serve: convert the offline encoder, build the index.
prepare: install
	$(VENV)/bin/hotline lists validate
	$(VENV)/bin/hotline models prepare

serve: prepare
	$(VENV)/bin/hotline serve --host $(HOTLINE_HOST) --port $(HOTLINE_PORT)

test: install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

clean:
	rm -rf $(VENV) build *.egg-info
