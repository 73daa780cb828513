#!/usr/bin/env bash
# A single-node SLURM cluster on this host, for `make test-cluster`.
#
#   launch/local_slurm.sh up       install slurm-wlm + munge if missing, start munged,
#                                  slurmctld, slurmd with no jobs; wait until the node is idle
#   launch/local_slurm.sh status   the daemons and `sinfo`
#   launch/local_slurm.sh env      prints `export SLURM_CONF=...` for the clients
#   launch/local_slurm.sh down     cancel jobs, stop every daemon it started, remove the state
#
# Runs as root (apt, and the daemons run as root). Everything lives in one state
# directory, $MEDGAN_SLURM_DIR (default /tmp/medgan-slurm): slurm.conf,
# cgroup.conf, the munge key and socket, pid files, logs, spool. Nothing in
# /etc is written: clients (sinfo, sbatch, srun) find the cluster through
# SLURM_CONF=$MEDGAN_SLURM_DIR/slurm.conf, which `up` prints and `env` exports.
#
# Every daemon is started with MEDGAN_SLURM_DAEMON=<state dir> in its
# environment, so `down` finds what this script started (pid files first, then
# that marker) and nothing else: a system munged or another cluster is left alone.
# `up` and `down` are idempotent; a failed `up` stops what it started and keeps
# the logs in the state directory until `down`.
set -euo pipefail

STATE=${MEDGAN_SLURM_DIR:-/tmp/medgan-slurm}
CTLD_PORT=${MEDGAN_SLURM_PORT:-6817}          # slurmd listens on the next port
UP_TIMEOUT=${MEDGAN_SLURM_TIMEOUT:-60}        # seconds until the node must be idle
HOST=$(hostname -s)
DAEMONS=(slurmd slurmctld munged)             # stop order (reverse of start order)
export SLURM_CONF="$STATE/slurm.conf"

say() { echo "local_slurm: $*"; }
die() { echo "local_slurm: ERROR: $*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages with apt and starts slurmctld/slurmd/munged as root); try: sudo $0 $*"
}

install_packages() {
    local missing=0
    for tool in munged mungekey slurmctld slurmd sinfo sbatch srun scontrol; do
        command -v "$tool" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "slurm/munge are missing and there is no apt-get: install slurm-wlm and munge by hand"
    say "installing slurm-wlm and munge with apt-get (once)"
    # A policy-rc.d that answers 101 stops the packages' init scripts from
    # starting a system munged/slurmd that this script would not own.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
    fi
    local status=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold slurm-wlm munge >"$STATE.apt.log" 2>&1
    } || status=$?
    [ "$created_policy" -eq 1 ] && rm -f "$policy"
    if [ "$status" -ne 0 ]; then
        tail -n 30 "$STATE.apt.log" >&2 || true
        die "apt-get install slurm-wlm munge failed (exit $status); full log: $STATE.apt.log"
    fi
    rm -f "$STATE.apt.log"
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    # 95% of MemTotal: slurmd drains a node whose configured RealMemory exceeds what it measures.
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
    mkdir -p "$STATE"/{munge,ctld,spool,run,log}
    chmod 0711 "$STATE/munge"  # munged: the socket directory must be searchable by all
    cat >"$STATE/slurm.conf" <<EOF
# Written by launch/local_slurm.sh: a single-node cluster on $HOST for tests.
ClusterName=medgan
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.daemon.pid
SlurmdPidFile=$STATE/run/slurmd.daemon.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    # Not used by proctrack/linuxproc + task/none, but slurmd reads it if present elsewhere.
    cat >"$STATE/cgroup.conf" <<EOF
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
    if [ ! -s "$STATE/munge/munge.key" ]; then
        mungekey --create --keyfile="$STATE/munge/munge.key" 2>/dev/null ||
            dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 0600 "$STATE/munge/munge.key"
}

