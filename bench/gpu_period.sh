#!/usr/bin/env bash
# One period on a rented GPU for the paper's CIFAR-10 run, its minutes in the order they are worth most:
#   1. the PyTorch reference's timing (at most TORCH_SECONDS, 60);
#   2. first period only: bench/profile_step.py, the exact fast-trainer variants and 1 and 2 trainings at
#      once (at most DIAGNOSE_SECONDS, 180, split among them);
#   3. the paper's run (reproduce.py) in STATE_DIR, resumed from whatever state it holds, under the time
#      that is left, with RESERVE_SECONDS kept for the state's manifest and parts.
#
#   bash bench/gpu_period.sh CIFAR10_DATA STATE_DIR [OUT]        # default OUT: bench/results/gpu_period
#   GPU_PERIOD_SIZE=tiny bash bench/gpu_period.sh ...           # the same steps at tiny sizes: a CPU rehearsal
#
# STATE_DIR is the run folder carried from one period to the next. Before resuming, its manifest
# (STATE_DIR/manifest.sha256, every file's SHA-256, written at the end of each period) must match: a damaged
# copy stops the script (exit 3) before it trains. GPU_PERIOD_PARTS=DIR starts from a state brought as parts
# (DIR/state.tar.part*, checked against DIR/state.sha256) instead. GPU_PERIOD_PART_BYTES=N also writes the
# state at the end as parts of at most N bytes in OUT/parts/, for copying tools with a file-size limit.
# Also read from the environment: GPU_PERIOD_SECONDS (the whole period, default 540), GPU_PERIOD_DIAGNOSE
# (1 or 0; default 1 when STATE_DIR holds no run yet), GPU_PERIOD_RUN_ARGS (more reproduce.py flags, e.g.
# "--skip-fid"), TORCH_SECONDS, DIAGNOSE_SECONDS, RESERVE_SECONDS, PYTHON (python3). Each step's log and
# time go to OUT; the run's budget stop (exit 75) is not a failure; the exit code counts failed steps.
set -u
DATA=${1:?usage: bash bench/gpu_period.sh CIFAR10_DATA STATE_DIR [OUT]}
STATE=${2:?usage: bash bench/gpu_period.sh CIFAR10_DATA STATE_DIR [OUT]}
OUT=${3:-bench/results/gpu_period}
PYTHON=${PYTHON:-python3}
PERIOD=${GPU_PERIOD_SECONDS:-540}
TORCH_SECONDS=${TORCH_SECONDS:-60}
DIAGNOSE_SECONDS=${DIAGNOSE_SECONDS:-180}
RESERVE_SECONDS=${RESERVE_SECONDS:-30}
started=$(date +%s)
mkdir -p "$OUT" "$STATE"
absolute() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
OUT=$(absolute "$OUT") STATE=$(absolute "$STATE")
[ -e "$DATA" ] && DATA=$(absolute "$DATA")
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
left() { echo $((PERIOD - ($(date +%s) - started))); }
die() { echo "error: $1" >&2; exit "${2:-2}"; }

if [ "${GPU_PERIOD_SIZE:-full}" = tiny ]; then
    TORCH_SIZE=(--images 200 --epochs 1 --variants eager)
    PROFILE_SIZE=(--dataset mnist --base-filters 4 --images 200 --matmul-size 256)
    VARIANT_SIZE=(--images 200 --epochs 1 --matmul-size 256 --stages stage2)
    CONCURRENT_SIZE=(--images 200 --epochs 1 --stage stage2)
    RUN_SIZE=(--quick --epochs 1 --stage2-epochs 2 --num-samples 128)
else
    TORCH_SIZE=(--images 5000 --epochs 1 --variants compile)
    PROFILE_SIZE=(--images 2000 --matmul-size 8192)
    VARIANT_SIZE=(--images 2000 --epochs 1 --matmul-size 1024 --stages stage1)  # the ratios, not the matmul
    CONCURRENT_SIZE=(--images 2000 --epochs 1 --stage stage1)
    RUN_SIZE=(--stage2-keep-models-at 140,350,700)  # the final 1400 too: the stage's own model
fi

# ---- the state in: parts joined, the manifest checked
if [ -n "${GPU_PERIOD_PARTS:-}" ]; then
    [ -z "$(ls -A "$STATE")" ] || die "$STATE is not empty: give an empty folder to join the parts into" 3
    (cd "$GPU_PERIOD_PARTS" && sha256sum --check --quiet state.sha256) ||
        die "the parts in $GPU_PERIOD_PARTS do not match their state.sha256: copy them again" 3
    # the parts state.sha256 lists, in its order (a stray extra part is not joined)
    (cd "$GPU_PERIOD_PARTS" && cut -c67- state.sha256 | tr '\n' '\0' | xargs -0 cat) | tar -x -C "$STATE" ||
        die "cannot unpack the parts into $STATE" 3
