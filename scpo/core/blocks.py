"""Settings blocks that several stages share; a stage's settings class is its own fields plus some of these.

Each block checks its own fields (`__post_init__`, cooperative through `Block`); the comment on a
field's line is its `--help` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scpo.core.errors import ScpoError, did_you_mean
from scpo.core.settings import Block

BACKENDS = ("vllm", "hf")
MAIN_PROCESS_PORT = (
    29500  # the rank-0 node's port when main_process_port is unset (torch.distributed's and accelerate's)
)


@dataclass
class StageBlock(Block):
    iter_dir: str | None = None  # the iteration folder: a stage's files default to <iter_dir>/<name>
    iteration: int = 0  # t: picks the element of per-iteration lists (tau: [0.5, 0.7])
    overwrite: bool = False  # redo the stage even when its manifest says it is done


@dataclass
class ModelBlock(Block):
    model: str = "embedded"  # `embedded` (SmolLM2-135M-Instruct) or a local Hugging Face folder


@dataclass
class TaskBlock(Block):
    task: str = (
        "gsm8k"  # gsm8k | math | numeric | multiple_choice | zebra | free_form, or a dotted path to a Task subclass
    )
    task_options: dict = field(default_factory=dict)  # fields of the task (instruction, system_prompt, ...)


@dataclass
class EngineBlock(Block):
    backend: str = "vllm"  # vllm, or hf (transformers generate, the fallback)
    seed: int = 0  # seeds every request (with its key) and the engine
    dtype: str = "auto"  # model dtype for the engine
    max_model_len: int | None = None  # vLLM context length (default: the model's)
    tensor_parallel_size: int = 1  # GPUs per vLLM engine
    gpu_memory_utilization: float | None = None  # default: 0.9 on GPU, 0.3 on CPU (host RAM for the KV cache)
    enforce_eager: bool = False  # skip vLLM's compilation (faster start, slower tokens)
    top_p_window: int = 256  # CPU: top-p from each row's N largest logits, no vocabulary sort (0: vLLM's own sort)
    vllm_kwargs: dict = field(default_factory=dict)  # any other vllm.LLM(...) argument

    # The window keeps the same number of tokens with the same logits as vLLM's sort; tokens tied at the nucleus'
    # edge may be others (scpo/sampling/nucleus.py), so a run that sets 0 samples anew.
    HASHED_WHEN_SET = ("top_p_window",)

    def __post_init__(self):
        super().__post_init__()
        if self.backend not in BACKENDS:
            raise ScpoError(f"setting backend={self.backend!r}: expected 'vllm' or 'hf'")
        if self.top_p_window < 0:
            raise ScpoError(f"setting top_p_window={self.top_p_window}: must be >= 0 (0: vLLM's own sort)")


@dataclass
class DecodingBlock(Block):
    top_p: float = 0.9  # nucleus sampling
    top_k: int | None = None  # top-k sampling (none: off)
    max_tokens: int = 512  # tokens per completion
    stop: list[str] = field(default_factory=list)  # stop strings

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.top_p <= 1:
            raise ScpoError(f"setting top_p={self.top_p}: 0 < top_p <= 1 is required")
        if self.max_tokens < 1:  # refused before an engine starts (vLLM's own error comes after its start-up)
            raise ScpoError(f"setting max_tokens={self.max_tokens}: a completion needs at least 1 token")
        if self.top_k is not None and self.top_k < 1:
            raise ScpoError(f"setting top_k={self.top_k}: at least 1, or none for no top-k")


@dataclass
class ShardBlock(Block):
    num_shards: int = 1  # work is cut into this many shards, each written atomically and never redone
    shard_index: int | None = None  # only this shard (a Slurm array task); no merge

    def __post_init__(self):
        super().__post_init__()
        if self.num_shards < 1:
            raise ScpoError(f"setting num_shards={self.num_shards}: must be >= 1")
        if self.shard_index is not None and not 0 <= self.shard_index < self.num_shards:
            raise ScpoError(f"setting shard_index={self.shard_index}: must be in [0, num_shards={self.num_shards})")


@dataclass
class LaunchBlock(Block):
    accelerate_config: str | None = (
        None  # cpu | ddp | zero2 | zero3 | zero3_offload | a path: relaunch under accelerate
    )
    num_processes: int | None = None  # processes in all (GPUs x nodes)
    num_machines: int | None = None  # nodes
    machine_rank: int | None = None  # this node's rank
    main_process_ip: str | None = None  # the rank-0 node
    main_process_port: int | None = None  # its port (unset: 29500, MAIN_PROCESS_PORT, where scpo must name one)
    merge_lora: bool = True  # LoRA: save a merged full model (the adapter in adapter/)


# Settings that only place or launch work: never part of what a stage's output depends on.
LAUNCH_KEYS = (
    "accelerate_config",
    "num_processes",
    "num_machines",
    "machine_rank",
    "main_process_ip",
    "main_process_port",
)


GUARD_MODES = ("max", "min")
GUARD_EVAL = "guard_eval.json"  # iter_<t>/: M_t's eval on the guard's dev file (the loop's guard reads it)


@dataclass
class GuardBlock(Block):
    guard_metric: str | None = None  # collapse guard: the logged metric to watch (e.g. heldout/accuracy); unset: off
    guard_mode: str = "max"  # max: higher is better (accuracy); min: lower is better
    guard_patience: int = 3  # stop after this many checks of the metric without an improvement
    guard_min_delta: float = 0.0  # an improvement must beat the best by more than this
    guard_max_drop: float | None = None  # also stop at once when the metric is this much worse than the best
    guard_file: str | None = None  # dev problems with gold answers the guard measures each model on (loop: default
    # dev_file); never the held-out eval_file: the guard chooses the run's model, and a choice on the test set
    # makes the test score look better than it is

    HASHED_WHEN_SET = (
        "guard_metric",
        "guard_mode",
        "guard_patience",
        "guard_min_delta",
        "guard_max_drop",
        "guard_file",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.guard_mode not in GUARD_MODES:
            raise ScpoError(f"setting guard_mode={self.guard_mode!r}: one of {', '.join(GUARD_MODES)}")
        if self.guard_patience < 1:
            raise ScpoError(f"setting guard_patience={self.guard_patience}: must be at least 1")
        if self.guard_min_delta < 0 or (self.guard_max_drop is not None and self.guard_max_drop <= 0):
            raise ScpoError("settings guard_min_delta >= 0 and guard_max_drop > 0 are required")


TEACHERS = ("current", "frozen", "ema")


@dataclass
class TeacherBlock(Block):
    vote_teacher: str = "current"  # whose votes label the answers: current (the model being trained: ScPO, TTRL) | frozen (a fixed model, M_0 unless teacher_model is set: a variant SRT reports as weaker than its self-votes) | ema (a slow moving average of the policy: Co-rewarding-II)
    teacher_model: str | None = None  # frozen: the teacher's local folder (default: the initial model M_0)
    teacher_alpha_start: float = 0.01  # ema: teacher <- alpha x policy + (1 - alpha) x teacher, alpha cosine-annealed from this (Co-rewarding-II's run script: 0.01)
    teacher_alpha_end: float = (
        1e-5  # ... to this at the last update (Co-rewarding-II: 1e-5); one update per GRPO step, or per loop iteration
    )

    HASHED_WHEN_SET = ("vote_teacher", "teacher_model", "teacher_alpha_start", "teacher_alpha_end")

    def __post_init__(self):
        super().__post_init__()
        if self.vote_teacher not in TEACHERS:
            raise ScpoError(
                f"setting vote_teacher={self.vote_teacher!r}{did_you_mean(self.vote_teacher, TEACHERS)}: "
                f"one of {', '.join(TEACHERS)}"
            )
        if self.teacher_model is not None:
            if self.vote_teacher != "frozen":
                raise ScpoError(
                    f"setting teacher_model={self.teacher_model!r} needs vote_teacher: frozen (now "
                    f"{self.vote_teacher!r}; an ema teacher starts from the policy itself)"
                )
            from pathlib import Path

            if self.teacher_model != "embedded" and not (Path(self.teacher_model) / "config.json").exists():
                what = "no config.json in it" if Path(self.teacher_model).is_dir() else "no such folder"
                raise ScpoError(
                    f"setting teacher_model={self.teacher_model!r}: {what} (a local Hugging Face model "
                    "folder, or `embedded`)"
                )
        if not 0 <= self.teacher_alpha_end <= self.teacher_alpha_start <= 1:
            raise ScpoError(
                f"settings teacher_alpha_start={self.teacher_alpha_start}, teacher_alpha_end="
                f"{self.teacher_alpha_end}: need 0 <= end <= start <= 1"
            )
