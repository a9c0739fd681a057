# `make demo` and `make test` are the two commands in the README; each sets up .venv first if needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Offline, so no ImageNet weights: the small CNN trained from scratch (see README, "The demo").
DEMO_FLAGS := --backbone small_cnn --weights none --image-size 64 --batch-size 16 \
              --warmup-epochs 15 --finetune-epochs 10 --patience 4

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