fi
if [ -f "$STATE/manifest.sha256" ]; then
    (cd "$STATE" && sha256sum --check --quiet manifest.sha256) ||
        die "$STATE does not match its manifest.sha256 (a damaged or partial copy): bring the state again" 3
    echo "state: $STATE matches its manifest ($(sha256sum "$STATE/manifest.sha256" | cut -c1-16))"
elif [ -n "$(ls -A "$STATE")" ]; then
    echo "state: $STATE has no manifest.sha256: resuming it unchecked"
fi
DIAGNOSE=${GPU_PERIOD_DIAGNOSE:-$([ -z "$(ls -A "$STATE")" ] && echo 1 || echo 0)}

failed=0
printf 'step\tseconds\texit\n' >"$OUT/timings.tsv"
step() {  # step NAME LIMIT COMMAND...: run under a time limit, log to OUT/NAME.log, time into OUT/timings.tsv
    local name=$1 limit=$2 begin code
    shift 2
    if [ "$limit" -le 0 ]; then
        printf '%s\t0\tno time left\n' "$name" | tee -a "$OUT/timings.tsv"
        return
    fi
    echo "== $name (at most $limit s): $*"
    begin=$(date +%s%N)
    timeout -s TERM -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    code=${PIPESTATUS[0]}
    local ms=$((($(date +%s%N) - begin) / 1000000))
    printf '%s\t%d.%d\t%s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) "$code" | tee -a "$OUT/timings.tsv"
    [ "$code" = 0 ] || [ "$code" = 75 ] || failed=$((failed + 1))
}
"$PYTHON" -c "from vaevar import backend; backend.choose(); print(backend.runtime_line('auto'))" 2>&1 | tee "$OUT/device.txt"

step torch "$TORCH_SECONDS" "$PYTHON" -m bench.torch_reference "${TORCH_SIZE[@]}" --output "$OUT/torch_reference.json"
if [ "$DIAGNOSE" = 1 ]; then
    # a quarter to the profile, half to the four variants, a quarter to 1 and 2 trainings at once
    quarter=$((DIAGNOSE_SECONDS / 4))
    step profile "$quarter" "$PYTHON" -m bench.profile_step "${PROFILE_SIZE[@]}" --trace-dir "$OUT/trace" \
        --output "$OUT/profile_step.json"
    step variants $((2 * quarter)) "$PYTHON" -m bench.fast_variants "${VARIANT_SIZE[@]}" --timeout $((quarter / 2)) \
        --variants default,keras_transposed_conv,explicit_pad,one_pass_bn --output "$OUT/fast_variants.json"
    step concurrent "$quarter" "$PYTHON" -m bench.concurrent_runs "${CONCURRENT_SIZE[@]}" --counts 1,2 \
        --timeout $((quarter / 2)) --output "$OUT/concurrent_runs.json"
fi
budget=$(($(left) - RESERVE_SECONDS))
# the run stops itself at its budget; the hard limit (and timeout's 10 s more) still ends within the reserve
# word splitting of GPU_PERIOD_RUN_ARGS is meant: flags
# shellcheck disable=SC2086
step run $((budget + RESERVE_SECONDS / 3)) "$PYTHON" reproduce.py --dataset cifar10 --data-path "$DATA" --run-dir "$STATE" \
    --time-budget "$((budget > 1 ? budget : 1))" ${RUN_SIZE[@]+"${RUN_SIZE[@]}"} ${GPU_PERIOD_RUN_ARGS:-}

# ---- the state out: a new manifest, where the run stands, parts for the trip
(cd "$STATE" && find . -type f ! -name manifest.sha256 -print0 | sort -z | xargs -0 -r sha256sum >manifest.sha256)
{
    echo "run exit $(awk -F'\t' '$1 == "run" {print $3}' "$OUT/timings.tsv") (75: stopped at its budget, resumable)"
    echo "manifest sha256 $(sha256sum "$STATE/manifest.sha256" | cut -d' ' -f1)"
    for stage in stage1 stage2; do
        log=$STATE/$stage/log.csv
        [ -f "$log" ] && echo "$stage epochs $(($(wc -l <"$log") - 1))"
    done
} | tee "$OUT/state.txt"
if [ "${GPU_PERIOD_PART_BYTES:-0}" -gt 0 ]; then
    rm -rf "$OUT/parts" && mkdir -p "$OUT/parts"
    tar -c -C "$STATE" . | split -b "$GPU_PERIOD_PART_BYTES" -d -a 3 - "$OUT/parts/state.tar.part"
    if [ "${PIPESTATUS[0]}${PIPESTATUS[1]}" = 00 ]; then
        (cd "$OUT/parts" && sha256sum state.tar.part* >state.sha256)
        echo "parts: $(ls "$OUT/parts" | grep -c part) in $OUT/parts"
    else
        rm -rf "$OUT/parts"
        echo "error: the state could not be cut into parts of $GPU_PERIOD_PART_BYTES bytes: give larger parts" >&2
        failed=$((failed + 1))
    fi
fi
exit "$failed"
