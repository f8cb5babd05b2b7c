#!/usr/bin/env bash
# A single-node SLURM test cluster (Debian's munge, slurmctld, slurmd) with two fake GPUs.
#   cluster.sh start WORKDIR   -> prints `export SLURM_CONF=...` once the node is idle
#   cluster.sh stop WORKDIR    -> stops only the daemons this script started in WORKDIR
# Needs root (mknod, daemons as root); everything else lives in WORKDIR.
set -euo pipefail
action=${1:?start|stop}
work=$(realpath -m "${2:?work directory}")
node=$(hostname -s)
etc_link=/etc/slurm/slurm.conf

stop() {
    for daemon in slurmd slurmctld munged; do
        pid_file="$work/$daemon.pid"
        pid=$(cat "$pid_file" 2>/dev/null || true)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pid_file"
    done
    # The link is ours only if it points into this work directory; put back the one it replaced.
    if [[ -L $etc_link && $(readlink "$etc_link") == "$work/slurm.conf" ]]; then
        rm -f "$etc_link"
        if [[ -s $work/etc_link.previous ]]; then ln -sfn "$(cat "$work/etc_link.previous")" "$etc_link"; fi
    fi
}

start() {
    mkdir -p "$work"/{state,spool,dev,munge}
    chmod 0755 "$work/munge"
    [[ -s $work/munge/munge.key ]] || head -c 1024 /dev/urandom > "$work/munge/munge.key"
    chmod 0600 "$work/munge/munge.key"
    # GPUs need character devices behind File= (plain files are rejected); /dev/null's numbers will do.
    for i in 0 1; do [[ -c $work/dev/fakegpu$i ]] || mknod "$work/dev/fakegpu$i" c 1 3; done
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)

    cat > "$work/slurm.conf" <<CONF
ClusterName=convbench-test
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket.2
CredType=cred/munge
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
GresTypes=gpu
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=$node CPUs=$(nproc) RealMemory=$memory Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    cat > "$work/gres.conf" <<CONF
NodeName=$node Name=gpu Type=fake File=$work/dev/fakegpu[0-1]
CONF
    # The executor plugin's in-job step drops SLURM_CONF; its srun reads /etc/slurm/slurm.conf.
    # A real file there is another cluster's: refuse. Another link (another test cluster's) is put
    # back by stop.
    if [[ -e $etc_link && ! -L $etc_link ]]; then
        echo "$etc_link exists and is not ours: refusing to replace it" >&2; exit 1
    fi
    if [[ -L $etc_link && $(readlink "$etc_link") != "$work/slurm.conf" ]]; then
        readlink "$etc_link" > "$work/etc_link.previous"
    fi
    mkdir -p /etc/slurm && ln -sfn "$work/slurm.conf" "$etc_link"

    munged --force --socket="$work/munge/munge.socket.2" --key-file="$work/munge/munge.key" \
        --pid-file="$work/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munge/seed"
    export SLURM_CONF=$work/slurm.conf
    slurmctld -c -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF" -N "$node"
    for _ in $(seq 100); do
        if sinfo -h -N -o '%t' 2>/dev/null | grep -qx idle; then
            echo "export SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 0.2
    done
    echo "the test node did not come up; see $work/*.log" >&2
    stop
    exit 1
}

"$action"
