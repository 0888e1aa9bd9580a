# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when missing and
# install with constraints.txt, which pins torch to the CPU build (an unpinned torch pulls a CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := runs/demo
MITDB_DATA ?= ../shared/data/mitdb
MITDB := runs/mitdb

.PHONY: install demo mitdb test test-slow test-all fuzz check-wheel lint docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,export,dev,openvino,scale,lsl]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgemed train --model cnn_gru --data synthetic-ecg --samples 1000 --leads 2 \
		--epochs 12 -c causal=true --out $(DEMO)/train --overwrite
	$(BIN)/edgemed export $(DEMO)/train/model.pt -o $(DEMO)/model.onnx --force
	$(BIN)/edgemed export $(DEMO)/train/model.pt --streaming -o $(DEMO)/model.stream.onnx --force
	$(BIN)/edgemed info $(DEMO)/model.onnx
	$(BIN)/python scripts/demo_compare.py $(DEMO)/train/model.pt $(DEMO)/model.onnx $(DEMO)/heldout.npz
	$(BIN)/edgemed run $(DEMO)/model.onnx $(DEMO)/heldout.npz --out $(DEMO)/predictions.csv --force
	$(BIN)/edgemed quantize $(DEMO)/model.onnx --mode static -o $(DEMO)/model.int8.onnx --json $(DEMO)/quantization.json --force
	$(BIN)/edgemed run $(DEMO)/model.int8.onnx $(DEMO)/heldout.npz
	$(BIN)/edgemed profile $(DEMO)/model.onnx --device host --compare $(DEMO)/model.int8.onnx \
		--torch $(DEMO)/train/model.pt --runs 200 --json $(DEMO)/profile.json --plot $(DEMO)/latency.png --force
	$(BIN)/edgemed tune $(DEMO)/model.onnx --device host --out $(DEMO)/tuned --cache $(DEMO)/tune-cache \
		--threads 1 --runs 20 --force
	$(BIN)/edgemed bundle $(DEMO)/model.onnx $(DEMO)/model.int8.onnx --device host -o $(DEMO)/bundle --force
	$(BIN)/edgemed verify-bundle $(DEMO)/bundle --run
	cd benchmarks && ../$(BIN)/python peers.py --quick --runs 20
	$(BIN)/python scripts/demo_report.py $(DEMO)
	$(BIN)/edgemed train --model beat_cnn --data synthetic-beats --samples 30 --epochs 3 --out $(DEMO)/beats \
		--overwrite
	$(BIN)/edgemed export $(DEMO)/beats/model.pt -o $(DEMO)/beats.onnx --force
	$(BIN)/python scripts/demo_recording.py $(DEMO)/bedside.npy --seconds 240 --rate 180
	$(BIN)/edgemed monitor $(DEMO)/beats.onnx $(DEMO)/bedside.npy --sampling-rate 180 --speed 0 \
		--report $(DEMO)/monitor.html --jsonl $(DEMO)/monitor.jsonl --fhir $(DEMO)/fhir --force

# The recommended beat classifier on MIT-BIH DS1 (2.5 min measured on 2 cores): train, export, int8, evaluate.
mitdb: $(STAMP)
	$(BIN)/edgemed train --recipe mitdb --data $(MITDB_DATA) --out $(MITDB)/train --overwrite
	$(BIN)/edgemed export $(MITDB)/train/model.pt -o $(MITDB)/model.onnx --force
	$(BIN)/edgemed quantize $(MITDB)/model.onnx --mode static -o $(MITDB)/model.int8.onnx \
		--json $(MITDB)/quantization.json --force
	$(BIN)/edgemed evaluate $(MITDB)/model.onnx $(MITDB_DATA) --out $(MITDB)/eval --force -q
	$(BIN)/edgemed evaluate $(MITDB)/model.int8.onnx $(MITDB_DATA) --beats detect --out $(MITDB)/eval-int8 --force -q

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

fuzz: $(STAMP)
	EDGEMED_FUZZ=long $(BIN)/python -m pytest -q tests/test_fuzz.py

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m 'slow or not slow'

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict -q -d build/site

clean:
	rm -rf $(VENV) build dist *.egg-info runs/demo runs/mitdb .pytest_cache

check-wheel: $(STAMP)
	bash scripts/check_runtime_wheel.sh
