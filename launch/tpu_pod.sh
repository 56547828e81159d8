#!/usr/bin/env bash
# Trains tomk on a Cloud TPU VM slice (every worker runs the same command).
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=P] [--skip-setup] [--dry-run] \
#       -- --config=configs/pretrain_1b.py --workdir=/mnt/shared/runs/pretrain-1b
#
# Setup (skipped with --skip-setup): copies this checkout to ~/tomk on every worker and
# installs jax[tpu] and tomk there. Run: `python3 -m tomk.main --distributed ...` on
# every worker at once (gcloud ... ssh --worker=all); jax.distributed.initialize() finds
# the other workers through the TPU metadata. The workdir must be a directory that
# every worker sees (a Filestore/NFS mount or a gcsfuse-mounted bucket): checkpoints
# are written collectively, each worker its own shards.
# --dry-run prints the commands instead of running them.
# Re-running the same command resumes from the last checkpoint (e.g. after preemption).
set -euo pipefail

usage() {
  awk '/^set -euo/ {exit} NR > 1 && /^#( |$)/ {sub(/^# ?/, ""); print}' "$0"
  exit "${1:-0}"
}

TPU=""
ZONE=""
PROJECT=""
SETUP=1
DRY_RUN=0
JAX_VERSION="${JAX_VERSION:-0.10.2}"
MAIN_ARGS=()
while (($#)); do
  case "$1" in
    --tpu=*) TPU="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --skip-setup) SETUP=0 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) echo "tpu_pod.sh: unknown option $1 (tomk.main flags go after --)" >&2; usage 2 ;;
  esac
  shift
done
if [[ -z "$TPU" || -z "$ZONE" ]]; then
  echo "tpu_pod.sh: give --tpu=NAME and --zone=ZONE of an existing TPU VM slice." >&2
  exit 2
fi
if ((${#MAIN_ARGS[@]} == 0)); then
  echo "tpu_pod.sh: give tomk.main's flags after --, e.g. -- --config=configs/pretrain_1b.py" \
    "--workdir=/mnt/shared/runs/pretrain-1b" >&2
  exit 2
fi

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GCLOUD=(gcloud compute tpus tpu-vm)
WHERE=(--zone="$ZONE" --worker=all)
if [[ -n "$PROJECT" ]]; then
  WHERE+=(--project="$PROJECT")
fi
ARCHIVE="${TMPDIR:-/tmp}/tomk-${TPU}.tar.gz"

if ((SETUP)); then
  run tar -czf "$ARCHIVE" -C "$REPO" --exclude=.git --exclude=runs --exclude='*.egg-info' \
    --exclude=__pycache__ .
  run "${GCLOUD[@]}" scp "$ARCHIVE" "$TPU:tomk.tar.gz" "${WHERE[@]}"
  run "${GCLOUD[@]}" ssh "$TPU" "${WHERE[@]}" --command="rm -rf ~/tomk && mkdir -p ~/tomk \
&& tar -xzf ~/tomk.tar.gz -C ~/tomk \
&& python3 -m pip install -U 'jax[tpu]==$JAX_VERSION' && python3 -m pip install -e ~/tomk"
fi

# One quoted string: the remote shell splits it back into the same arguments.
QUOTED_ARGS=""
for arg in "${MAIN_ARGS[@]}"; do
  QUOTED_ARGS+=" $(quote "$arg")"
done
run "${GCLOUD[@]}" ssh "$TPU" "${WHERE[@]}" \
  --command="cd ~/tomk && python3 -m tomk.main --distributed${QUOTED_ARGS}"
