#!/usr/bin/env bash
#SBATCH --job-name=tomk
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=24:00:00
#SBATCH --output=tomk-%j.out
#SBATCH --signal=TERM@120
# Trains tomk on GPU nodes of a SLURM cluster: one process per node owning its GPUs.
#
#   launch/slurm_gpu.sh [--nodes=N] [--gpus-per-node=G] [--partition=P] [--time=T] \
#       [--dry-run] -- --config=configs/pretrain_1b.py --workdir=/shared/runs/pretrain-1b
#
# Run from a login node: it submits itself with sbatch (options override the #SBATCH
# lines above); inside the job it runs `srun python -m tomk.main ...` on every node, and
# jax.distributed.initialize() reads the coordinator and process ids from SLURM's
# variables. The workdir must be on a filesystem every node sees. --signal=TERM@120
# gives a preempted or timed-out job two minutes to checkpoint; re-submitting the same
# command resumes. PYTHON picks the interpreter (default python3, e.g. a venv's).
# --dry-run prints the sbatch and srun commands instead of running them.
set -euo pipefail

usage() {
  awk '/^set -euo/ {exit} NR > 1 && /^#( |$)/ {sub(/^# ?/, ""); print}' "$0"
  exit "${1:-0}"
}

SBATCH_ARGS=()
DRY_RUN=0
MAIN_ARGS=()
while (($#)); do
  case "$1" in
    --nodes=* | --gpus-per-node=* | --partition=* | --time=* | --account=* | --job-name=*)
      SBATCH_ARGS+=("$1") ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) echo "slurm_gpu.sh: unknown option $1 (tomk.main flags go after --)" >&2; usage 2 ;;
  esac
  shift
done
if ((${#MAIN_ARGS[@]} == 0)); then
  echo "slurm_gpu.sh: give tomk.main's flags after --, e.g. -- --config=configs/pretrain_1b.py" \
    "--workdir=/shared/runs/pretrain-1b" >&2
  exit 2
fi

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PYTHON="${PYTHON:-python3}"
if [[ -z "${SLURM_JOB_ID:-}" ]]; then
  # On a login node: submit this script; inside the job the branch below runs.
  SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
  REPO="$(dirname "$(dirname "$SCRIPT")")"
  run sbatch --chdir="$REPO" "${SBATCH_ARGS[@]}" "$SCRIPT" -- "${MAIN_ARGS[@]}"
  if ((DRY_RUN)); then
    echo "# then, inside the job, on every node:"
    DRY_RUN=1 run srun --kill-on-bad-exit=1 "$PYTHON" -m tomk.main "${MAIN_ARGS[@]}"
  fi
  exit 0
fi

# Inside the job. --kill-on-bad-exit stops every process when one fails (the others would
# wait for it in a collective until the time limit).
run srun --kill-on-bad-exit=1 "$PYTHON" -m tomk.main "${MAIN_ARGS[@]}"
