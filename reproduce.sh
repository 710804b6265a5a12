#!/usr/bin/env bash
# Every experiment of the paper, one after the other: data (built on demand by train.py), lockstep
# training, analysis. The list is config/experiments.py's. Each experiment is two commands and can run
# alone. At paper scale (a GPU) the long ones are split into shards that any scheduler can run as
# independent jobs (docs/experiments.md: SLURM job array, one process per GPU).
#   bash reproduce.sh                          # everything at paper scale
#   bash reproduce.sh balance gemma2           # only these experiments
#   bash reproduce.sh --laptop                 # everything at laptop scale (CPU)
#   bash reproduce.sh --laptop sweep_celeb     # one laptop twin
# Run it again after a kill or a reboot and it goes on where it stopped: a finished experiment (its
# reproduced.json) is skipped, a shard with a resume file resumes, a trained one is not trained again.
# A run that another experiment already trained (same data, model, optimiser, steps and seed) is linked,
# not trained twice (train.py's reuse_dir). After each experiment a line says how long it took and about
# how long the rest will take (by run-steps, at this call's pace); at the end out[/laptop]/reproduce.json
# holds the commit, the machine and the seconds of every experiment. Start over: delete out[/laptop].
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
chosen=$(echo "$list" | while read -r exp n steps args; do
    if [ $# -eq 0 ] || [[ " $* " == *" $exp "* ]]; then echo "$exp $n $steps $args"; fi; done)
total=$(echo "$chosen" | awk '{s += $3} END {print s}')
k=0; count=$(echo "$chosen" | wc -l); left=$total; done_steps=0; spent=0
hms() { printf '%d:%02d:%02d' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }
mkdir -p "$out"
while read -r exp n steps args; do
    k=$((k + 1)); exp_dir="$out/$exp"
    if [ -f "$exp_dir/reproduced.json" ]; then
        echo "[$k/$count] $exp: done before (its reproduced.json), skipped"; left=$((left - steps)); continue
    fi
    t0=$SECONDS
    for ((i = 0; i < n; i++)); do
        tag=""; shard=""
        if [ "$n" -gt 1 ]; then tag="_${i}of${n}"; shard="--shard=$i/$n"; fi
        if [ -f "$exp_dir/timing$tag.json" ]; then continue; fi                     # trained
        how="--overwrite=True"                                                  # a start killed before its first resume point
        if [ -f "$exp_dir/resume$tag.pt" ]; then how="--resume=True"; fi
        python train.py "$dir/$exp.py" $shard $how --reuse_dir="$out"
    done
    t1=$SECONDS
    python analyze.py "$exp_dir" $args
    t2=$SECONDS
    printf '{"exp": "%s", "train_s": %d, "analyze_s": %d, "run_steps": %d}\n' "$exp" $((t1 - t0)) $((t2 - t1)) "$steps" \
        > "$exp_dir/reproduced.json"
    left=$((left - steps)); done_steps=$((done_steps + steps)); spent=$((spent + t2 - t0))
    eta=$(( done_steps > 0 ? spent * left / done_steps : 0 ))
    echo "[$k/$count] $exp: trained in $(hms $((t1 - t0))), analyzed in $(hms $((t2 - t1))); $(hms $spent) so far," \
         "about $(hms $eta) left"
done <<< "$chosen"
python - "$out" <<'EOF'
import glob, json, os, sys
import machine
done = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(sys.argv[1], '*', 'reproduced.json')))]
summary = dict(provenance=machine.provenance(machine.pick_device('auto')), experiments=done,
               total_s=sum(d['train_s'] + d['analyze_s'] for d in done))
json.dump(summary, open(os.path.join(sys.argv[1], 'reproduce.json'), 'w'), indent=1)
print(f"reproduce: {len(done)} experiments, {summary['total_s'] / 3600:.2f} h -> {sys.argv[1]}/reproduce.json")
EOF
if [ $# -eq 0 ]; then python toy.py; fi
