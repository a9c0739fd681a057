# `make demo` and `make test` are the two commands in the README; each sets up .venv first if needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	PYTHONWARNINGS=ignore $(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .  # setuptools' beta notices
	touch $@

# Generate the photos, train, evaluate, label one photo; each step prints its command (defect_tf/apps/demo.py).
demo: setup
	$(PYTHON) -m defect_tf demo

test: setup
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest -n 2 --dist loadgroup --max-worker-restart 0

# `make test`: the full suite in two workers (each builds the small trained-model fixtures; the demo's training
# runs once, in the worker that runs all its tests). A worker that dies (out of memory, say) fails the run at once,
# naming its test: pytest-xdist would replace it and then hang to CI's time limit (its issue 1378).
# The unit tier: no training, no subprocess, no browser (under a minute, one worker per core).
test-fast: setup
	$(VENV)/bin/ruff check .
	DEFECT_TF_TIER=unit $(PYTHON) -m pytest -q -n auto -m "not slow and not integration and not browser"

clean:
	rm -rf images masks labels.txt .defect_tf-output.json outputs/bundle outputs/.bundle.* outputs/checkpoint \
		outputs/*.png outputs/*.json outputs/split.txt outputs/skipped_images.txt outputs/.defect_tf-output.json
