#!/usr/bin/env bash
# Trains tomk on TPU slices of a GKE cluster, as an XPK workload (pip install xpk).
#
#   launch/gke_xpk.sh --cluster=C --workload=NAME --tpu-type=v5p-256 [--num-slices=1] \
#       [--project=P] [--zone=Z] [--docker-image=IMAGE] [--dry-run] \
#       -- --config=configs/pretrain_1b.py --workdir=/mnt/shared/runs/pretrain-1b
#
# Without --docker-image, XPK builds an image from this checkout (--script-dir) on top of
# python:3.11 and every pod installs jax[tpu] and tomk when it starts; for repeated runs
# build an image with them installed and pass --docker-image. GKE sets
# TPU_WORKER_HOSTNAMES, so jax.distributed.initialize() finds the other hosts. The
# workdir must be a volume every pod sees (Filestore or a gcsfuse CSI mount).
# --dry-run prints the xpk command instead of running it. More xpk flags go in XPK_ARGS,
# e.g. XPK_ARGS="--max-restarts=3 --priority=high". One slice per run: tomk's mesh has
# no cross-slice (DCN) axis yet.
set -euo pipefail

usage() {
  awk '/^set -euo/ {exit} NR > 1 && /^#( |$)/ {sub(/^# ?/, ""); print}' "$0"
  exit "${1:-0}"
}

CLUSTER=""
WORKLOAD=""
TPU_TYPE=""
NUM_SLICES=1
PROJECT=""
ZONE=""
DOCKER_IMAGE=""
BASE_IMAGE="${BASE_IMAGE:-python:3.11}"
JAX_VERSION="${JAX_VERSION:-0.10.2}"
DRY_RUN=0
MAIN_ARGS=()
while (($#)); do
  case "$1" in
    --cluster=*) CLUSTER="${1#*=}" ;;
    --workload=*) WORKLOAD="${1#*=}" ;;
    --tpu-type=*) TPU_TYPE="${1#*=}" ;;
    --num-slices=*) NUM_SLICES="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --docker-image=*) DOCKER_IMAGE="${1#*=}" ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage 0 ;;
    --) shift; MAIN_ARGS=("$@"); break ;;
    *) echo "gke_xpk.sh: unknown option $1 (tomk.main flags go after --)" >&2; usage 2 ;;
  esac
  shift
done
if [[ -z "$CLUSTER" || -z "$WORKLOAD" || -z "$TPU_TYPE" ]]; then
  echo "gke_xpk.sh: give --cluster=, --workload= and --tpu-type= (e.g. v5p-256)." >&2
  exit 2
fi
if ((${#MAIN_ARGS[@]} == 0)); then
  echo "gke_xpk.sh: give tomk.main's flags after --, e.g. -- --config=configs/pretrain_1b.py" \
    "--workdir=/mnt/shared/runs/pretrain-1b" >&2
  exit 2
fi
if [[ "$NUM_SLICES" != 1 ]]; then
  echo "gke_xpk.sh: --num-slices=$NUM_SLICES: tomk's mesh has no cross-slice (DCN) axis yet;" \
    "use one slice (a larger --tpu-type)." >&2
  exit 2
fi

# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUOTED_ARGS=""
for arg in "${MAIN_ARGS[@]}"; do
  QUOTED_ARGS+=" $(quote "$arg")"
done
COMMAND="python3 -m tomk.main --distributed${QUOTED_ARGS}"
XPK=(xpk workload create --cluster="$CLUSTER" --workload="$WORKLOAD" --tpu-type="$TPU_TYPE"
  --num-slices="$NUM_SLICES")
if [[ -n "$PROJECT" ]]; then
  XPK+=(--project="$PROJECT")
fi
if [[ -n "$ZONE" ]]; then
  XPK+=(--zone="$ZONE")
fi
if [[ -n "$DOCKER_IMAGE" ]]; then
  XPK+=(--docker-image="$DOCKER_IMAGE")
else
  # XPK copies --script-dir into the image's working directory.
  XPK+=(--base-docker-image="$BASE_IMAGE" --script-dir="$REPO")
  COMMAND="python3 -m pip install 'jax[tpu]==$JAX_VERSION' -e . && $COMMAND"
fi
# shellcheck disable=SC2086  # XPK_ARGS is a list of extra xpk flags, split on purpose
run "${XPK[@]}" ${XPK_ARGS:-} --command="$COMMAND"
