#!/usr/bin/env bash
# The CIFAR-10 run on a GPU machine (JAX backend, no TensorFlow), in commands sized for short device leases.
# The machine stays warm between the commands of one lease, so .device_runs/ (run, data, packages) carries over.
#
# One lease, a short schedule (results/cifar10_gpu):
#   bash bench/gpu_cifar10.sh train BUDGET_S   # bench fast vs fit, then both stages, epochs planned from the bench
#                                              # (SKIP_BENCH=1: from the rates measured on an H100 before)
#   bash bench/gpu_cifar10.sh generate         # test images; samples (+ ex-post samplers)
#   bash bench/gpu_cifar10.sh fid              # FID against both references, then the variance analysis
#   bash bench/gpu_cifar10.sh gen2_whole       # (optional) GEN-2 renormalized with one scale for the whole set
#   bash bench/gpu_cifar10.sh variants         # (any time, carry .whl) the fast trainer's speed variants
#
# The long schedule (350 or 700 first-stage epochs, then 1400) over several leases, relayed by bench/relay.py
# (docs/running.md, "The long schedule"):
#   bash bench/gpu_cifar10.sh stage1 BUDGET_S [EPOCHS=350] [HALVE]   # trains (or resumes) stage 1 for BUDGET_S,
#       then returns it in parts: the final model without optimizer if finished (FINISH=1: end at the last
#       checkpoint if cut), else the checkpoint; here: python -m bench.relay keep FILES_AT .device_carry/stage1
#   bash bench/gpu_cifar10.sh restore     # the next lease's first command: stage 1 from the carried parts
#   bash bench/gpu_cifar10.sh stage2 BUDGET_S [EPOCHS=1400] [HALVE=400]   # on the finished stage 1
#   then generate and fid as above, on the same machine.
#
# Inputs (ignored paths, carried; at most 64 MiB per command, the tracked files included): train and stage1: .whl/
# (keras, namex, optree) and .device_data/cifar10_train.zip; restore: .whl/ and .device_carry/stage1 (a
# checkpoint's four parts and the wheels exceed 64 MiB: carry three parts with the wheels in a command that only
# lists them, then the rest with restore); stage2:
# .device_data/cifar10_train.zip; generate: .device_data/cifar10_test.zip (the shared JPEG quality-75 copy, split
# in two) and .device_data/inception_part1; fid: .device_data/inception_part2 (the converted float32 FID weights,
# split in two: float16 weights moved FID by 0.06, bench/results/float16_weights.json).
# Everything small comes back in $OUT (at most 8 files). SMOKE=1 runs the same steps on a CPU with a few hundred
# images (PY: the Python to use).
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
# XLA's compiled programs kept on disk: a later command of the same lease (a resumed stage, generate after
# training) loads them instead of compiling again (~15-30 s a stage on the H100).
export JAX_COMPILATION_CACHE_DIR=$PWD/.device_runs/jax_cache
if [ "$SMOKE" = 0 ]; then
    if [ ! -d "$SITE/keras" ]; then  # the first command of a lease
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
    fi
    export PYTHONPATH=$SITE
    SMALL_NETWORK=()
    LIMIT=()
    BENCH=(--images 10000 --epochs 2 --matmul-size 8192)
    SAMPLES=()
    SAMPLERS=${SAMPLERS-gauss,gen2_perdim,gmm10}  # SAMPLERS= : none (31 s of the generate command)
else
    SMALL_NETWORK=(--base-filters 8)
    LIMIT=(--limit 300)
    BENCH=(--images 200 --epochs 1 --matmul-size 256)
    SAMPLES=(--num-samples 200)
    SAMPLERS=${SAMPLERS-gauss,gen2_perdim}  # a mixture needs more codes than the smoke run encodes
fi
COMMON=(--dataset cifar10 --data-path "$DATA" --run-dir "$RUN" --seed 0)
FID=(--frechet-method eig --batch-size 500 --inception-weights "$WEIGHTS")

extract() {  # a carried zip into the data folder, once per machine (the machine has no unzip)
    [ -e "$DATA/.$(basename "$1")" ] && return 0
    $PY -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$1" "$DATA" \
        && touch "$DATA/.$(basename "$1")" && stamp unzip
}

describe_device() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    $PY -c "import jax, keras; print(jax.__version__, keras.__version__, jax.devices())" 2>&1
}

# Checkpoints: the timeout's SIGTERM saves one after the epoch in progress, and a machine given back keeps
# none, so few periodic ones (a 210 MB stage-2 checkpoint takes seconds to write).
train_stage1() {  # SECONDS EPOCHS HALVE: train (or resume) stage 1 for at most SECONDS
    timeout -s TERM "$1" $PY train_first_stage.py "${COMMON[@]}" "${LIMIT[@]}" "${SMALL_NETWORK[@]}" --epochs "$2" \
        --halve-every "$3" --trainer fast --checkpoint-every 50 --verbose 0 >> "$OUT/stage1.log" 2>&1
}

train_stage2() {  # SECONDS EPOCHS HALVE
    timeout -s TERM "$1" $PY train_second_stage.py "${COMMON[@]}" "${LIMIT[@]}" --epochs "$2" \
        --halve-every "$3" --trainer fast --checkpoint-every 500 --verbose 0 >> "$OUT/stage2.log" 2>&1
}

