#!/usr/bin/env bash
# Two-variant artifacts on the GPU machine (device tool), issue 3: build with
# `--target tensorrt-rtx --target inductor --device cuda` there, then load on that GPU: the
# runtime must skip the TensorRT-RTX plan (compute capability 9.0 is not a TensorRT-RTX target)
# and run the AOTInductor CUDA variant; strict=True must refuse. Also asks TensorRT-RTX itself
# whether its plan is valid on this GPU, so the recorded requirements are checked against the
# library's own answer.
#
# Needs TensorRT-RTX on that machine, which has none and no internet (docs/gpu-results.md says
# how it is carried: libtensorrt_rtx.so.1 alone fills one call, so an earlier call leaves it in
# $RTX_LIB_DIR). $CARRY holds the rest: the cp312 bindings and zstandard wheels, the pure-Python
# `tensorrt_rtx` package and the parser library. Logs and JSON go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/poros-gpu-out}; mkdir -p "$OUT"
CARRY=${CARRY:-.carry/rtx2}
RTX_LIB_DIR=${RTX_LIB_DIR:-/tmp/rtxlib}
SITE=/tmp/site
test -f "$RTX_LIB_DIR/libtensorrt_rtx.so.1" || { echo "no $RTX_LIB_DIR/libtensorrt_rtx.so.1: run the first call again"; exit 3; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$CARRY"/*.whl .whl/*.whl || exit 1
cp -r "$CARRY/tensorrt_rtx" "$SITE/" && mkdir -p "$SITE/tensorrt_rtx_libs" \
    && cp "$CARRY/tensorrt_rtx_libs/"* "$RTX_LIB_DIR/libtensorrt_rtx.so.1" "$SITE/tensorrt_rtx_libs/" || exit 1
export PYTHONPATH=$SITE:$PWD:$PWD/artifact_format:$PWD/runtime_min PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c 'import torch,sys,tensorrt_rtx as t; print("torch", torch.__version__, "cuda", torch.version.cuda, "python", sys.version.split()[0], "cc", torch.cuda.get_device_capability(), "tensorrt_rtx", t.__version__)'
} 2>&1 | tee "$OUT/machine.txt"

W=/tmp/variants; rm -rf "$W"; mkdir -p "$W"
python3 - "$W" <<'EOF' || exit 1
import sys
from pathlib import Path
from tests import models
models.save_resnet(Path(sys.argv[1]) / "cnn.pt")
models.save_encoder(Path(sys.argv[1]) / "encoder.pt")
EOF
pp() { python3 -m packager.cli "$@"; }
set -x
pp build "$W/cnn.pt" -o "$W/cnn.poros" --input 1..8x3x32x32:float32 \
    --target tensorrt-rtx --target inductor --device cuda 2>&1 | tee "$OUT/build_cnn.log"
pp build "$W/encoder.pt" -o "$W/encoder.poros" --input 1..4x2..12:int64 \
    --target tensorrt-rtx --target inductor --device cuda 2>&1 | tee "$OUT/build_encoder.log"
pp inspect "$W/cnn.poros" 2>&1 | tee "$OUT/inspect_cnn.log"
pp verify "$W/cnn.poros" --device cuda 2>&1 | tee "$OUT/verify_cnn.log"
pp verify "$W/encoder.poros" --device cuda 2>&1 | tee "$OUT/verify_encoder.log"
pp verify "$W/cnn.poros" --device cuda --strict 2>&1 | tee "$OUT/verify_cnn_strict.log"; echo "strict exit ${PIPESTATUS[0]}"
set +x
python3 tools/gpu_variants_check.py "$W" --json "$OUT/variants.json" 2>&1 | tee "$OUT/check.log"
echo "check exit: ${PIPESTATUS[0]}"
