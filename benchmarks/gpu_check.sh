#!/usr/bin/env bash
# On a machine with CUDA GPUs: the e2e suite on Local_GPU (one training process per GPU,
# precision 16: bf16 where supported, flash attention when installed), then the training
# benchmark with packing (target: at least 1.5x the padded Trainer + peft baseline). Prints the
# environment, the suite's result and the benchmark's figures.
#
# Needs a CUDA build of torch 2.13.0 in the venv (the lock file pins the CPU wheel), e.g.
#   .venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
# and optionally flash-attn. Run: [REPEAT=3] benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export HARNESS_WORKSPACE="${HARNESS_WORKSPACE:-$(mktemp -d)/workspace}"
repeat="${REPEAT:-3}"

"$PY" - <<'EOF' || exit 1
import torch
from transformers.utils.import_utils import is_flash_attn_2_available, is_flash_attn_3_available

if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA GPU visible to torch {torch.__version__}; install a CUDA build")
names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
print(f"gpu_check: torch {torch.__version__}, {torch.cuda.device_count()} GPU(s) {sorted(names)}, "
      f"bf16 {torch.cuda.is_bf16_supported()}, flash-attn 2 {is_flash_attn_2_available()}, "
      f"3 {is_flash_attn_3_available()}")
EOF

gpu=(--compute-sku Local_GPU --instance-type Local_GPU --finetune-param precision=16)
start=$(date +%s)
"$PY" -m pytest -m e2e -q "${gpu[@]}"
suite=$?
echo "gpu_check: e2e suite exit code $suite in $(( $(date +%s) - start )) s"

"$PY" benchmarks/local_e2e.py --compute-sku Local_GPU --repeat "$repeat" \
  --finetune-param precision=16 --finetune-param packing=true
bench=$?
echo "gpu_check: suite=$suite benchmark=$bench"
[ "$suite" -eq 0 ] && [ "$bench" -eq 0 ]
