#!/usr/bin/env bash
# Every GPU measurement of issue #16 in one call, each part under its own timeout,
# each part's JSON written as it goes (a part cut short keeps what it measured).
#
#   OUT=results_dir IQT_PEER_DIR=/path/to/peers bash benchmarks/gpu_check.sh
#
# Parts, most important first (see benchmarks/README.md, "On a GPU"):
#   1. environment.json        nvidia-smi, versions
#   2. first_step.json         time to the first step of hcp_t1w_x8 at batch 32, cold then warm
#                              (a fresh persistent compilation cache, two processes)
#   3. train_step_gpu.json     the PyTorch peer on the same GPU, then the model-only and whole step
#                              (simulator included), batches 32 and 256, float32 and bfloat16
#   4. train_step_gpu_cpu_fast.json the same sweep at batch 256 with conv_impl=cpu_fast, whose
#                              matrix-product formulation may suit the GPU too
#   5. inference_gpu.json      whole-volume inference of a 512 x 512 x 28 volume x8 (JAX, the
#                              backend `launch.infer --backend auto` picks on an accelerator)
# TINY=1 runs every part at toy sizes, without the peer, on any backend (the test of this
# script on the CPU). Without IQT_PEER_DIR the peer is left out.
set -u
# JAX takes GPU memory as it needs it, leaving room for the peer's process
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
OUT=${OUT:?set OUT to a folder for the JSON files}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}
PEER_DIR=${IQT_PEER_DIR:-}
if [ "${TINY:-0}" = 1 ]; then
  CONFIG=demo:tiny; BATCH=2; BATCHES=2; STEPS="--warmup 1 --steps 1"
  MODEL="--levels 3 --base-features 4 --lf-patch 16,16,2 --factor 2"
  INFER="--shapes 64x64x8 --tile 48x48x8 --levels 3 --base_features 4 --factor 2"
  T_FIRST=300; T_SWEEP=300; T_ALT=200; T_INFER=200
else
  CONFIG=hcp_t1w_x8; BATCH=32; BATCHES=32,256; STEPS="--warmup 3 --steps 10"; MODEL=""
  INFER="--shapes 512x512x28"
  T_FIRST=120; T_SWEEP=240; T_ALT=45; T_INFER=60   # with the environment's 30 s: 8 min 15 s at most
fi

part() {   # part NAME TIMEOUT_S COMMAND...: runs it, records its exit status beside its JSON
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr"
  local rc=$?
  echo "{\"part\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - start)), \"timeout_s\": $limit}" \
    > "$OUT/$name.status.json"
  echo "$name: exit $rc after $((SECONDS - start)) s" >&2
}

part environment 30 $PY -c "
import importlib.metadata as md, json, subprocess, jax
from iqt.export.backends import candidates
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
smi = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'],
                     capture_output=True, text=True) if __import__('shutil').which('nvidia-smi') else None
print(json.dumps({'jax': jax.__version__, 'backend': jax.default_backend(),
                  'devices': [d.device_kind for d in jax.devices()],
                  'launch_infer_auto_backends': candidates('auto'),
                  'versions': {m: version(m) for m in ('jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'torch')},
                  'nvidia_smi': smi.stdout.strip() if smi else None}))"
cp "$OUT/environment.stdout" "$OUT/environment.json"
part first_step "$T_FIRST" $PY benchmarks/first_step.py --config "$CONFIG" --batch "$BATCH" \
  --out "$OUT/first_step.json"
PEER=(); [ -n "$PEER_DIR" ] && [ "${TINY:-0}" != 1 ] && PEER=(--peer torch --peer_dir "$PEER_DIR")
part train_step_gpu "$T_SWEEP" $PY benchmarks/train_step.py $MODEL $STEPS --config "$CONFIG" \
  --batches "$BATCHES" --compute-dtypes float32,bfloat16 --whole-step "${PEER[@]}" \
  --conv-impl xla --out "$OUT/train_step_gpu.json"
part train_step_gpu_cpu_fast "$T_ALT" $PY benchmarks/train_step.py $MODEL $STEPS --config "$CONFIG" \
  --batches "${BATCHES##*,}" --compute-dtypes bfloat16 --conv-impl cpu_fast \
  --out "$OUT/train_step_gpu_cpu_fast.json"
part inference_gpu "$T_INFER" $PY benchmarks/inference.py $INFER --skip_keras --repeats 3 \
  --out "$OUT/inference_gpu.json"
echo "done: $(ls "$OUT")" >&2
