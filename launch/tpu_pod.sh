#!/usr/bin/env bash
# Run one benchmark point on every worker of a Cloud TPU VM pod.
#
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG_ARG WORKDIR [--config.key=value ...]
#   launch/tpu_pod.sh my-v4-32 us-central2-b configs/chexpert_classes.py:model=pggan,classes=6,per_class=2300,devices=16 \
#       /mnt/shared/runs/chexpert_classes/model-pggan_classes-6_per_class-2300 \
#       --config.data.root=/mnt/shared/CheXpert-v1.0-small --config.data.prepared_dir=/mnt/shared/prepared
#
# Every worker runs `python -m medgan.main` with the same arguments (gcloud
# ... ssh --worker=all); jax.distributed.initialize() with no arguments finds
# the pod by itself, and each process reads its own slice of the data.
#
# Before: medgan checked out and installed on every worker in
# $MEDGAN_REMOTE_DIR (default ~/medgan) with its .venv (pip install -e . plus
# jax[tpu]). WORKDIR, data.root and data.prepared_dir must be paths on a file
# system that ALL workers share (an NFS / Filestore mount or a gcsfuse-mounted
# bucket): checkpoints, the fold manifest and results.json are written there
# once for the pod, and a rerun resumes from them. `devices=` in the config
# argument should be the pod's chip count (the global batch scales with it).
#
# DRY_RUN=1 prints the gcloud command instead of running it.
set -euo pipefail

usage() {
  echo "usage: $0 TPU_NAME ZONE CONFIG_ARG WORKDIR [--config.key=value ...]" >&2
  echo "  e.g. $0 my-v4-32 us-central2-b configs/demo_sweep.py:classes=2,per_class=50 /mnt/shared/runs/p1" >&2
  echo "  env: MEDGAN_REMOTE_DIR (repo on the workers, default ~/medgan), DRY_RUN=1 (print only)" >&2
  exit 2
}

if [[ $# -lt 4 ]]; then
  usage
fi
tpu=$1 zone=$2 config=$3 workdir=$4
shift 4
for override in "$@"; do
  if [[ $override != --config.* && $override != --noconfig.* ]]; then
    echo "$0: extra argument '$override' is not a --config.key=value override" >&2
    usage
  fi
done

# The repository on the workers. A leading ~ is left for the remote shell to expand.
remote_dir=${MEDGAN_REMOTE_DIR:-'~/medgan'}
case $remote_dir in
  "~") remote_cd="cd ~" ;;
  "~/"*) remote_cd="cd ~/$(printf %q "${remote_dir#\~/}")" ;;
  *) remote_cd="cd $(printf %q "$remote_dir")" ;;
esac

remote_command="$remote_cd && .venv/bin/python -m medgan.main $(printf %q "--config=$config") $(printf %q "--workdir=$workdir")"
for override in "$@"; do
  remote_command+=" $(printf %q "$override")"
done

command=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "$remote_command")
if [[ ${DRY_RUN:-0} == 1 ]]; then
  # Copy-pasteable, with the remote command in single quotes so it stays readable.
  printf '%q ' "${command[@]:0:${#command[@]}-1}"
  printf "'%s'\n" "${remote_command//\'/\'\\\'\'}"
  exit 0
fi
exec "${command[@]}"
