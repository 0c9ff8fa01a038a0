"""The loop plan: every stage command of a run, in order, computed in one place.

For t = 0 .. iterations-1, model M_t (optionally after writing new problems) samples k answers per
problem, the labeler labels them, pairs are built, and M_{t+1} is trained with M_t as the
reference; every model is evaluated on held-out problems, and the report comes last:

    [sft (M_0 = the model fine-tuned on sft_file) ->] eval M_0 [-> eval M_0 on the guard's dev file]
    for t: [generate-problems ->] [teacher ->] sample -> label -> pairs -> train (M_t -> M_{t+1}) -> eval M_{t+1}
           [-> eval M_{t+1} on the guard's dev file -> guard]
    report

A model is only ever chosen on a dev split: the guard reads each model's eval on `guard_file` (default
`dev_file`), and the plan refuses a guard or dev file that shares a problem with `eval_file`.

With `vote_teacher: frozen | ema`, a teacher samples the same problems before iteration t's labels and its
samples vote (scpo label --teacher_samples): M_0 (or teacher_model) when frozen, from t = 1 (from t = 0 with a
teacher_model); when ema, the average `scpo teacher` makes from M_t and the previous teacher, from t = 1.

`recipes/iterate.sh` runs the plan's commands one after the other (`scpo plan` prints them, one
shell-quoted command per line; `--dry_run` prints them instead of running them). Steps in a row that load the
same model into a vLLM engine (M_t's held-out eval, the guard after it, its new problems and its sampling) are one
`scpo chain` line: one process and one engine start instead of two (each stage still writes its own manifest and
skips what is done). `scpo slurm submit` turns the same steps into a chain of Slurm jobs (scpo/loop/slurm.py),
where they stay apart (the sampling is an array of its own). Each step
names the job it belongs to and the jobs it waits for. Every stage skips what its manifest says is
done, so running the plan again resumes a killed run.

`scpo setting NAME` prints one resolved loop setting (for scripts).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field

from scpo.core.blocks import GUARD_EVAL, GuardBlock, TaskBlock, TeacherBlock
from scpo.core.errors import ScpoError, did_you_mean
from scpo.core.rows import check_disjoint
from scpo.core.settings import argv_settings, parse_settings, peek, peek_setting, set_settings, split_argv
from scpo.labelers import LABELERS


@dataclass
class LoopSettings(GuardBlock, TeacherBlock):
    """The loop: scpo plan / recipes/iterate.sh run every stage of every iteration."""

    OUTPUTS = ("samples_file", "labels_file", "pairs_file", "eval_output")  # no stage's output is another's input

    run_name: str = "scpo"  # the run's folder: <output_root>/<run_name>/iter_<t>/
    output_root: str = "runs"  # where runs go
    iterations: int = 2  # T: models M_1 .. M_T are trained
    model: str = "embedded"  # M_0: `embedded` or a local Hugging Face folder
    initial_reference_model: str | None = (
        None  # the model M_0 was fine-tuned from (CREAM's M_0 before SFT): M_0's reference
    )
    sft_file: str | None = None  # seed SFT data: the loop first fine-tunes `model` on it (scpo sft) and that is M_0
    iteration: int = 0  # (per stage; the plan sets it)
    dry_run: bool = False  # print the plan (or the Slurm submission) instead of running it
    verbose: bool = False  # keep third-party log noise (vLLM, Triton, transformers, FutureWarnings) in every stage

    def __post_init__(self):
        super().__post_init__()
        if self.iterations < 0:
            raise ScpoError(f"setting iterations={self.iterations}: must be >= 0")


def teacher_samples_at(loop: LoopSettings, t: int) -> bool:
    """Whether a vote teacher samples iteration t's problems: ema from t = 1 (at t = 0 it would be M_0 itself),
    frozen from t = 1, or from t = 0 when teacher_model names another model."""
    return bool(loop.vote_teacher == "ema" and t or loop.vote_teacher == "frozen" and (t or loop.teacher_model))


def check_model_choice(loop: LoopSettings, argv: list[str]) -> str | None:
    """What chooses a model is a dev split, never the held-out eval: the guard's file (guard_file, else dev_file)
    and the checkpoint selection's dev_file must share no problem with eval_file. Returns the guard's file."""
    eval_file, dev_file = peek(argv, "eval_file"), peek(argv, "dev_file")
    guard_file = loop.guard_file or dev_file
    if loop.guard_metric:
        check_guard_metric(loop.guard_metric, argv)
        if not guard_file:
            raise ScpoError(
                f"setting guard_metric={loop.guard_metric}: the guard chooses the run's model, so it "
                "watches a dev split, not the held-out eval: set guard_file (or dev_file) to dev "
                "problems with gold answers"
            )
    if eval_file:
        for setting, path in (("guard_file", guard_file if loop.guard_metric else None), ("dev_file", dev_file)):
            if path:
                check_disjoint(str(path), setting, str(eval_file), "eval_file")
    return guard_file


def check_guard_metric(metric: str, argv: list[str]) -> None:
    """The loop's guard watches a metric of eval.json: refused before anything runs when eval does not write it."""
    from scpo.stages.eval import EvalSettings
    from scpo.tasks import get_task

    k = peek_setting(argv, "eval_k", EvalSettings)
    known = ["greedy", "greedy_no_answer"] + (
        ["pass@1", f"pass@{k}", f"maj@{k}", f"maj@{k}_strict", "no_answer"] if k else []
    )
    try:
        task = get_task(peek_setting(argv, "task", TaskBlock), **peek_setting(argv, "task_options", TaskBlock))
        credit = task.partial_credit
    except ScpoError:
        credit = None
    if credit:
        known += [f"greedy_{credit}"] + ([f"{credit}@1", f"maj@{k}_{credit}"] if k else [])
    if metric not in known:
        raise ScpoError(
            f"setting guard_metric={metric!r}: scpo eval does not write it{did_you_mean(metric, known)}; "
            f"the loop's guard watches one of {', '.join(known)}"
        )


