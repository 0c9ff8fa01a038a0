"""`scpo slurm submit`: a whole run as a chain of Slurm jobs (what slurm/iterate.sh calls).

The jobs are the loop plan's steps (scpo/loop/plan.py), grouped by the job each step names:

    eval M_0
    for t: [generate-problems ->] sample (job array, one shard per task) -> label (merge shards, label, pairs) -> train -> eval M_{t+1}
    report (after every eval)

A sharded step (sampling) becomes a job array of its shards, and its merge runs first in the job
after it. A job runs its stages with slurm/stages.sbatch, the array with slurm/sample.sbatch and
training on every node with slurm/train.sbatch; each waits for the jobs its steps wait for with
`--dependency=afterok`; if one fails, those after it are cancelled (`--kill-on-invalid-dep`). Every
job is `--requeue`-able and every stage skips what its manifests say is done (a finished shard is
never redone), so a preempted job resumes when Slurm requeues it, and after a failure the same
command resubmits the run and it resumes where it stopped. `--dry_run` prints the sbatch commands
and the scripts instead of submitting.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scpo.core.blocks import MAIN_PROCESS_PORT
from scpo.core.errors import HelpRequested, ScpoError
from scpo.core.settings import (
    Block,
    compose,
    help_text,
    parse_settings,
    peek_setting,
    set_settings,
    split_argv,
    wants_help,
)
from scpo.labelers import LABELERS
from scpo.loop.plan import LoopSettings, Step, plan
from scpo.stages.label import LabelSettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "slurm"


@dataclass
class SlurmSettings(Block):
    """scpo slurm submit: a run as a chain of Slurm jobs."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1  # training nodes; sampling and eval jobs take one GPU group each
    gpus_per_node: int = 8  # 0: CPU-only jobs (no --gres)
    cpus_per_task: int | None = None
    mem: str | None = None  # sbatch --mem, per node (e.g. 64G; 0 = all of it)
    time_sample: str = "04:00:00"  # per array task (one shard)
    time_label: str = "01:00:00"  # merge + label + pairs, and the report
    time_train: str = "12:00:00"
    time_eval: str = "02:00:00"
    array_parallelism: int | None = None  # at most this many sampling tasks at once (--array=0-N%P)
    setup: str = "source .venv/bin/activate"  # bash run first in every job, in the repository (venv, modules)
    srun_args: str = ""  # extra srun arguments for every step, e.g. a container: --container-image=...
    sbatch_args: str = ""  # extra sbatch arguments for every job, e.g. --constraint=h100 --exclusive
    requeue: bool = True
    iteration: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.nodes < 1 or self.gpus_per_node < 0:
            raise ScpoError(
                f"settings nodes={self.nodes}, gpus_per_node={self.gpus_per_node}: need nodes >= 1 "
                "and gpus_per_node >= 0"
            )
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise ScpoError(f"setting array_parallelism={self.array_parallelism}: must be >= 1")


SETTINGS = SlurmSettings


@dataclass
class Job:
    name: str  # e.g. sample-0: the stage and the iteration
    kind: str  # the script: slurm/<kind>.sbatch (stages: the stages in `stages`, one after the other)
    options: list[str]
    args: list[str]
    after: list[str] = field(default_factory=list)  # names of the jobs it waits for (afterok)
    stages: list[str] = field(default_factory=list)  # kind "stages": the `scpo` stages it runs


def sbatch_options(
    s: SlurmSettings,
    run_name: str,
    run_dir: Path,
    name: str,
    time: str,
    gpus: int = 0,
    nodes: int = 1,
    array: str | None = None,
) -> list[str]:
    log = "%x-%A_%a.out" if array else "%x-%j.out"
    opts = [
        f"--job-name={run_name}-{name}",
        f"--output={run_dir / 'slurm' / log}",
        "--open-mode=append",
        f"--chdir={ROOT}",
        "--export=ALL",
        f"--time={time}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        "--requeue" if s.requeue else "--no-requeue",
        "--kill-on-invalid-dep=yes",
    ]
    for flag in ("partition", "account", "qos", "cpus_per_task", "mem"):
        if getattr(s, flag) is not None:
            opts.append(f"--{flag.replace('_', '-')}={getattr(s, flag)}")
    if gpus:
        opts.append(f"--gres=gpu:{gpus}")
    if array:
        opts.append(f"--array={array}")
    return opts + shlex.split(s.sbatch_args)


