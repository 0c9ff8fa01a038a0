"""`scpo <stage> [--config recipe.yaml] [--setting value ...]`: one command per pipeline stage."""

from __future__ import annotations

import importlib
import sys

from scpo.errors import ScpoError

COMMANDS = {
    "generate-problems": ("scpo.stages.generate", "the model writes new problems from seed problems (ScPO)"),
    "sample": ("scpo.stages.sample", "sample k completions per problem with vLLM"),
    "label": ("scpo.stages.label", "extract answers and count self-consistency votes"),
    "pairs": ("scpo.stages.pairs", "build ScPO / gold preference pairs from labels"),
    "train": ("scpo.stages.train", "train on pairs with TRL (DPO / IRPO / ScPO losses)"),
    "grpo": ("scpo.stages.grpo", "online RL with majority-vote rewards (TTRL) on TRL's GRPOTrainer"),
    "eval": ("scpo.stages.eval", "greedy accuracy, pass@k, maj@k on held-out problems"),
    "model": ("scpo.stages.model", "prepare | show the embedded model; tiny --output DIR for tests"),
    "report": ("scpo.stages.report", "tables and plots of a run: scpo report runs/<run>"),
    "data": ("data_tools.convert", "convert data sets into the problems format"),
    "setting": ("scpo.stages.loop", "print one resolved loop setting (for scripts)"),
    "slurm": ("scpo.stages.slurm", "submit a run as a chain of Slurm jobs: scpo slurm submit [--dry_run]"),
}


def usage() -> str:
    lines = ["usage: scpo <command> [--config recipe.yaml] [--setting value ...]", "", "commands:"]
    lines += [f"  {name:<17} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"scpo: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("scpo.stages"):
            print(f"scpo {name}: not available in this version", file=sys.stderr)
            return 2
        raise
    try:
        module.main(rest)
    except ScpoError as e:
        print(f"scpo {name}: error: {e}", file=sys.stderr)
        return 1  # torchrun ends the other ranks
    end_process_group()
    return 0


def end_process_group() -> None:
    """A torch.distributed group left alive can abort the interpreter at exit ("terminate called without an
    active exception"), turning a finished multi-process run into a failed one."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank leaves while another still talks to it (rank 0 saving the model)
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
