#!/usr/bin/env bash
# Every experiment of the paper on one GPU: data (built on demand by train.py), lockstep training,
# analysis. Each experiment is two commands and can run alone; every train.py command resumes
# where it stopped with --resume=True. The long ones are split into shards that any scheduler can
# run as independent jobs (see README: SLURM job array, one process per GPU).
#   bash reproduce.sh                 # everything, one after the other
#   bash reproduce.sh balance gemma2  # only these experiments
set -euo pipefail
cd "$(dirname "$0")"
SHARDED="selection:4 steps_10x:4"            # experiment:number of shards
# the queue's order (gpu_queue.py `order`, tests/test_queue.py checks it)
ALL="sweep_celeb balance shared_tokens char_low char_cased selection templates_02 templates_10 templates_20 people_10x
     steps_10x gemma2 regularization"
for exp in ${@:-$ALL}; do
    n=$(echo " $SHARDED " | grep -o " $exp:[0-9]*" | cut -d: -f2 || true)
    if [ -n "$n" ]; then
        for ((i = 0; i < n; i++)); do python train.py "config/$exp.py" --shard="$i/$n"; done
    else
        python train.py "config/$exp.py"
    fi
    python analyze.py "out/$exp"
done
python toy.py
