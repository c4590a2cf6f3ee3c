#!/usr/bin/env bash
# One call on the GPU machine: GPU tests and every benchmark, JSON into $OUT (or bench/out).
# Stage ASTRA first (README, "GPU checks"); then: bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/out}"
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:-/tmp/site}:$PWD/workflow"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1
python - <<'PY' > "$out/env.json" 2>&1
import json, importlib
mods = {}
for m in ("numpy", "scipy", "torch", "astra"):
    try:
        mods[m] = getattr(importlib.import_module(m), "__version__", "?")
    except Exception as exc:  # report, don't stop: the benchmarks below say what they need
        mods[m] = f"missing: {exc}"
try:
    import astra
    mods["astra_cuda"] = bool(astra.use_cuda())
except Exception:
    mods["astra_cuda"] = False
print(json.dumps(mods))
PY
python -m pytest -q -m gpu tests > "$out/pytest_gpu.txt" 2>&1
echo "pytest -m gpu exit $?" >> "$out/pytest_gpu.txt"
for b in bench/*.py; do
  name=$(basename "$b" .py)
  timeout 300 python "$b" > "$out/$name.json" 2> "$out/$name.log"
done
cat "$out"/*.json