alive() { [ -s "$STATE/run/$1.pid" ] && kill -0 "$(cat "$STATE/run/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: runs a daemon in the foreground of its own session, pid in run/NAME.pid.
start() {
    local name=$1; shift
    MEDGAN_SLURM_DAEMON="$STATE" setsid "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/run/$name.pid"
}

log_tails() {
    for f in "$STATE"/log/*; do
        [ -s "$f" ] || continue
        echo "----- tail of $f" >&2
        tail -n 15 "$f" >&2
    done
}

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1; }

# Pids of processes carrying this state dir's marker (daemons and their children).
marked_pids() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid=${environ#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        tr "\0" "\n" 2>/dev/null <"$environ" | grep -qxF "MEDGAN_SLURM_DAEMON=$STATE" && echo "$pid"
    done
    return 0
}

stop_daemons() {
    local pids=() name pid
    for name in "${DAEMONS[@]}"; do
        for file in "$STATE/run/$name.pid" "$STATE/run/$name.daemon.pid"; do
            [ -s "$file" ] && pids+=("$(cat "$file")")
        done
    done
    pids+=($(marked_pids))
    [ "${#pids[@]}" -eq 0 ] && return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        pids=($(marked_pids))
        [ "${#pids[@]}" -eq 0 ] && return 0
        sleep 0.2
    done
    say "killing daemons that ignored SIGTERM: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
    pids=($(marked_pids))
    [ "${#pids[@]}" -eq 0 ] || die "processes of $STATE still running after SIGKILL: ${pids[*]}"
}

# Stopped daemons whose starter has exited are zombies until init reaps them; wait (briefly) for that.
wait_reaped() {
    local name file
    for _ in $(seq 25); do
        local left=0
        for name in "${DAEMONS[@]}"; do
            for file in "$STATE/run/$name.pid" "$STATE/run/$name.daemon.pid"; do
                [ -s "$file" ] && [ -e "/proc/$(cat "$file")" ] && left=1
            done
        done
        [ "$left" -eq 0 ] && return 0
        sleep 0.2
    done
    return 0
}

cmd_up() {
    require_root "$@"
    if [ -f "$STATE/slurm.conf" ] && alive munged && alive slurmctld && alive slurmd && [ "$(node_state)" = idle ]; then
        say "already up ($STATE); export SLURM_CONF=$SLURM_CONF"
        return 0
    fi
    # A cluster from before (half-started, or left running by a session that ended
    # without `down`): stop it and drop its state, or slurmctld would recover its
    # queued jobs and run them on the node the caller is about to use.
    stop_daemons
    wait_reaped
    rm -rf "$STATE"
    mkdir -p "$STATE"
    install_packages
    write_config
    trap 'log_tails; stop_daemons; echo "local_slurm: ERROR: up failed; daemons stopped, logs kept in $STATE/log (remove with: $0 down)" >&2' ERR
    start munged munged -F --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/run/munged.daemon.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
    for _ in $(seq 50); do [ -S "$STATE/munge/munge.socket" ] && break; alive munged || break; sleep 0.1; done
    [ -S "$STATE/munge/munge.socket" ] || { say "munged did not start"; false; }
    start slurmctld slurmctld -D -c -f "$SLURM_CONF"  # -c: no job state recovered
    start slurmd slurmd -D -f "$SLURM_CONF"
    local state="" waited=0
    while [ "$waited" -lt "$((UP_TIMEOUT * 2))" ]; do
        for name in munged slurmctld slurmd; do
            alive "$name" || { say "$name exited during start-up"; false; }
        done
        state=$(node_state)
        [ "$state" = idle ] && break
        sleep 0.5; waited=$((waited + 1))
    done
    if [ "$state" != idle ]; then
        say "node $HOST not idle after ${UP_TIMEOUT}s (sinfo state: '${state:-no answer}')"
        false
    fi
    trap - ERR
    say "up: node $HOST idle with $(nproc) CPUs, partition 'local'; clients need: export SLURM_CONF=$SLURM_CONF"
}

cmd_down() {
    require_root "$@"
    if [ -f "$STATE/slurm.conf" ] && alive slurmctld; then
        scancel --full --quiet --partition=local 2>/dev/null || true  # jobs first: their steps end cleanly
        for _ in $(seq 20); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    stop_daemons
    wait_reaped
    rm -rf "$STATE"
    say "down: no daemon of $STATE left"
}

cmd_status() {
    local name
    for name in munged slurmctld slurmd; do
        if alive "$name"; then echo "$name: running (pid $(cat "$STATE/run/$name.pid"))"; else echo "$name: not running"; fi
    done
    [ -f "$SLURM_CONF" ] && alive slurmctld && sinfo && squeue
    alive munged && alive slurmctld && alive slurmd
}

case "${1:-}" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 up|down|status|env   (state in \$MEDGAN_SLURM_DIR, default /tmp/medgan-slurm)" >&2; exit 2 ;;
esac