def slurm_jobs(argv: list[str]) -> tuple[SlurmSettings, list[Job]]:
    """The loop plan as jobs in submission order, with their sbatch options and stage arguments."""
    from scpo.stages.sample import SampleSettings
    from scpo.stages.train import TrainSettings

    s = parse_settings(SlurmSettings, argv)
    loop, steps = plan(argv)
    run_dir = Path(loop.output_root) / loop.run_name
    abs_run_dir = run_dir if run_dir.is_absolute() else ROOT / run_dir

    def opts(name, time, **kw):
        return sbatch_options(s, loop.run_name, abs_run_dir, name, time, **kw)

    def engine_gpus(args: list[str]) -> int:
        """One vLLM engine's GPUs (tensor_parallel_size), or none for CPU-only jobs."""
        return parse_settings(SampleSettings, args).tensor_parallel_size if s.gpus_per_node else 0

    by_job: dict[str, list[Step]] = {}
    for step in steps:
        by_job.setdefault(step.job, []).append(step)
    jobs, merge = [], None  # merge: a sharded step whose shards the next job merges first
    for name, group in by_job.items():
        head = group[0]
        args = job_args(name, group)
        after = list(dict.fromkeys(a for step in group for a in step.after if a != name))
        if head.sharded:
            sample = parse_settings(SampleSettings, args)
            array = f"0-{sample.num_shards - 1}" + (f"%{s.array_parallelism}" if s.array_parallelism else "")
            jobs.append(
                Job(name, "sample", opts(name, s.time_sample, gpus=engine_gpus(args), array=array), args, after)
            )
            merge = head
            continue
        stages = [step.stage for step in group]
        if merge is not None:  # the array's shards are merged by the job after it
            if not contains(args, merge.args):
                raise ScpoError(f"job {name}: merges {merge.job} but runs with other settings")
            stages, merge = [merge.stage, *stages], None
        if head.stage in ("train", "sft"):
            train = parse_settings(TrainSettings, args)
            if s.nodes > 1 and not train.accelerate_config:
                raise ScpoError(
                    f"setting nodes={s.nodes}: training on several nodes needs accelerate_config (zero3, zero2 or ddp)"
                )
            port = train.main_process_port or MAIN_PROCESS_PORT  # the same on every node
            jobs.append(
                Job(
                    name,
                    "train",
                    opts(name, s.time_train, gpus=s.gpus_per_node, nodes=s.nodes),
                    set_settings(args, main_process_port=port),
                    after,
                    [head.stage],
                )
            )
        elif head.stage == "eval":
            jobs.append(Job(name, "stages", opts(name, s.time_eval, gpus=engine_gpus(args)), args, after, stages))
        elif name.startswith("teacher-"):  # [the moving-average teacher ->] the vote teacher's samples: an engine
            jobs.append(Job(name, "stages", opts(name, s.time_sample, gpus=engine_gpus(args)), args, after, stages))
        elif head.stage == "generate-problems":
            jobs.append(Job(name, "stages", opts(name, s.time_sample, gpus=engine_gpus(args)), args, after, stages))
        elif head.stage == "report":
            jobs.append(Job(name, "stages", opts(name, s.time_label), args, after, stages))
        else:  # merge + label + pairs: a GPU only for a labeler that runs an engine (a judge)
            labeler = LABELERS.get(peek_setting(args, "labeler", LabelSettings))
            jobs.append(
                Job(
                    name,
                    "stages",
                    opts(name, s.time_label, gpus=engine_gpus(args) if labeler.needs_gpu else 0),
                    args,
                    after,
                    stages,
                )
            )
    return s, jobs


