# `make demo` and `make test` are the two commands in the README; each sets up .venv first if needed.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Pretrained EfficientNet-Lite0: its ImageNet weights come with a pip package, so the demo needs no network.
DEMO_FLAGS := --backbone efficientnet_lite0 --image-size 128

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
