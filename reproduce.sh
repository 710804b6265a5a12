#!/usr/bin/env bash
# Every experiment of the paper, one after the other: data (built on demand by train.py), lockstep
# training, analysis. The list is config/experiments.py's. Each experiment is two commands and can run
# alone; every train.py command resumes where it stopped with --resume=True. At paper scale (a GPU) the
# long ones are split into shards that any scheduler can run as independent jobs (docs/experiments.md:
# SLURM job array, one process per GPU); the laptop twins (config/laptop/) each fit about an hour on 2 CPU cores.
#   bash reproduce.sh                          # everything at paper scale
#   bash reproduce.sh balance gemma2           # only these experiments
#   bash reproduce.sh --laptop                 # everything at laptop scale (CPU)
#   bash reproduce.sh --laptop sweep_celeb     # one laptop twin
set -euo pipefail
cd "$(dirname "$0")"
scale=paper
if [ "${1:-}" = "--laptop" ]; then scale=laptop; shift; fi
dir=config; out=out
if [ $scale = laptop ]; then dir=config/laptop; out=out/laptop; fi
list=$(python config/experiments.py --scale=$scale)
for exp in "$@"; do
    echo "$list" | grep -q "^$exp " || { echo "reproduce.sh: unknown experiment '$exp' (see config/experiments.py)" >&2; exit 2; }
done
echo "$list" | while read -r exp n; do
    if [ $# -gt 0 ] && [[ " $* " != *" $exp "* ]]; then continue; fi
    for ((i = 0; i < n; i++)); do
        python train.py "$dir/$exp.py" $([ "$n" -gt 1 ] && echo "--shard=$i/$n")
    done
    python analyze.py "$out/$exp"
done
if [ $# -eq 0 ]; then python toy.py; fi
