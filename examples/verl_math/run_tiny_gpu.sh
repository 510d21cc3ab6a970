#!/usr/bin/env bash
# One real GRPO step end to end on one GPU with a tiny model built on the spot (random weights, a
# tokenizer trained here; no hub download): agl-server, the runners' math agent, the LLM proxy in
# front of verl's vLLM server, verl's FSDP actor update. Output goes to $OUT (default ./tiny-run).
#
#   bash examples/verl_math/run_tiny_gpu.sh            # from the repository root, on a CUDA machine
#
# Needs: Python 3.11/3.12, a CUDA GPU with ~8 GB free, and the `verl` + `vllm` extras (installed
# below from the package index, or from a wheelhouse: PIP_FIND_LINKS=/path/to/wheels PIP_NO_INDEX=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/tiny-run}
mkdir -p "$OUT"
PY=${PY:-python3}

if [ ! -x .venv-gpu/bin/python ]; then
  "$PY" -m venv .venv-gpu
  .venv-gpu/bin/pip install --quiet --upgrade pip
fi
.venv-gpu/bin/pip install --quiet -e '.[verl,vllm]'
.venv-gpu/bin/python - <<'PY' | tee "$OUT/versions.txt"
import torch, verl, vllm, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0))
print("verl", verl.__version__, "vllm", vllm.__version__, "transformers", transformers.__version__)
PY

.venv-gpu/bin/python examples/verl_math/tiny_model.py "$OUT/tiny-qwen2" | tee "$OUT/model.txt"

# One step (tiny.yaml: 4 tasks x n=2 rollouts, short lengths, no validation); one runner process, 8 agents.
.venv-gpu/bin/python examples/verl_math/train.py \
  --model "$OUT/tiny-qwen2" --gpus 1 --runners 1 --workers 8 --steps 1 --train-size 8 --val-size 4 \
  --config examples/verl_math/config.yaml --config examples/verl_math/tiny.yaml \
  2>&1 | tee "$OUT/train.log"

# What a successful step shows in the log: verl's console logger prints the step's metrics.
grep -E "agl/rollouts_used|agl/samples|actor/pg_loss|timing_s/gen|timing_s/update_actor" "$OUT/train.log" | tail -20