SETTINGS = LoopSettings


@dataclass
class Step:
    stage: str  # the `scpo <stage>` command
    args: list[str]
    iteration: int  # t: the iteration whose folder it works in
    job: str  # the Slurm job that runs it (eval-0, sample-0, label-0, train-0, ..., report)
    after: list[str] = field(default_factory=list)  # jobs it waits for (Slurm afterok)
    sharded: bool = False  # sample: a Slurm array of shards, merged by the next job

    def command(self) -> list[str]:
        return ["scpo", self.stage, *self.args]


def plan(argv: list[str]) -> tuple[LoopSettings, list[Step]]:
    """The run's steps in order, with each stage's arguments (the run's settings plus where it works)."""
    loop = parse_settings(LoopSettings, argv)
    argv = without_flag(argv, "dry_run")  # the stages get the run's settings, not the request to print
    guard_file = check_model_choice(loop, argv)
    run_dir = f"{loop.output_root}/{loop.run_name}"

    def at(t: int, model: str) -> list[str]:
        """The run's settings plus where iteration t works and its model M_t."""
        return set_settings(argv, iteration=t, iter_dir=f"{run_dir}/iter_{t}", model=model)

    def guard_eval(t: int, model: str, job: str, after: list[str]) -> list[Step]:
        """M_t on the guard's dev file (iter_<t>/guard_eval.json), in the job of its held-out eval."""
        if not loop.guard_metric:
            return []
        greedy_only = {"eval_k": 0} if loop.guard_metric.startswith("greedy") else {}
        args = set_settings(
            at(t, model), eval_file=guard_file, eval_output=f"{run_dir}/iter_{t}/{GUARD_EVAL}", **greedy_only
        )
        return [Step("eval", args, t, job, after)]

    model, lineage = loop.model, [loop.initial_reference_model] if loop.initial_reference_model else []
    steps = []
    if loop.sft_file:  # M_0 = `model` fine-tuned on the seed data (CREAM's first step); `model` is its reference
        sft_output = f"{run_dir}/sft/model"
        steps.append(
            Step("sft", set_settings(argv, iter_dir=f"{run_dir}/sft", model=model, output_dir=sft_output), 0, "sft")
        )
        model, lineage = sft_output, [loop.initial_reference_model or loop.model]
    after_sft = ["sft"] if loop.sft_file else []
    steps.append(Step("eval", at(0, model), 0, "eval-0", after_sft))
    steps += guard_eval(0, model, "eval-0", after_sft)
    initial = previous_teacher = model
    from scpo.stages.generate import GenerateSettings
    from scpo.stages.label import LabelSettings

    labeler_name = peek_setting(argv, "labeler", LabelSettings)
    if loop.vote_teacher != "current" and not LABELERS.get(labeler_name).takes_teacher_votes:
        raise ScpoError(
            f"setting vote_teacher={loop.vote_teacher}: labeler={labeler_name} does not "
            "label by votes; a vote teacher works with the votes labeler"
        )
    for t in range(loop.iterations):
        args = at(t, model)
        after = ([f"guard-{t}"] if loop.guard_metric else [f"train-{t - 1}"]) if t else after_sft
        if peek_setting(args, "new_problems", GenerateSettings) > 0:  # M_t writes new problems before it samples
            steps.append(Step("generate-problems", args, t, f"generate-{t}", after))
            after = [f"generate-{t}"]
        labeler = LABELERS.get(peek_setting(args, "labeler", LabelSettings))
        labeler.check_recipe(args)  # before anything samples (semantic: the encoder folder)
        label_args, label_after = list(args), [f"sample-{t}"]
        if teacher_samples_at(loop, t):
            # the vote teacher samples the same problems first (its job before the array whose merge the label job runs)
            iter_dir, teacher = f"{run_dir}/iter_{t}", loop.teacher_model or initial
            teacher_args = set_settings(args, samples_file=f"{iter_dir}/teacher_samples.jsonl", resample_n=0)
            if loop.vote_teacher == "ema":  # teacher_t = alpha_t M_t + (1 - alpha_t) teacher_{t-1} (scpo teacher)
                teacher = f"{iter_dir}/teacher"
                teacher_args = set_settings(
                    teacher_args, teacher_previous=previous_teacher, teacher_current=model, model=teacher
                )
                steps.append(Step("teacher", teacher_args, t, f"teacher-{t}", after))
                previous_teacher = teacher
            else:
                teacher_args = set_settings(teacher_args, model=teacher)
            steps.append(Step("sample", teacher_args, t, f"teacher-{t}", after))
            label_args = set_settings(label_args, teacher_samples=f"{iter_dir}/teacher_samples.jsonl")
            label_after.append(f"teacher-{t}")
        steps.append(Step("sample", args, t, f"sample-{t}", after, sharded=True))
        for key, reference in zip(("reference_model", "previous_reference_model"), lineage[: labeler.reference_models]):
            label_args = set_settings(label_args, **{key: reference})
        steps.append(Step("label", label_args, t, f"label-{t}", label_after))
        steps.append(Step("pairs", label_args, t, f"label-{t}", label_after))
        output = f"{run_dir}/iter_{t}/model"
        steps.append(Step("train", set_settings(args, output_dir=output), t, f"train-{t}", [f"label-{t}"]))
        lineage = [model, *lineage]
        model = output
        steps.append(Step("eval", at(t + 1, model), t + 1, f"eval-{t + 1}", [f"train-{t}"]))
        steps += guard_eval(t + 1, model, f"eval-{t + 1}", [f"train-{t}"])
        if loop.guard_metric:  # after M_{t+1}'s eval: stop here when it did not improve (exit 3), keep the best
            steps.append(
                Step(
                    "guard",
                    set_settings(at(t + 1, model), initial_model=initial),
                    t + 1,
                    f"guard-{t + 1}",
                    [f"eval-{t + 1}"],
                )
            )
    evals = [s.job for s in steps if s.stage == "eval"]
    steps.append(Step("report", [run_dir], loop.iterations, "report", evals))
    return loop, steps


