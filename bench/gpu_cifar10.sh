#!/usr/bin/env bash
# The CIFAR-10 run on one GPU machine (JAX backend, no TensorFlow), in three commands sized for a short
# device lease. The machine stays warm between them, so .device_runs/ (run, data, packages) carries over.
#
#   bash bench/gpu_cifar10.sh train BUDGET_S   # bench fast vs fit, then both stages, epochs planned from the bench
#                                              # (SKIP_BENCH=1: from the rates measured on an H100 before)
#   bash bench/gpu_cifar10.sh generate         # test images; samples (+ ex-post samplers)
#   bash bench/gpu_cifar10.sh fid              # FID against both references, then the variance analysis
#   bash bench/gpu_cifar10.sh gen2_whole       # (optional) GEN-2 renormalized with one scale for the whole set
#
# Inputs (ignored paths, carried; at most 64 MiB per command): train: .whl/ (keras, namex, optree) and
# .device_data/cifar10_train.zip; generate: .device_data/cifar10_test.zip (the shared JPEG quality-75 copy,
# split in two) and .device_data/inception_part1; fid: .device_data/inception_part2 (the converted float32
# FID weights, split in two: float16 weights moved FID by 0.06, bench/results/float16_weights.json).
# Everything small comes back in $OUT. SMOKE=1 runs the same steps on a CPU with a few hundred images
# (PY: the Python to use).
set -u
PHASE=$1
BUDGET=${2:-460}
OUT=${OUT:-/tmp/vaevar_out}
PY=${PY:-python3}
RUN=.device_runs/cifar10
DATA=.device_runs/data/cifar10
SITE=$PWD/.device_runs/site
WEIGHTS=.device_runs/inception_2015_12_05_fid.weights.h5
WEIGHTS_SHA256=7b440e10be885b75c6822e8901f7d3cbbf522cc329a63fcb632ef18b69635c5b
SMOKE=${SMOKE:-0}
START=$(date +%s)
mkdir -p "$OUT" "$DATA"
elapsed() { echo $(( $(date +%s) - START )); }
stamp() { echo "$1 $(elapsed)" | tee -a "$OUT/timings_$PHASE.txt"; }
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax
if [ "$SMOKE" = 0 ]; then
    if [ "$PHASE" = train ]; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
    fi
    export PYTHONPATH=$SITE
    SMALL_NETWORK=()
    LIMIT=()
    BENCH=(--images 10000 --epochs 2 --matmul-size 8192)
    SAMPLES=()
    SAMPLERS=gauss,gen2_perdim,gmm10
else
    SMALL_NETWORK=(--base-filters 8)
    LIMIT=(--limit 300)
    BENCH=(--images 200 --epochs 1 --matmul-size 256)
    SAMPLES=(--num-samples 200)
    SAMPLERS=gauss,gen2_perdim  # a mixture needs more codes than the smoke run encodes
fi
COMMON=(--dataset cifar10 --data-path "$DATA" --run-dir "$RUN" --seed 0)
FID=(--frechet-method eig --batch-size 500 --inception-weights "$WEIGHTS")

extract() {  # a carried zip into the data folder (the machine has no unzip)
    $PY -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$1" "$DATA" && stamp unzip
}

finish_at_checkpoint() {  # a stage cut by its timeout: end it at its last checkpoint (saves the final model)
    local stage=$1 script=$2; shift 2
    local done
    done=$($PY -c "import json; print(json.load(open('$RUN/$stage/checkpoint.json'))['epoch'])" 2>/dev/null) || return 1
    echo "$stage cut by its timeout: ending at its checkpoint, epoch $done" | tee -a "$OUT/timings_$PHASE.txt"
    $PY "$script" "${COMMON[@]}" "$@" --epochs "$done" --verbose 0
}

if [ "$PHASE" = train ]; then
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $PY -c "import jax, keras; print(jax.__version__, keras.__version__, jax.devices())"; } > "$OUT/device.txt" 2>&1
    extract .device_data/cifar10_train.zip
    if [ "${SKIP_BENCH:-0}" = 0 ]; then  # SKIP_BENCH=1: plan from the H100 rates measured before (below)
        timeout -s TERM 200 $PY -m bench.bench_fast_trainer "${BENCH[@]}" --output "$OUT/fast_trainer.json" > "$OUT/bench.log" 2>&1
        stamp bench
    fi
    # Epochs from the measured rates: stage 2 gets at most a third of the training time (1400 epochs at most),
    # each stage ~30 s of loading, compiling and saving (26 s and 30 s on the H100; 45 s kept for each, the rest
    # for the hashes and tar), learning-rate halvings scaled from 250 / 700 and 400 / 1400.
    read -r E1 H1 E2 H2 S2 <<< "$($PY - "$OUT/fast_trainer.json" $(( BUDGET - $(elapsed) )) "$SMOKE" <<'EOF'
import json, sys
try:
    bench = json.load(open(sys.argv[1]))
except Exception:
    bench = {}
# without a bench: the real-data rates of results/cifar10_gpu (H100, TF32), a little lower for safety
rate1 = bench.get("stage1", {}).get("fast_per_second", 21000.0)
rate2 = bench.get("stage2", {}).get("fast_per_second", 150000.0)
left, smoke = float(sys.argv[2]), sys.argv[3] == "1"
if smoke:
    print(3, 2, 4, 2, 60)
    raise SystemExit
