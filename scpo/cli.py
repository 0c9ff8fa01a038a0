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


def run_lock_of(name: str, argv: list[str]):
    """A stage with an iter_dir locks the run directory above it (scpo/core/lock.py); other commands do not."""
    import contextlib
    from pathlib import Path

    from scpo.core.lock import run_lock
    from scpo.core.settings import peek

    if name in ("plan", "setting", "slurm", "model", "data", "report") or "-h" in argv or "--help" in argv:
        return contextlib.nullcontext()
    try:
        iter_dir = peek(argv, "iter_dir")
    except ScpoError:
        iter_dir = None
    if not iter_dir:
        return contextlib.nullcontext()
    return run_lock(Path(str(iter_dir)).parent, f"scpo {name}")


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
    plan chains M_t's held-out eval and its sampling: one engine start instead of two). Each stage writes and
    checks its own manifest as when run alone. Stops at the first stage that fails or stops the loop, with its exit
    status."""
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
