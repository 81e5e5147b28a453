# Set-up is part of every target: the first run creates the virtual environment and installs the pinned stack.
PYTHON ?= python3
VENV := .venv
OLDEST := .venv-oldest
# what `make` installs: training and tests, benchmarks, ONNX export, the CTranslate2 engine, LoRA (PEFT), the demo
# page and its browser test; the oldest stack runs the core tests
EXTRAS := dev,benchmarks,export,ctranslate2,lora,webtest
OLDEST_EXTRAS := dev,benchmarks

.PHONY: demo serve test test-oldest test-compile test-all mutation clean

demo: $(VENV)/.installed
	$(VENV)/bin/python -m recipes.demo

# the demo page on a trained model (the demo's by default): make serve [MODEL=outputs/demo]
MODEL ?= outputs/demo
serve: $(VENV)/.installed
	$(VENV)/bin/python -m recipes.serve --model $(MODEL)

# the whole suite on the newest supported transformers; saved folders are also loaded by the oldest
test: $(VENV)/.installed $(OLDEST)/.installed
	HF_VANILLA_OTHER_PYTHON=$(CURDIR)/$(OLDEST)/bin/python $(VENV)/bin/python -m pytest -q

test-oldest: $(OLDEST)/.installed $(VENV)/.installed
	HF_VANILLA_OTHER_PYTHON=$(CURDIR)/$(VENV)/bin/python $(OLDEST)/bin/python -m pytest -q -p no:cacheprovider -m "core and not slow and not compile"

# --torch_compile in every training recipe (compiling takes minutes on a CPU, so apart from the default suite)
test-compile: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m compile

test-all: $(VENV)/.installed $(OLDEST)/.installed
	HF_VANILLA_OTHER_PYTHON=$(CURDIR)/$(OLDEST)/bin/python $(VENV)/bin/python -m pytest -q -m "slow or not slow or compile"

# the mutation-testing pass over the model's code (slow: not part of `make test`); results in benchmarks/results/
mutation: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[mutation]"
	$(VENV)/bin/python benchmarks/mutation.py

# torch first and pinned: left to the resolver, `torch` alone would pull a multi-GB CUDA build.
%/.installed: pyproject.toml
	$(PYTHON) -m venv $*
	$*/bin/python -m pip install --quiet --upgrade pip
	$*/bin/python -m pip install --quiet -c $(if $(filter $(OLDEST),$*),constraints-oldest.txt,constraints.txt) torch
	$*/bin/python -m pip install --quiet -c $(if $(filter $(OLDEST),$*),constraints-oldest.txt,constraints.txt) -e ".[$(if $(filter $(OLDEST),$*),$(OLDEST_EXTRAS),$(EXTRAS))]"
	touch $@

$(VENV)/.installed: constraints.txt
$(OLDEST)/.installed: constraints-oldest.txt

clean:
	rm -rf $(VENV) $(OLDEST) mutants
