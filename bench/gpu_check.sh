#!/usr/bin/env bash
# The GPU path in one command, each step timed: the README's main command on a small schedule (as a user
# runs it: the scripts choose the backend, JAX and the fast trainer on a GPU), the fast trainer's variants
# on the authors' network, and the same network and step in PyTorch.
#
#   bash bench/gpu_check.sh CIFAR10_DATA [OUT]         # on a GPU (default OUT: bench/results/gpu_check)
#   GPU_CHECK_SIZE=tiny bash bench/gpu_check.sh ...    # the same steps at tiny sizes: a CPU rehearsal
#
# CIFAR10_DATA: what --data-path takes (the JPEG zip, or a folder). Also read from the environment:
# GPU_CHECK_STEPS (default quick,variants,torch), GPU_CHECK_VARIANTS and GPU_CHECK_VARIANT_TIMEOUT
# (bench/fast_variants.py's --variants and --timeout), GPU_CHECK_TORCH_VARIANTS (bench/torch_reference.py's),
# GPU_CHECK_SKIP_FID=1 (the quick run stops before FID: no Inception weights needed), PYTHON (python3).
# KERAS_BACKEND is left as it is. A step that fails is recorded in OUT/timings.tsv and the next one runs;
# the exit code is the number of steps that failed.
set -u
DATA=${1:?usage: bash bench/gpu_check.sh CIFAR10_DATA [OUT]}
OUT=${2:-bench/results/gpu_check}
PYTHON=${PYTHON:-python3}
STEPS=${GPU_CHECK_STEPS:-quick,variants,torch}
mkdir -p "$OUT"
case $DATA in /*) ;; *) [ -e "$DATA" ] && DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA") ;; esac
OUT=$(cd "$OUT" && pwd)  # both as given from here, before moving to the repository's root
cd "$(dirname "$0")/.."
rm -rf "$OUT/quick_run"  # a fresh run each time: a kept one would be resumed or skipped
export PYTHONUNBUFFERED=1

if [ "${GPU_CHECK_SIZE:-full}" = tiny ]; then
    QUICK_SIZE=(--epochs 1 --stage2-epochs 2 --num-samples 128)
    VARIANT_SIZE=(--images 200 --epochs 1 --matmul-size 256)
    TORCH_SIZE=(--images 200 --epochs 1 --variants "${GPU_CHECK_TORCH_VARIANTS:-eager,compile}")
else
    QUICK_SIZE=()
    VARIANT_SIZE=(--images 5000 --epochs 2 --matmul-size 8192)
    TORCH_SIZE=(--images 5000 --epochs 2 --variants "${GPU_CHECK_TORCH_VARIANTS:-eager,compile,compile_bf16,compile_graphs}")
fi
VARIANTS=(${GPU_CHECK_VARIANTS:+--variants "$GPU_CHECK_VARIANTS"}
    ${GPU_CHECK_VARIANT_TIMEOUT:+--timeout "$GPU_CHECK_VARIANT_TIMEOUT"})
FID=()
[ "${GPU_CHECK_SKIP_FID:-0}" = 1 ] && FID=(--skip-fid)

failed=0
step() {  # step NAME COMMAND...: run, log to OUT/NAME.log, time into OUT/timings.tsv
    local name=$1 started code
    shift
    case ",$STEPS," in *",$name,"* | *",${name%%_*},"*) ;; *) return ;; esac  # torch_check: torch's too
    echo "== $name: $*"
    started=$(date +%s%N)
    "$@" 2>&1 | tee "$OUT/$name.log"
    code=${PIPESTATUS[0]}
    local ms=$((($(date +%s%N) - started) / 1000000))
    printf '%s\t%d.%d\t%s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) "$code" | tee -a "$OUT/timings.tsv"
    [ "$code" = 0 ] || failed=$((failed + 1))
}

printf 'step\tseconds\texit\n' >"$OUT/timings.tsv"
"$PYTHON" -c "from vaevar import backend; backend.choose(); print(backend.runtime_line('auto'))" 2>&1 | tee "$OUT/device.txt"
step quick "$PYTHON" reproduce.py --dataset cifar10 --data-path "$DATA" --quick --run-dir "$OUT/quick_run" \
    ${QUICK_SIZE[@]+"${QUICK_SIZE[@]}"} ${FID[@]+"${FID[@]}"}
step variants "$PYTHON" -m bench.fast_variants ${VARIANT_SIZE[@]+"${VARIANT_SIZE[@]}"} ${VARIANTS[@]+"${VARIANTS[@]}"} --output "$OUT/fast_variants.json"
# the same loss on the same weights as the Keras model, on the CPU; then the timings on the device
step torch_check env JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES= "$PYTHON" -m bench.torch_reference --check
step torch "$PYTHON" -m bench.torch_reference ${TORCH_SIZE[@]+"${TORCH_SIZE[@]}"} --output "$OUT/torch_reference.json"
exit "$failed"
