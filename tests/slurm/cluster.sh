#!/usr/bin/env bash
# A real one-node SLURM for the tests: munged, slurmctld and slurmd on this machine.
#   tests/slurm/cluster.sh start     write /etc/slurm/slurm.conf, start the daemons, wait for the node
#   tests/slurm/cluster.sh stop      stop the daemons this script started (by PID)
# Needs root. Refuses to touch a slurm.conf it did not write (a real cluster's).
set -euo pipefail
state=${STEMTOMO_SLURM_STATE:-/tmp/stemtomo-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by stemtomo tests/slurm/cluster.sh"

die() { echo "cluster.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it starts munged, slurmctld and slurmd)"

case "${1:-}" in
start)
  command -v slurmctld >/dev/null || die "SLURM is not installed: run tests/setup-system.sh as root"
  if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf belongs to another SLURM installation; not touching it"
  fi
  "$0" stop >/dev/null 2>&1 || true
  mkdir -p "$state" /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
  # munge: a 0600 key owned by its user, and a socket directory everyone may enter
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge && chmod 0600 /etc/munge/munge.key && chmod 0755 /run/munge
  su -s /bin/sh munge -c munged  # forks; writes /run/munge/munged.pid
  for _ in $(seq 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$state/munged.pid"
  host=$(hostname -s)
  node=$(slurmd -C | head -1)
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  mkdir -p "$state/ctld" "$state/d"
  cat > "$conf" <<EOF
$marker
ClusterName=stemtomo-test
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0
MinJobAge=3600
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -D >"$state/slurmctld.out" 2>&1 &
  echo $! > "$state/slurmctld.pid.own"
  slurmd -D >"$state/slurmd.out" 2>&1 &
  echo $! > "$state/slurmd.pid.own"
  for _ in $(seq 100); do
    st=$(sinfo -h -o %t 2>/dev/null || true)
    [ "$st" = idle ] && { echo "SLURM up: node $host, $cpus CPUs, $mem MB"; exit 0; }
    sleep 0.2
  done
  cat "$state/slurmctld.out" "$state/slurmd.out" >&2
  die "the node did not become idle (state: ${st:-none}); logs above"
  ;;
stop)
  for d in slurmd slurmctld munged; do
    for f in "$state/$d.pid.own" "$state/$d.pid"; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
  done
  rm -f "$state"/*.pid.own "$state/munged.pid"
  ;;
*)
  die "usage: $0 start|stop"
  ;;
esac
