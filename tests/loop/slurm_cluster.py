"""A real single-node Slurm cluster on localhost for the tests: munge, slurmctld and slurmd (Debian's slurm-wlm).

The configuration and state live in a temporary folder with ports of their own, so a Slurm that the
machine may already run is left alone; clients reach the test cluster through SLURM_CONF. What made
Slurm work in a container (DESIGN.md section 3): proctrack/linuxproc, task/none, cons_tres with
CR_Core_Memory, accounting off, the node line as `slurmd -C` prints it. `cred_expire` is also how
long a requeued job waits before it starts again (120 s by default); 10 s keeps the requeue test short.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MUNGE_PID = Path("/run/munge/munged.pid")


def missing_binaries() -> list[str]:
    return [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue") if not shutil.which(b)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munge_works() -> bool:
    if not shutil.which("munge"):
        return False
    cred = subprocess.run(["munge", "-n"], capture_output=True, check=False)
    return (
        cred.returncode == 0
        and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, check=False).returncode == 0
    )


def start_munge() -> int | None:
    """Starts munged as the munge user unless one answers already; returns the pid it started."""
    if _munge_works():
        return None
    subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=True)
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
    for _ in range(50):
        if _munge_works():
            return int(MUNGE_PID.read_text()) if MUNGE_PID.exists() else None
        time.sleep(0.1)
    raise RuntimeError("munged started but does not answer (munge -n | unmunge)")


def write_config(folder: Path) -> Path:
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    host = node.split()[0].split("=", 1)[1]
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(f"""\
ClusterName=scpotest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


class Cluster:
    def __init__(self, folder: Path):
        self.folder = folder
        self.munge_pid = start_munge()
        self.conf = write_config(folder)
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], env=self.env, check=True)
        deadline = time.time() + 60
        while self.node_state() != "idle":
            if time.time() > deadline:
                raise RuntimeError(f"the test Slurm node did not come up: {self.log_tail()}")
            time.sleep(0.5)

    def slurm(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
        return proc.stdout

    def node_state(self) -> str:
        return self.slurm("sinfo", "-h", "-o", "%T", check=False).strip()

    def job_states(self, ids) -> dict[str, str]:
        """Job (or array task) id -> state, for the jobs Slurm still remembers (MinJobAge)."""
        out = self.slurm("squeue", "-h", "-t", "all", "-o", "%i %T", "-j", ",".join(ids), check=False)
        return dict(line.split() for line in out.splitlines() if line.strip())

    def wait(self, ids, timeout: float) -> dict[str, str]:
        """Waits until none of the jobs is pending, running or being requeued; returns their states."""
        deadline = time.time() + timeout
        while True:
            states = self.job_states(ids)
            if states and not set(states.values()) & {
                "PENDING",
                "RUNNING",
                "CONFIGURING",
                "COMPLETING",
                "REQUEUED",
                "REQUEUE_HOLD",
                "REQUEUE_FED",
                "RESIZING",
            }:
                return states
            if time.time() > deadline:
                raise TimeoutError(f"jobs still active after {timeout} s: {states}")
            time.sleep(1)

    def log_tail(self, n: int = 20) -> str:
        logs = sorted((self.folder / "log").glob("*.log"))
        return "\n".join(f"{p.name}: " + "\n".join(p.read_text().splitlines()[-n:]) for p in logs)

    def stop(self) -> None:
        """Ends what this fixture started, by pid: its jobs, slurmd, slurmctld (and munged if it started it)."""
        self.slurm("scancel", "--full", "-u", "root", check=False)
        for name in ("slurmd", "slurmctld"):
            pid_file = self.folder / f"{name}.pid"
            if pid_file.exists():
                _terminate(int(pid_file.read_text()))
        if self.munge_pid:
            _terminate(self.munge_pid)


def _terminate(pid: int, timeout: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
