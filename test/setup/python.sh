#!/usr/bin/env bash
# The references people trust, in a virtual environment of the project: torch (CPU build),
# transformers, peft, bitsandbytes, safetensors, tokenizers. Tests compare tsloth against them.
set -euo pipefail
cd "$(dirname "$0")/../.."
want="torch==2.13.0 transformers peft bitsandbytes safetensors tokenizers numpy"
stamp=.venv/.tsloth-requirements
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then echo "python venv: present"; exit 0; fi
python3 -m venv .venv
# shellcheck disable=SC2086
.venv/bin/pip install -q $want
echo "$want" > "$stamp"