def job_args(name: str, steps: list[Step]) -> list[str]:
    """One argument list for all the stages of a job: the first step's, which holds every other step's
    (a stage passes over the settings of another stage)."""
    args = steps[0].args
    for step in steps[1:]:
        if not contains(args, step.args):
            raise ScpoError(
                f"job {name}: `scpo {step.stage}` has settings that `scpo {steps[0].stage}` lacks; "
                "one job runs one argument list"
            )
    return args


def contains(args: list[str], part: list[str]) -> bool:
    """Whether every setting of `part` is in `args` with the same value (both read as a stage reads them)."""
    (have_config, have), (config, wanted) = split_argv(args), split_argv(part)
    return config in (None, have_config) and all(have.get(k) == v for k, v in wanted.items())


def job_env(s: SlurmSettings) -> dict[str, str]:
    """What the job scripts read from the submitting environment (sbatch --export=ALL)."""
    return {"SCPO_SETUP": s.setup, "SCPO_SRUN_ARGS": s.srun_args}


def sbatch_command(job: Job, ids: dict[str, str]) -> list[str]:
    deps = ["--dependency=afterok:" + ":".join(ids[name] for name in job.after)] if job.after else []
    stages = [",".join(job.stages)] if job.kind in ("stages", "train") else []
    return ["sbatch", "--parsable", *job.options, *deps, f"slurm/{job.kind}.sbatch", *stages, *job.args]


def dry_run(s: SlurmSettings, jobs: list[Job]) -> str:
    """A shell script that would submit the run (job ids as variables), then the job scripts it submits."""
    lines = [
        "# scpo slurm submit --dry_run: the commands, run from " + str(ROOT),
        "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in job_env(s).items()),
    ]
    ids = {job.name: "$" + job.name.replace("-", "_") for job in jobs}
    for job in jobs:
        cmd = " ".join(a if a.startswith("--dependency=") else shlex.quote(a) for a in sbatch_command(job, ids))
        lines.append(f'{job.name.replace("-", "_")}="$({cmd})"')
    for kind in dict.fromkeys(["job", *(job.kind for job in jobs)]):
        path = SCRIPTS / f"{kind}.{'sh' if kind == 'job' else 'sbatch'}"
        lines += ["", f"# ---- {path.relative_to(ROOT)} ----", path.read_text().rstrip()]
    return "\n".join(lines)


def submit(s: SlurmSettings, jobs: list[Job]) -> dict[str, str]:
    if not shutil.which("sbatch"):
        raise ScpoError("sbatch not found: submit from a Slurm login node (or see the jobs with --dry_run)")
    env = {**os.environ, **job_env(s)}
    ids: dict[str, str] = {}
    for job in jobs:
        log = next(o for o in job.options if o.startswith("--output=")).split("=", 1)[1]
        Path(log).parent.mkdir(parents=True, exist_ok=True)  # sbatch does not create it
        proc = subprocess.run(sbatch_command(job, ids), cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise ScpoError(
                f"sbatch for job {job.name} failed: {proc.stderr.strip()} "
                f"(submitted so far: {ids}; check the slurm settings)"
            )
        ids[job.name] = proc.stdout.strip().split(";")[0]
        print(f"[slurm] {job.name}: {ids[job.name]}", flush=True)
    return ids


def main(argv: list[str]) -> dict[str, str] | None:
    if wants_help(argv):
        raise HelpRequested(help_text(compose("SlurmSettings", (SlurmSettings, LoopSettings))))
    if not argv or argv[0] != "submit":
        raise ScpoError("usage: scpo slurm submit [--config recipe.yaml] [--setting value ...] [--dry_run]")
    dry = parse_settings(LoopSettings, argv[1:]).dry_run
    s, jobs = slurm_jobs(argv[1:])
    if dry:
        print(dry_run(s, jobs))
        return None
    return submit(s, jobs)
