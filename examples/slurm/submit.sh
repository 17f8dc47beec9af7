#!/bin/bash
# Submit a sharded batchbench sweep to Slurm: the array (one shard per task) and the merge,
# which waits for every task of the array to end.
#
#   CONFIG=benchmarks/batchbench.yaml SHARED=/shared/results/sweep-1 examples/slurm/submit.sh
#
# SHARED must be on a filesystem every node sees. Running this again with the same SHARED
# (after a task was preempted or ran out of time) resumes the unfinished shards and merges again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONFIG=${CONFIG:-benchmarks/batchbench.yaml}
export SHARED=${SHARED:-$PWD/results/sharded/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$SHARED"
array=$(sbatch --parsable --export=ALL "$here/batchbench-array.sbatch")
sbatch --dependency="afterany:${array%%;*}" --export=ALL "$here/batchbench-merge.sbatch"
echo "shards: $SHARED/shard-*  merged: $SHARED/merged  (array job $array)"
