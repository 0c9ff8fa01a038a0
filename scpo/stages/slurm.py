"""`scpo slurm submit`: a whole run as a chain of Slurm jobs (what slurm/iterate.sh calls).

    eval M_0
    for t: [generate-problems ->] sample (job array, one shard per task) -> label (merge shards, label, pairs) -> train -> eval M_{t+1}
    report (after every eval)

Each job is one of the project's scripts in slurm/ and waits for the one before with
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

from scpo.errors import ScpoError
from scpo.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "slurm"
DEFAULT_PORT = 29500


@dataclass
class SlurmSettings:
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
    dry_run: bool = False
    iteration: int = 0

    def __post_init__(self):
        if self.nodes < 1 or self.gpus_per_node < 0:
            raise ScpoError(f"settings nodes={self.nodes}, gpus_per_node={self.gpus_per_node}: need nodes >= 1 "
                            "and gpus_per_node >= 0")
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise ScpoError(f"setting array_parallelism={self.array_parallelism}: must be >= 1")


@dataclass
class Job:
    name: str  # e.g. sample-0: the stage and the iteration
    kind: str  # the script: slurm/<kind>.sbatch
    options: list[str]
    args: list[str]
    after: list[str] = field(default_factory=list)  # names of the jobs it waits for (afterok)


def sbatch_options(s: SlurmSettings, run_name: str, run_dir: Path, name: str, time: str, gpus: int = 0,
                   nodes: int = 1, array: str | None = None) -> list[str]:
    log = "%x-%A_%a.out" if array else "%x-%j.out"
    opts = [f"--job-name={run_name}-{name}", f"--output={run_dir / 'slurm' / log}", "--open-mode=append",
            f"--chdir={ROOT}", "--export=ALL", f"--time={time}", f"--nodes={nodes}", "--ntasks-per-node=1",
            "--requeue" if s.requeue else "--no-requeue", "--kill-on-invalid-dep=yes"]
    for flag in ("partition", "account", "qos", "cpus_per_task", "mem"):
        if getattr(s, flag) is not None:
            opts.append(f"--{flag.replace('_', '-')}={getattr(s, flag)}")
    if gpus:
        opts.append(f"--gres=gpu:{gpus}")
    if array:
        opts.append(f"--array={array}")
    return opts + shlex.split(s.sbatch_args)


def plan(argv: list[str]) -> tuple[SlurmSettings, list[Job]]:
    """The run's jobs in submission order, with their sbatch options and stage arguments."""
    from scpo.stages.eval import EvalSettings
    from scpo.stages.label import LabelSettings
    from scpo.stages.loop import LoopSettings
    from scpo.stages.sample import SampleSettings
    from scpo.stages.train import TrainSettings

    s = parse_settings(SlurmSettings, argv)
    loop = parse_settings(LoopSettings, argv)
    run_dir = Path(loop.output_root) / loop.run_name
    abs_run_dir = run_dir if run_dir.is_absolute() else ROOT / run_dir

    def opts(name, time, **kw):
        return sbatch_options(s, loop.run_name, abs_run_dir, name, time, **kw)

    def eval_job(t: int, model: str, after: list[str]) -> Job:
        args = [*argv, "--iteration", str(t), "--iter_dir", f"{run_dir}/iter_{t}", "--model", model]
        tp = parse_settings(EvalSettings, args).tensor_parallel_size
        return Job(f"eval-{t}", "eval", opts(f"eval-{t}", s.time_eval, gpus=tp if s.gpus_per_node else 0), args, after)

    model = loop.model
    references = ["", ""]  # M_{t-1}, M_{t-2}: the internal-reward labelers' reference models
    jobs = [eval_job(0, model, [])]
    for t in range(loop.iterations):
        step = [*argv, "--iteration", str(t), "--iter_dir", f"{run_dir}/iter_{t}", "--model", model]
        sample = parse_settings(SampleSettings, step)
        train = parse_settings(TrainSettings, step)
        if s.nodes > 1 and not train.accelerate_config:
            raise ScpoError(f"setting nodes={s.nodes}: training on several nodes needs accelerate_config "
                            "(zero3, zero2 or ddp)")
        array = f"0-{sample.num_shards - 1}" + (f"%{s.array_parallelism}" if s.array_parallelism else "")
        gpus = sample.tensor_parallel_size if s.gpus_per_node else 0  # one vLLM worker per task
        after = [f"train-{t - 1}"] if t else []
        if sample.new_problems:  # the array's shards cut the seed problems plus the new ones
            jobs.append(Job(f"generate-{t}", "generate", opts(f"generate-{t}", s.time_sample, gpus=gpus), step, after))
            after = [f"generate-{t}"]
        jobs.append(Job(f"sample-{t}", "sample", opts(f"sample-{t}", s.time_sample, gpus=gpus, array=array), step,
                        after))
        labeler = parse_settings(LabelSettings, step).labeler
        label_args, label_gpus = step, 0
        if labeler != "votes":  # internal rewards: M_t's reference models, and a GPU for the judge's vLLM engine
            for flag, ref in (("--reference_model", references[0]), ("--previous_reference_model", references[1])):
                label_args = [*label_args, flag, ref] if ref else label_args
            label_gpus = sample.tensor_parallel_size if s.gpus_per_node and labeler in ("judge", "scir") else 0
        jobs.append(Job(f"label-{t}", "label", opts(f"label-{t}", s.time_label, gpus=label_gpus), label_args,
                        [f"sample-{t}"]))
        output = f"{run_dir}/iter_{t}/model"
        port = ["--main_process_port", str(train.main_process_port or DEFAULT_PORT)]
        jobs.append(Job(f"train-{t}", "train", opts(f"train-{t}", s.time_train, gpus=s.gpus_per_node,
                                                     nodes=s.nodes), [*step, "--output_dir", output, *port],
                        [f"label-{t}"]))
        references = [model, references[0]]
        model = output
        jobs.append(eval_job(t + 1, model, [f"train-{t}"]))
    evals = [j.name for j in jobs if j.kind == "eval"]
    jobs.append(Job("report", "report", opts("report", s.time_label), [str(run_dir)], evals))
    return s, jobs


