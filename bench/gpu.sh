#!/usr/bin/env bash
# One call on the GPU machine: GPU tests and every benchmark, JSON and logs into $OUT (or bench/out).
# Stage ASTRA first (README, "GPU checks"); then: bash bench/gpu.sh
# Each step has its own time limit so one hang cannot cost the others' figures.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/out}"
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:-/tmp/site}:$PWD/workflow" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
python3 - <<'PY' > "$out/env.json" 2>&1
import json, importlib
mods = {}
for m in ("numpy", "scipy", "torch", "astra", "jsonschema"):
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
# GPU tests: only the files that hold them (the workflow tests need Snakemake, absent there)
timeout -k 5 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_reconstruction.py \
  tests/test_training.py tests/test_segmentation.py tests/test_denoise.py > "$out/pytest_gpu.txt" 2>&1
echo "pytest -m gpu exit $?" >> "$out/pytest_gpu.txt"
tail -3 "$out/pytest_gpu.txt"
# STEPS="learn:300" runs only that benchmark (name:seconds)
for spec in ${STEPS:-recon:200 learn:300 align_cpu:45}; do
  name=${spec%%:*}; limit=${spec##*:}
  start=$(date +%s)
  timeout -k 5 "$limit" python3 "bench/$name.py" > "$out/$name.json" 2> "$out/$name.log"
  echo "$name exit $? in $(( $(date +%s) - start )) s"
done
cat "$out"/*.json
