#!/usr/bin/env bash
# On the GPU machine, in the benchmark command: the GPU tutorial (notebooks/qlora-finetune.ipynb)
# on a random-init Llama checkpoint laid out as the Hugging Face hub cache lays it.
# Needs Node (.device), dist/, and the library at TSLOTH_CUDA_LIB.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=$(mktemp -d)
python3 test/py/make_cached_checkpoint.py "$cache" tsloth-bench/random-llama-90m
HF_HUB_CACHE="$cache" TSLOTH_QLORA_MODEL=tsloth-bench/random-llama-90m \
  node --test dist/test/notebooks/qlora-finetune.test.js
