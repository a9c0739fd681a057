# `make demo` and `make test` are the two commands in the README; each sets up .venv first if needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
DEMO_FLAGS := --weights none --image-size 64 --batch-size 16 --warmup-epochs 30 --finetune-epochs 15 --patience 5

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

demo: setup
	$(PYTHON) -m defect_tf.demo
	$(PYTHON) train.py --data images --labels labels.txt $(DEMO_FLAGS)
	$(PYTHON) evaluate.py
	$(PYTHON) inference.py images/surface_0003.png

test: setup
	$(PYTHON) -m pytest

clean:
	rm -rf images masks outputs/bundle outputs/.bundle.* outputs/*.png outputs/*.json outputs/split.txt
