#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try byzrun's SLURM path (hydra/launcher=slurm) on a
# laptop or in CI. Needs root (the daemons run as root) and Debian/Ubuntu packages (installed when missing).
#
#   scripts/local_slurm.sh up       install what is missing, write the config, start munge, slurmctld and
#                                   slurmd, wait until the node is idle
#   scripts/local_slurm.sh status   the daemons and `sinfo` (exit 1 when the cluster is not up)
#   scripts/local_slurm.sh down     cancel every job, stop the three daemons by their pids, remove the folder
#
# Everything lives in $BYZRUN_SLURM_DIR (default /tmp/byzrun-slurm): slurm.conf, the munge key and socket,
# state, spool, logs, pid files. Clients find the cluster through SLURM_CONF:
#   export SLURM_CONF=${BYZRUN_SLURM_DIR:-/tmp/byzrun-slurm}/slurm.conf
# The daemons listen on ports $BYZRUN_SLURM_PORT and +1 (default 6820, 6821: not SLURM's usual 6817/6818,
# so that a SLURM installation of this machine is left alone). No accounting database: submitit's
# `sacct` calls fail here, and byzrun reads job states from `squeue` instead (byzrun/slurm_jobs.py).
set -euo pipefail

DIR=${BYZRUN_SLURM_DIR:-/tmp/byzrun-slurm}
PORT=${BYZRUN_SLURM_PORT:-6820}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "local_slurm: $*"; }
die() {
    echo "local_slurm: error: $*" >&2
    exit 1
}

# the pid in $1 when that process is alive and its command line contains $2 (a stale pid file whose number
# was given to another process does not count)
running_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$name" || return 1
    echo "$pid"
}

install_missing() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get; install ${PACKAGES[*]} yourself"
    say "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # what slurmd may hand out: 90% of the memory, so that it never refuses to register the node
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$DIR"/{munge,state,spool,log}
    chmod 700 "$DIR/munge"
    cat >"$CONF" <<EOF
# written by scripts/local_slurm.sh for $host: one node, one partition, no accounting
ClusterName=byzrun-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups: plain process tracking, no task binding (works in containers)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# a job over its time limit is killed at once (OverTimeLimit=0), 5 s after its SIGTERM (KillWait)
OverTimeLimit=0
# a job that asks for more than a node of its partition has is refused by sbatch, instead of pending for ever
EnforcePartLimits=ALL
KillWait=5
# finished jobs stay visible to squeue for 10 minutes: how byzrun learns how a job ended without accounting
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
# "multi" spans this node and one that is not there (always down): a partition of two nodes, where byzrun
# refuses a results_dir that only one node sees (tests/test_slurm.py); no job is ever sent to it
NodeName=absent NodeAddr=127.0.0.2 CPUs=1 RealMemory=100 State=DOWN Reason=not_a_machine
PartitionName=multi Nodes=$host,absent Default=NO MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    local key=$DIR/munge/munge.key
    [[ -s $key ]] || dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    chmod 400 "$key"
    mkdir -p /run/munge # munged checks its default folders even when told others
    munged --force --key-file="$key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed"
}

wait_until() { # wait_until SECONDS WHAT COMMAND...: run COMMAND every second until it succeeds
    local seconds=$1 what=$2
    shift 2
    for ((i = 0; i < seconds; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "$what did not happen within $seconds s (logs: $DIR/log/)"
}

node_idle() { [[ $(sinfo -h -N -p debug -o %t 2>/dev/null) == idle ]]; }

up() {
    [[ $(id -u) == 0 ]] || die "needs root (the SLURM daemons run as root); run it with sudo"
    if running_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
        say "already up ($CONF)"
        return 0
    fi
    install_missing
    write_config
    running_pid "$DIR/munge/munged.pid" munged >/dev/null || start_munge
    wait_until 10 "munged start" test -S "$DIR/munge/munge.socket"
    slurmctld -c -f "$CONF"
    wait_until 30 "slurmctld start" scontrol ping
    slurmd -f "$CONF"
    wait_until 60 "node idle in sinfo" node_idle
    say "up: partition debug, node $(hostname -s), $(nproc) CPUs; export SLURM_CONF=$CONF"
}

stop_pid() { # stop_pid FILE NAME: SIGTERM, then SIGKILL after 15 s
    local pid
    pid=$(running_pid "$1" "$2") || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 15; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    [[ -d $DIR ]] || {
        say "not up (no $DIR)"
        return 0
    }
    if running_pid "$DIR/slurmctld.pid" slurmctld >/dev/null; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        for ((i = 0; i < 15; i++)); do
            [[ -z $(squeue -h -t running,completing,pending 2>/dev/null) ]] && break
            sleep 1
        done
    fi
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    stop_pid "$DIR/munge/munged.pid" munged
    rm -rf "$DIR"
    say "down (removed $DIR)"
}

status() {
    local up=0 daemon
    for daemon in munge/munged slurmctld slurmd; do
        if pid=$(running_pid "$DIR/$daemon.pid" "${daemon#munge/}"); then
            say "${daemon#munge/} running (pid $pid)"
        else
            say "${daemon#munge/} not running"
            up=1
        fi
    done
    ((up == 0)) && sinfo
    return $up
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
