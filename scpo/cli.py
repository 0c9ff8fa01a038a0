"""`scpo <command> [--config recipe.yaml] [--setting value ...]`: one command per pipeline stage, and the loop.

The top of the package: it knows every command, so it is also where the catalogue of recipe keys
comes from (every stage's settings, the blocks its labelers / losses / rewards declare, TRL's config
fields), which lets any stage tell another stage's key from a typo without importing the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

from scpo.core.errors import STOP_EXIT, HelpRequested, LoopStop, ScpoError

COMMANDS = {
    "generate-problems": ("scpo.stages.generate", "the model writes new problems from seed problems (ScPO)"),
    "sample": ("scpo.stages.sample", "sample k completions per problem with vLLM"),
    "label": ("scpo.stages.label", "label samples: self-consistency votes, or internal rewards (labeler)"),
    "pairs": ("scpo.stages.pairs", "build preference pairs from labels"),
    "sft": ("scpo.stages.sft", "supervised fine-tuning on seed data with TRL (the loop's M_0 when sft_file is set)"),
    "teacher": (
        "scpo.stages.teacher",
        "the loop's moving-average vote teacher (vote_teacher: ema): alpha M_t + (1 - alpha) teacher",
    ),
    "train": ("scpo.stages.train", "train on pairs with TRL (DPO / IRPO / ScPO / CREAM losses)"),
    "grpo": ("scpo.stages.grpo", "online RL with majority-vote rewards (TTRL) on TRL's GRPOTrainer"),
    "eval": ("scpo.stages.eval", "greedy accuracy, pass@k, maj@k on held-out problems"),
    "model": ("scpo.stages.model", "prepare | show the embedded model; tiny --output DIR for tests"),
    "guard": (
        "scpo.stages.guard",
        "the loop's collapse guard: stop when held-out results stop improving, keep the best",
    ),
    "report": ("scpo.stages.report", "tables and plots of a run: scpo report runs/<run>"),
    "data": ("data_tools.convert", "convert data sets into the problems format"),
    "puzzles": ("data_tools.zebra", "generate zebra logic puzzles with proved-unique solutions (ZebraLogic-style)"),
    "compare": (
        "scpo.loop.compare",
        "several methods on the same problems, rollout budget and held-out eval: one table, one plot",
    ),
    "chain": (
        "scpo.cli:chain",
        "run stages one after another in one process, keeping their vLLM engine (scpo plan prints it)",
    ),
    "plan": ("scpo.loop.plan", "print the loop's stage commands, one per line (what recipes/iterate.sh runs)"),
    "setting": ("scpo.loop.plan:setting_main", "print one resolved loop setting (for scripts)"),
    "slurm": ("scpo.loop.slurm", "submit a run as a chain of Slurm jobs: scpo slurm submit [--dry_run]"),
}


def usage() -> str:
    lines = [
        "usage: scpo <command> [--config recipe.yaml] [--setting value ...]   (scpo <command> --help; scpo --version)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def entry(name: str):
    module, _, function = COMMANDS[name][0].partition(":")
    return getattr(importlib.import_module(module), function or "main")


def known_keys() -> set[str]:
    """Every recipe key some command accepts: the settings of each command, of the registry entries they
    take (labelers, losses, rewards), and TRL's config fields for the trainers (kept as data: no TRL import)."""
    from scpo.core import trl_keys

    keys = set(trl_keys.DPO_CONFIG | trl_keys.GRPO_CONFIG | trl_keys.MODEL_CONFIG | trl_keys.SFT_CONFIG)
    keys |= {f"sft_{name}" for name in trl_keys.SFT_CONFIG}  # scpo sft's own values of TRL's fields
    for name in COMMANDS:
        module = importlib.import_module(COMMANDS[name][0].partition(":")[0])
        settings = getattr(module, "SETTINGS", None)
        classes = [settings] if settings is not None else []
        registry = getattr(module, "EXTENSIONS", None)
        if registry is not None:
            classes += [c.settings for c in registry.builtins() if getattr(c, "settings", None)]
        for cls in classes:
            keys |= {f.name for f in dataclasses.fields(cls)}
    return keys


def wants_verbose(argv: list[str]) -> bool:
    """The `verbose` setting, read before the command parses its own (leading words such as `submit` skipped)."""
    from scpo.core.settings import peek_setting
    from scpo.loop.plan import LoopSettings

    while argv and not argv[0].startswith("-") and not argv[0].endswith((".yaml", ".yml")):
        argv = argv[1:]
    try:
        return peek_setting(argv, "verbose", LoopSettings)
    except ScpoError:
        return False


# What a command writes, besides its settings class's OUTPUTS: a stage given one of these inside a run folder is a
# stage of that run, and waits its turn as one with an iter_dir there does.
WRITES = {"train": ("output_dir",), "grpo": ("output_dir",), "sft": ("output_dir",), "teacher": ("teacher_output",)}


