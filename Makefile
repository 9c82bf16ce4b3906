# Development tasks. `make test` creates .venv when it is missing, installs the package with its
# test extra, and runs the test suite. `make demo` trains a small stack on the built-in photos
# and reports its test bits per dimension.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision releases that pip installs from this machine's disk; override on another machine.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info

# The main job on the built-in photographs: a small 3-level stack on 16x16 crops, trained for a
# few minutes on a CPU, then its test bits per dimension.
DEMO_MODEL ?= demo-model
demo: install
	$(BIN)/mrcnf train --res 3 --data photos --image-size 16 --model $(DEMO_MODEL) --hidden 32,32,32 \
		--steps 400 --max-time 3m --warmup 50 --validate-every 100 --validation-images 64
	$(BIN)/mrcnf bpd --model $(DEMO_MODEL) --data photos --image-size 16 --max-images 256