train = max(60.0, left - 2 * 45 - 15)
stage2 = min(1400 * 50000 / rate2, train / 3)
e2 = max(10, int(stage2 * rate2 / 50000))
e1 = max(10, min(700, int((train - e2 * 50000 / rate2) * rate1 / 50000)))
print(e1, max(1, round(e1 * 250 / 700)), e2, max(1, round(e2 * 400 / 1400)), int(e2 * 50000 / rate2) + 45)
EOF
)"
    echo "plan: stage 1 $E1 epochs (halve every $H1), stage 2 $E2 epochs (halve every $H2)" | tee "$OUT/plan.txt"
    left=$(( BUDGET - $(elapsed) ))
    timeout -s TERM $(( left - S2 )) $PY train_first_stage.py "${COMMON[@]}" "${LIMIT[@]}" "${SMALL_NETWORK[@]}" --epochs "$E1" \
        --halve-every "$H1" --trainer fast --checkpoint-every 25 --verbose 0 > "$OUT/stage1.log" 2>&1 \
        || finish_at_checkpoint stage1 train_first_stage.py "${LIMIT[@]}" "${SMALL_NETWORK[@]}" --halve-every "$H1" --trainer fast >> "$OUT/stage1.log" 2>&1
    stamp stage1
    left=$(( BUDGET - $(elapsed) ))
    timeout -s TERM $(( left > 40 ? left - 15 : 25 )) $PY train_second_stage.py "${COMMON[@]}" "${LIMIT[@]}" --epochs "$E2" \
        --halve-every "$H2" --trainer fast --checkpoint-every 100 --verbose 0 > "$OUT/stage2.log" 2>&1 \
        || finish_at_checkpoint stage2 train_second_stage.py "${LIMIT[@]}" --halve-every "$H2" --trainer fast >> "$OUT/stage2.log" 2>&1
    stamp stage2
    sha256sum "$RUN"/stage1/first_stage.keras "$RUN"/stage2/second_stage.keras >> "$OUT/plan.txt" 2>&1
    tar czf "$OUT/train_results.tar.gz" "$RUN"/stage1/log.csv "$RUN"/stage1/config.json "$RUN"/stage2/log.csv \
        "$RUN"/stage2/config.json "$RUN"/stage2/latent_stats.json 2>/dev/null
    stamp done
elif [ "$PHASE" = generate ]; then
    extract .device_data/cifar10_test.zip
    $PY generate.py "${COMMON[@]}" "${SAMPLES[@]}" --samplers "$SAMPLERS" > "$OUT/generate.log" 2>&1
    stamp generate
    tar czf "$OUT/generate_results.tar.gz" "$RUN"/samples/*.png "$RUN"/samples/summary.json 2>/dev/null
    stamp done
elif [ "$PHASE" = fid ]; then
    cat .device_data/inception_part1 .device_data/inception_part2 > "$WEIGHTS" && stamp weights
    echo "$WEIGHTS_SHA256  $WEIGHTS" | sha256sum -c - || exit 1
    $PY compute_fid.py --dataset cifar10 --data-path "$DATA" --run-dir "$RUN" "${SAMPLES[@]}" "${FID[@]}" \
        > "$OUT/fid.log" 2>&1
    stamp fid
    tar czf "$OUT/fid_results.tar.gz" "$RUN"/fid.json "$RUN"/fid_table.md 2>/dev/null  # kept if the analysis is cut
    $PY variance_loss.py --run-dirs "$RUN" --data-path "$DATA" "${SAMPLES[@]}" > "$OUT/analysis.log" 2>&1
    stamp analysis
    tar czf "$OUT/fid_results.tar.gz" "$RUN"/fid.json "$RUN"/fid_table.md "$RUN"/analysis 2>/dev/null
    stamp done
elif [ "$PHASE" = gen2_whole ]; then  # after fid: GEN-2 rescaled with one scale for the whole set, scored once
    WHOLE=.device_runs/cifar10_gen2_whole
    mkdir -p "$WHOLE" && cp -r "$RUN/stage1" "$RUN/stage2" "$WHOLE/"
    $PY generate.py --dataset cifar10 --data-path "$DATA" --run-dir "$WHOLE" --seed 0 "${SAMPLES[@]}" \
        --gen2-rescale whole > "$OUT/gen2_whole.log" 2>&1
    stamp generate
    $PY compute_fid.py --dataset cifar10 --data-path "$DATA" --run-dir "$WHOLE" "${SAMPLES[@]}" "${FID[@]}" --no-train-reference \
        --samples "$WHOLE/samples/gen2_renorm.npz" >> "$OUT/gen2_whole.log" 2>&1
    stamp fid
    tar czf "$OUT/gen2_whole_results.tar.gz" "$WHOLE"/fid.json "$WHOLE"/samples/summary.json 2>/dev/null
    stamp done
else
    echo "usage: bash bench/gpu_cifar10.sh train BUDGET_S | generate | fid | gen2_whole" >&2
    exit 2
fi
