# Two entry points: `make demo` and `make test`. Both create or update .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch that lies on the CI/dev machines' disk; any torch >=2.11,<2.15 works.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean zoo

venv: $(STAMP)

$(STAMP): pyproject.toml artifact_format/pyproject.toml runtime_min/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ./artifact_format -e ./runtime_min -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/make_resnet.py --output out/resnet_small.pt
	$(BIN)/poros-pack build out/resnet_small.pt -o out/resnet_small.poros --input 1..8x3x64x64:float32
	$(BIN)/poros-pack inspect out/resnet_small.poros
	$(BIN)/python examples/run_artifact.py out/resnet_small.poros --reference out/resnet_small.pt

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# The model zoo (benchmarks/zoo.py) needs torchvision, which pins one torch: its own venv.
ZOO_VENV := .venv-zoo
ZOO_STAMP := $(ZOO_VENV)/.installed
ZOO_TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
ZOO_ARGS ?= --jobs 1 --out out/zoo/zoo-cpu.json

$(ZOO_STAMP): pyproject.toml artifact_format/pyproject.toml runtime_min/pyproject.toml
	test -x $(ZOO_VENV)/bin/python || $(PYTHON) -m venv $(ZOO_VENV)
	$(ZOO_VENV)/bin/python -m pip install -q --disable-pip-version-check $(ZOO_TORCH_SPEC)
	$(ZOO_VENV)/bin/python -m pip install -q --disable-pip-version-check transformers timm onnx onnxscript \
		-e ./artifact_format -e ./runtime_min -e .
	touch $(ZOO_STAMP)

# make zoo ZOO_ARGS="--filter resnet18 --forms trace"; the table goes to stdout, JSON to out/zoo/.
zoo: $(ZOO_STAMP)
	$(ZOO_VENV)/bin/python benchmarks/zoo.py $(ZOO_ARGS)

clean:
	rm -rf $(VENV) $(ZOO_VENV) out
