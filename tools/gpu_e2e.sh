#!/usr/bin/env bash
# Runs the test suite on the GPU machine (device tool): everything, plus the end-to-end model
# tests and the CUDA-graph tests with --device cuda (AOTInductor CUDA engines). Needs the zstandard cp312 wheel carried in
# .whl/ (see docs/gpu-results.md). Logs and a JSON summary go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/poros-gpu-out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD:$PWD/artifact_format:$PWD/runtime_min PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; python3 -c 'import torch,sys; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", sys.version.split()[0], "cc", torch.cuda.get_device_capability())'; } | tee "$OUT/machine.txt"
POROS_TEST_DEVICE=cuda timeout 300 python3 -m pytest -q -n 14 --dist loadgroup -p no:cacheprovider \
    tests/test_end_to_end.py tests/test_cuda_graphs.py \
    --junitxml="$OUT/cuda_e2e.xml" 2>&1 | tee "$OUT/cuda_e2e.log" | tail -15
echo "cuda end-to-end exit: ${PIPESTATUS[0]}"
timeout 250 python3 -m pytest -q -n 14 -p no:cacheprovider --ignore=tests/test_end_to_end.py \
    --ignore=tests/test_cuda_graphs.py \
    --junitxml="$OUT/cpu_suite.xml" 2>&1 | tee "$OUT/cpu_suite.log" | tail -8
echo "rest of the suite (torch 2.11) exit: ${PIPESTATUS[0]}"