def run_lock_of(name: str, argv: list[str]):
    """A stage with an iter_dir locks the run directory above it (scpo/core/lock.py); one without, given a file it
    writes inside a run folder (`--labels_file runs/<run>/iter_0/labels.jsonl`), locks that run folder; other
    commands do not lock."""
    import contextlib
    from pathlib import Path

    from scpo.core.lock import run_folder_of, run_lock
    from scpo.core.settings import peek

    if name in ("plan", "setting", "slurm", "model", "data", "report") or "-h" in argv or "--help" in argv:
        return contextlib.nullcontext()
    try:
        iter_dir = peek(argv, "iter_dir")
    except ScpoError:
        iter_dir = None
    if iter_dir:
        return run_lock(Path(str(iter_dir)).parent, f"scpo {name}")
    settings = getattr(importlib.import_module(COMMANDS[name][0].partition(":")[0]), "SETTINGS", None)
    for key in (*getattr(settings, "OUTPUTS", ()), *WRITES.get(name, ())):
        try:
            path = peek(argv, key)
        except ScpoError:
            continue  # a bad value: the stage's own parsing names it
        folder = run_folder_of(path) if isinstance(path, str) and path else None
        if folder is not None:
            return run_lock(folder, f"scpo {name}", why=f"setting {key}={path} is inside the run folder {folder}: ")
    return contextlib.nullcontext()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from scpo.core.memory import keep_freed_memory

    keep_freed_memory()  # before any tensor: large ones would each be mapped and faulted in anew
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from scpo import __version__

        print(f"scpo {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"scpo: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        if name == "chain":
            return chain(rest)
        status = run_command(name, rest)
    except KeyboardInterrupt:  # every write is atomic: what finished is kept, the rest resumes
        print(
            f"\nscpo {name}: interrupted; what was finished is kept, and the same command resumes from there",
            file=sys.stderr,
        )
        return 130  # 128 + SIGINT, as a shell reports it
    if status == 0:
        end_process_group()
    return status


def run_command(name: str, rest: list[str]) -> int:
    """One command, its errors as a message and an exit status (0, 1 for an error, STOP_EXIT when it stops the
    loop)."""
    from scpo.core.logs import quiet_third_party

    try:
        quiet_third_party(wants_verbose(rest))
        with run_lock_of(name, rest):
            entry(name)(rest)
    except HelpRequested as e:
        print(f"usage: scpo {name} [--config recipe.yaml] [--setting value ...]\n\n{e}")
        return 0
    except ScpoError as e:
        close_samplers()
        print(f"scpo {name}: error: {e}", file=sys.stderr)
        return 1  # torchrun ends the other ranks
    except LoopStop as e:
        print(f"scpo {name}: {e}", file=sys.stderr)
        return STOP_EXIT
    return 0


CHAIN_SEPARATOR = "--then"


def chain(argv: list[str]) -> int:
    """`scpo chain STAGE ARGS [--then STAGE ARGS ...]`: the stages one after another in this process, under one run
    lock, with one sampling engine kept between them while the model and engine settings stay the same (the loop
    plan chains M_t's held-out eval and its sampling: one engine start instead of two). Before the first stage runs,
    every stage's input files and models are checked (a file an earlier stage writes counts as there), so a typo in
    the last stage fails in seconds. Each stage writes and checks its own manifest as when run alone. Stops at the
    first stage that fails or stops the loop, with its exit status."""
    parts, part = [], []
    for word in argv:
        if word == CHAIN_SEPARATOR:
            parts.append(part)
            part = []
        else:
            part.append(word)
    parts.append(part)
    if parts[0] and parts[0][0] in ("-h", "--help"):
        print(f"usage: scpo chain STAGE ARGS [{CHAIN_SEPARATOR} STAGE ARGS ...]\n\n{chain.__doc__}")
        return 0
    for i, part in enumerate(parts):
        if not part or part[0] not in COMMANDS or part[0] == "chain":
            got = repr(part[0]) if part else "nothing"
            print(
                f"scpo chain: part {i + 1} is {got}, not a stage; usage: scpo chain STAGE ARGS "
                f"[{CHAIN_SEPARATOR} STAGE ARGS ...]",
                file=sys.stderr,
            )
            return 2
    if not any(word in ("-h", "--help") for part in parts for word in part):
        try:
            check_chain_inputs(parts)
        except ScpoError as e:
            print(f"scpo chain: error: {e}; nothing ran", file=sys.stderr)
            return 1
    from scpo.sampling import keep_engine

    keep_engine(True)
    try:
        with run_lock_of(parts[0][0], parts[0][1:]):  # the stages after it find the lock held
            for name, *rest in parts:
                print(f"[chain] scpo {name}", file=sys.stderr, flush=True)
                status = run_command(name, rest)
                if status:
                    return status
    except ScpoError as e:  # the run folder is locked by another run
        print(f"scpo chain: error: {e}", file=sys.stderr)
        return 1
    finally:
        keep_engine(False)
    end_process_group()
    return 0


# What `scpo chain` checks of every stage before the first runs: the files it reads (a setting given, or the
# <iter_dir>/<name> a stage reads when it is not) and the models it loads, unless an earlier stage of the chain
# writes them.
INPUT_FILES = (
    "problems_file",
    "samples_file",
    "labels_file",
    "pairs_file",
    "eval_file",
    "dev_file",
    "guard_file",
    "sft_file",
    "teacher_samples",
    "lora_path",
)
INPUT_MODELS = (
    "model",
    "reference_model",
    "previous_reference_model",
    "generation_model",
    "teacher_model",
    "initial_model",
    "teacher_previous",
    "teacher_current",
)
READS_BY_DEFAULT = {  # the input a stage reads from <iter_dir> when its setting is unset
    "sample": {"problems_file": "problems.jsonl"},
    "grpo": {"problems_file": "problems.jsonl"},
    "generate-problems": {"problems_file": "problems.jsonl"},
    "label": {"samples_file": "samples.jsonl"},
    "pairs": {"labels_file": "labels.jsonl"},
    "train": {"pairs_file": "pairs.jsonl"},
}
WRITES_BY_DEFAULT = {  # an output setting left unset: <iter_dir>/<name>
    "samples_file": "samples.jsonl",
    "labels_file": "labels.jsonl",
    "pairs_file": "pairs.jsonl",
    "eval_output": "eval.json",
    "teacher_output": "teacher",
}


def check_chain_inputs(parts: list[list[str]]) -> None:
    """Every stage's input files and models exist before the first stage runs, unless an earlier stage of the chain
    writes them: a typo in the third stage's path fails in seconds, not after the first stage ran. Reads settings
    only (no model is prepared or loaded); each stage still checks everything else when it runs."""
    from pathlib import Path

    from scpo.core.manifest import iter_file
    from scpo.core.models import model_problem
    from scpo.core.settings import peek, peek_setting

    written: set[Path] = set()
    for number, (name, *rest) in enumerate(parts, 1):
        module = importlib.import_module(COMMANDS[name][0].partition(":")[0])
        cls = module.settings_class(rest) if hasattr(module, "settings_class") else getattr(module, "SETTINGS", None)
        if cls is None:
            continue
        fields = {f.name for f in dataclasses.fields(cls)}

        def value(key: str, cls=cls, fields=fields, rest=rest):
            found = peek_setting(rest, key, cls) if key in fields else None
            return found if isinstance(found, str) and found else None

        iter_dir = value("iter_dir")
        where = f"part {number} (scpo {name})"
        for key in (key for key in INPUT_FILES if key not in getattr(cls, "OUTPUTS", ())):
            path = value(key)
            if path is None and key in READS_BY_DEFAULT.get(name, {}):
                path = iter_file(iter_dir, None, READS_BY_DEFAULT[name][key])
            if path and not Path(path).exists() and Path(path).resolve() not in written:
                default = "" if value(key) else f" (unset: <iter_dir>/{READS_BY_DEFAULT[name][key]})"
                raise ScpoError(
                    f"{where}: setting {key}={path}{default}: file not found, and no earlier part of the chain "
                    "writes it"
                )
        for key in INPUT_MODELS:
            model = value(key)
            if model and Path(model).expanduser().resolve() not in written:
                problem = model_problem(model)
                if problem:
                    raise ScpoError(f"{where}: setting {key}: {problem}")
        for key in getattr(cls, "OUTPUTS", ()):
            written.add(Path(iter_file(iter_dir, value(key), WRITES_BY_DEFAULT.get(key, key))).resolve())
        for key in WRITES.get(name, ()):
            path = value(key) if key in fields else peek(rest, key)  # output_dir is TRL's setting
            path = path if isinstance(path, str) and path else None
            if path or key in WRITES_BY_DEFAULT:
                written.add(Path(iter_file(iter_dir, path, WRITES_BY_DEFAULT.get(key, key))).resolve())


def close_samplers() -> None:
    """An in-process vLLM engine's process groups go with it, before the default group (or its teardown at exit
    prints a traceback)."""
    if (vllm_engine := sys.modules.get("scpo.sampling.vllm_engine")) is not None:
        vllm_engine.close_all()


def end_process_group() -> None:
    """A torch.distributed group left alive can abort the interpreter at exit ("terminate called without an
    active exception"), turning a finished multi-process run into a failed one."""
    close_samplers()
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank leaves while another still talks to it (rank 0 saving the model)
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