tar_stage2() {
    tar czf "$OUT/train_results.tar.gz" "$RUN"/stage1/log.csv "$RUN"/stage1/config.json "$RUN"/stage2/log.csv \
        "$RUN"/stage2/config.json "$RUN"/stage2/latent_stats.json 2>/dev/null
}

checkpoint_epoch() {  # STAGE: the last checkpointed epoch (nothing if none)
    $PY -c "import json; print(json.load(open('$RUN/$1/checkpoint.json'))['epoch'])" 2>/dev/null
}

finish_at_checkpoint() {  # a stage cut by its timeout: end it at its last checkpoint (saves the final model)
    local stage=$1 script=$2; shift 2
    local done
    done=$(checkpoint_epoch "$stage") || return 1
    echo "$stage cut by its timeout: ending at its checkpoint, epoch $done" | tee -a "$OUT/timings_$PHASE.txt"
    $PY "$script" "${COMMON[@]}" "$@" --epochs "$done" --verbose 0
}

if [ "$PHASE" = train ]; then
    describe_device > "$OUT/device.txt"
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
    train_stage1 $(( left - S2 )) "$E1" "$H1" \
        || finish_at_checkpoint stage1 train_first_stage.py "${LIMIT[@]}" "${SMALL_NETWORK[@]}" --halve-every "$H1" --trainer fast >> "$OUT/stage1.log" 2>&1
    stamp stage1
    left=$(( BUDGET - $(elapsed) ))
    train_stage2 $(( left > 40 ? left - 15 : 25 )) "$E2" "$H2" \
        || finish_at_checkpoint stage2 train_second_stage.py "${LIMIT[@]}" --halve-every "$H2" --trainer fast >> "$OUT/stage2.log" 2>&1
    stamp stage2
    sha256sum "$RUN"/stage1/first_stage.keras "$RUN"/stage2/second_stage.keras >> "$OUT/plan.txt" 2>&1
    tar_stage2
    stamp done
elif [ "$PHASE" = stage1 ]; then  # the long schedule's stage 1, resumed by each command; returns it in parts
    E1=${3:-350}
    H1=${4:-$(( (E1 * 250 + 350) / 700 ))}  # the authors' halving every 250 of 700 epochs, scaled and rounded
    describe_device >> "$OUT/stage1.log"  # at most 8 files come back: 4 parts, manifest, tar, this log, timings
    extract .device_data/cifar10_train.zip
    # 25 s kept to pack (split the checkpoint, or save the final model without optimizer) and return the parts
    if train_stage1 $(( BUDGET - $(elapsed) - 25 )) "$E1" "$H1"; then
        stamp "stage1 finished"
    elif [ "${FINISH:-0}" = 1 ]; then
        finish_at_checkpoint stage1 train_first_stage.py "${LIMIT[@]}" "${SMALL_NETWORK[@]}" --halve-every "$H1" --trainer fast >> "$OUT/stage1.log" 2>&1
        stamp "stage1 ended at its checkpoint"
    else
        stamp "stage1 cut: checkpoint at epoch $(checkpoint_epoch stage1 || echo 0) of $E1, run stage1 again"
    fi
    $PY -m bench.relay pack "$RUN/stage1" "$OUT" >> "$OUT/stage1.log" 2>&1 || exit 1
    stamp packed
elif [ "$PHASE" = restore ]; then  # the next lease: the first stage (final model or checkpoint) from its parts
    describe_device > "$OUT/device.txt"
    $PY -m bench.relay unpack .device_carry/stage1 "$RUN/stage1" > "$OUT/restore.log" 2>&1 || { cat "$OUT/restore.log"; exit 1; }
    stamp restored
elif [ "$PHASE" = stage2 ]; then  # the long schedule's stage 2, on the finished first stage
    E2=${3:-1400}
    H2=${4:-400}
    extract .device_data/cifar10_train.zip
    train_stage2 $(( BUDGET - $(elapsed) - 10 )) "$E2" "$H2" \
        || finish_at_checkpoint stage2 train_second_stage.py "${LIMIT[@]}" --halve-every "$H2" --trainer fast >> "$OUT/stage2.log" 2>&1
    stamp stage2
    sha256sum "$RUN"/stage2/second_stage.keras >> "$OUT/timings_$PHASE.txt" 2>&1
    tar_stage2
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
elif [ "$PHASE" = variants ]; then  # the fast trainer's speed variants (bench/fast_variants.py), ~2-3 min on a GPU
    describe_device > "$OUT/device.txt"
    SIZE=(--images 5000 --matmul-size 8192)
    [ "$SMOKE" = 1 ] && SIZE=(--images 400 --epochs 1 --matmul-size 256 --stages stage2)
    $PY -m bench.fast_variants "${SIZE[@]}" --output "$OUT/fast_variants.json" > "$OUT/variants.log" 2>&1
    stamp done
else
    echo "usage: bash bench/gpu_cifar10.sh train BUDGET_S | stage1 BUDGET_S [EPOCHS [HALVE]] | restore | stage2 BUDGET_S [EPOCHS [HALVE]] | generate | fid | gen2_whole | variants" >&2
    exit 2
fi