def job_env(s: SlurmSettings) -> dict[str, str]:
    """What the job scripts read from the submitting environment (sbatch --export=ALL)."""
    return {"SCPO_SETUP": s.setup, "SCPO_SRUN_ARGS": s.srun_args}


def sbatch_command(job: Job, ids: dict[str, str]) -> list[str]:
    deps = ["--dependency=afterok:" + ":".join(ids[name] for name in job.after)] if job.after else []
    return ["sbatch", "--parsable", *job.options, *deps, f"slurm/{job.kind}.sbatch", *job.args]


def dry_run(s: SlurmSettings, jobs: list[Job]) -> str:
    """A shell script that would submit the run (job ids as variables), then the job scripts it submits."""
    lines = ["# scpo slurm submit --dry_run: the commands, run from " + str(ROOT),
             "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in job_env(s).items())]
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
        proc = subprocess.run(sbatch_command(job, ids), cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False)
        if proc.returncode:
            raise ScpoError(f"sbatch for job {job.name} failed: {proc.stderr.strip()} "
                            f"(submitted so far: {ids}; check the slurm settings)")
        ids[job.name] = proc.stdout.strip().split(";")[0]
        print(f"[slurm] {job.name}: {ids[job.name]}", flush=True)
    return ids


def without_flag(argv: list[str], name: str) -> list[str]:
    """argv less `--name`, `--name value` and `--name=value`."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg.split("=", 1)[0] in (f"--{name}", f"--{name.replace('_', '-')}"):
            skip = "=" not in arg and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        else:
            out.append(arg)
    return out


def main(argv: list[str]) -> dict[str, str] | None:
    if not argv or argv[0] != "submit":
        raise ScpoError("usage: scpo slurm submit [--config recipe.yaml] [--setting value ...] [--dry_run]")
    dry = parse_settings(SlurmSettings, argv[1:]).dry_run
    s, jobs = plan(without_flag(argv[1:], "dry_run"))  # the jobs get the run's settings, not the request to print
    if dry:
        print(dry_run(s, jobs))
        return None
    return submit(s, jobs)