ENGINE_STAGES = ("eval", "generate-problems", "sample")  # stages that load their --model into a sampling engine
BETWEEN_ENGINE_STAGES = ("guard",)  # no engine of its own: the chain keeps the engine across it


def chained(steps: list[Step]) -> list[list[str]]:
    """The steps as `scpo` argument lists, with each run of steps on one model's engine (ENGINE_STAGES on the same
    --model, with BETWEEN_ENGINE_STAGES among them) as one `chain STAGE ARGS --then STAGE ARGS ...`."""
    out, run = [], []

    def flush():
        engines = [st for st in run if st.stage in ENGINE_STAGES]
        if len(engines) > 1:
            # the run's tail after its last engine stage is not kept in the chain (nothing there uses the engine)
            last = max(i for i, st in enumerate(run) if st.stage in ENGINE_STAGES)
            parts = [[st.stage, *st.args] for st in run[: last + 1]]
            out.append(["chain", *[word for i, part in enumerate(parts) for word in (["--then"] if i else []) + part]])
            out.extend([st.stage, *st.args] for st in run[last + 1 :])
        else:
            out.extend([st.stage, *st.args] for st in run)
        run.clear()

    for step in steps:
        chainable = step.stage in ENGINE_STAGES + BETWEEN_ENGINE_STAGES
        if run and not (chainable and model_of(step) == model_of(run[0])):
            flush()
        if chainable:
            run.append(step)
        else:
            out.append([step.stage, *step.args])
    flush()
    return out


def model_of(step: Step) -> str | None:
    """The step's --model, read as the stage reads it."""
    return split_argv(step.args)[1].get("model")


def without_flag(argv: list[str], name: str) -> list[str]:
    """argv less `--name`, `--name value` and `--name=value`."""
    drop = {i for start, end, key, _ in argv_settings(argv) if key == name for i in range(start, end)}
    return [a for i, a in enumerate(argv) if i not in drop]


def main(argv: list[str]) -> list[str]:
    """`scpo plan [recipe.yaml] [--setting value ...]`: the run's stage commands, one shell-quoted line each."""
    _, steps = plan(argv)
    lines = [shlex.join(["scpo", *command]) for command in chained(steps)]
    print("\n".join(lines))
    return lines


def setting_main(argv: list[str]) -> str:
    """`scpo setting NAME [--config recipe] [...]`: one resolved loop setting."""
    if not argv or argv[0].startswith("--"):
        raise ScpoError("usage: scpo setting NAME [--config recipe.yaml] [--setting value ...]")
    name, rest = argv[0], argv[1:]
    settings = parse_settings(LoopSettings, rest)
    fields = {f.name for f in dataclasses.fields(LoopSettings)}
    if name not in fields:
        raise ScpoError(f"scpo setting: {name!r} is not a loop setting ({sorted(fields)})")
    value = getattr(settings, name)
    print(value)
    return str(value)
