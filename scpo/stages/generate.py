"""`scpo generate-problems`: M_t writes new problems from random seed problems (ScPO's data augmentation).

Each of `new_problems` candidates is written from `generation_shots` random seed problems shown as
few-shot examples (`generation_prompt`, a template with `{examples}`). A candidate is dropped when
it is empty, cut off by the token limit, or a near-duplicate of a seed problem, a held-out problem
(`eval_file`) or an earlier candidate. The rest go to `<iter_dir>/generated_problems.jsonl`
(id, prompt, origin "generated", seed_ids, iteration); `scpo sample` adds them to the seed problems
when `new_problems > 0`, and like every problem they yield a pair only if their vote reaches tau.
Dropped candidates and why go to `generated_problems.dropped.jsonl`.

`generation_prompt: zebra` is ScPO's ZebraLogic variant: the model rewrites one seed puzzle with other
attributes (a candidate the task cannot read, e.g. without the "There are N houses" layout, is dropped as
`unusable`). `generation_source: generator` writes fresh puzzles from the task's own generator instead
(zebra: `generator_sizes`, proved unique); like the model's candidates they reach training only through the
vote filter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from scpo.core.blocks import DecodingBlock, EngineBlock, ModelBlock, StageBlock, TaskBlock
from scpo.core.errors import ScpoError
from scpo.core.io import check_writable, read_rows, write_rows
from scpo.core.manifest import check_distinct, iter_file, run_once
from scpo.core.models import model_fingerprint, resolve_model
from scpo.core.rows import PROBLEM_FIELDS, problem_text
from scpo.core.settings import asdict, parse_settings
from scpo.problems import (
    DEFAULT_EXAMPLE,
    DEFAULT_PROMPT,
    SCPO_EXAMPLE,
    SCPO_PROMPT,
    ZEBRA_REWRITE_PROMPT,
    NearDuplicates,
    few_shot_prompt,
    parse_problem,
    pick_seeds,
)
from scpo.sampling import Request, make_sampler, prompt_ids, request_seed
from scpo.tasks import get_task

# Named prompts: (template with {examples}, how one example is written, what joins the examples, keep line breaks)
GENERATION_PROMPTS = {
    "scpo": (SCPO_PROMPT, SCPO_EXAMPLE, "\n", False),
    "zebra": (ZEBRA_REWRITE_PROMPT, "{problem}", "\n\n", True),
}
SOURCES = ("model", "generator")


@dataclass
class GenerateSettings(StageBlock, EngineBlock, DecodingBlock, TaskBlock, ModelBlock):
    """scpo generate-problems: M_t writes new problems from random seed problems (ScPO's data augmentation)."""

    problems_file: str | None = None  # the seed problems; default <iter_dir>/problems.jsonl
    new_problems: int = 0  # candidates to write (0: the stage does nothing)
    lora_path: str | None = None  # generate with base model + this PEFT adapter
    generation_prompt: str = DEFAULT_PROMPT  # a template with {examples}, or `scpo` (ScPO Appendix D, "Q:" lines)
    generation_model: str | None = None  # who writes the problems (ScPO §3: Llama-3 8B Instruct); default M_t
    generation_shots: int = 4  # seed problems shown per candidate (ScPO: 4)
    generation_temperature: float = 1.0  # sampling temperature of the candidates
    generation_max_tokens: int = 256  # tokens per candidate; a cut-off candidate is dropped
    dedupe_ngram: int = 3  # token n-grams compared for near-duplicates
    dedupe_threshold: float = 0.6  # Jaccard of token n-grams at or above which a candidate is a duplicate
    eval_file: str | None = None  # held-out problems: never generated into training
    generation_source: str = "model"  # model: M_t writes the candidates; generator: the task's puzzle generator
    generator_sizes: str = "2*2,2*3"  # generation_source generator (zebra): houses*attributes, used in turn

    def __post_init__(self):
        super().__post_init__()
        if self.generation_source not in SOURCES:
            raise ScpoError(f"setting generation_source={self.generation_source!r}: one of {', '.join(SOURCES)}")
        if self.generation_prompt not in GENERATION_PROMPTS and "{examples}" not in self.generation_prompt:
            raise ScpoError("setting generation_prompt: the template needs an {examples} placeholder")
        if self.new_problems < 0 or self.generation_shots < 1 or not 0 < self.dedupe_threshold <= 1:
            raise ScpoError(
                "settings new_problems >= 0, generation_shots >= 1 and 0 < dedupe_threshold <= 1 are required"
            )


def generate(
    seeds: list[dict], held_out: list[dict], sampler, s: GenerateSettings, task=None
) -> tuple[list, list, dict]:
    """(kept problems, dropped candidates with reasons, counts)."""
    texts = [problem_text(p) for p in seeds]
    picks = [pick_seeds(s.seed, s.iteration, i, len(seeds), s.generation_shots) for i in range(s.new_problems)]
    tok = sampler.tokenizer()
    requests = []
    template, example, separator, keep_lines = GENERATION_PROMPTS.get(
        s.generation_prompt, (s.generation_prompt, DEFAULT_EXAMPLE, "\n\n", False)
    )
    for i, chosen in enumerate(picks):
        prompt = few_shot_prompt(template, [texts[j] for j in chosen], example, separator)
        messages = [{"role": "user", "content": prompt}]
        ids = prompt_ids(tok, messages)
        requests.append(
            Request(
                key=f"generate:{s.iteration}:{i}",
                prompt_token_ids=ids,
                n=1,
                temperature=s.generation_temperature,
                seed=request_seed(s.seed, f"generate:{s.iteration}:{i}"),
            )
        )
    outputs = sampler.generate(requests)
    seen = NearDuplicates(
        [(f"seed:{p['id']}", t) for p, t in zip(seeds, texts)]
        + [(f"eval:{p['id']}", problem_text(p)) for p in held_out],
        n=s.dedupe_ngram,
        threshold=s.dedupe_threshold,
    )
    kept, dropped, reasons = [], [], Counter()
    for i, (chosen, (gen,)) in enumerate(zip(picks, outputs)):
        text = parse_problem(gen.text, keep_lines)
        row = {
            "id": f"gen{s.iteration}-{i:05d}",
            "prompt": text,
            "origin": "generated",
            "seed_ids": [seeds[j]["id"] for j in chosen],
            "iteration": s.iteration,
        }
        reason, similar = None, None
        if gen.finish_reason == "length":
            reason = "truncated"
        elif len(text) < 8:
            reason = "empty"
        elif task is not None and not usable(task, text):
            reason = "unusable"
        elif (hit := seen.match(text)) is not None:
            similar, _ = hit
            reason = similar.split(":", 1)[0] if similar.startswith(("seed:", "eval:")) else "generated"
            reason = f"duplicate_of_{reason}"
        if reason:
            reasons[reason] += 1
            dropped.append({**row, "reason": reason, "similar_to": similar, "completion": gen.text})
            continue
        seen.add(row["id"], text)
        kept.append(row)
    counts = {"candidates": len(picks), "kept": len(kept), "dropped": dict(reasons)}
    return kept, dropped, counts


def usable(task, text: str) -> bool:
    """Whether the task can ask the problem (a zebra puzzle needs its houses and characteristics)."""
    try:
        task.prompt_for({"prompt": text})
    except ScpoError:
        return False
    return True


def from_generator(seeds: list[dict], held_out: list[dict], task, s: GenerateSettings) -> tuple[list, list, dict]:
    """Fresh puzzles from the task's generator, none equal to a seed or held-out problem."""
    if not hasattr(task, "new_problems"):
        raise ScpoError(f"setting generation_source: generator: task {s.task!r} has no problem generator (zebra has)")
    taken = {problem_text(p) for p in seeds + held_out}
    rows = task.new_problems(s.new_problems, s.generator_sizes, seed=f"{s.seed}:{s.iteration}", taken=taken)
    for i, row in enumerate(rows):
        row.update(id=f"gen{s.iteration}-{i:05d}", origin="generator", iteration=s.iteration)
    return rows, [], {"candidates": len(rows), "kept": len(rows), "dropped": {}}


def run(s: GenerateSettings) -> dict | None:
    if s.new_problems == 0:
        print("[generate-problems] new_problems is 0: nothing to generate")
        return None
    seeds_file = iter_file(s.iter_dir, s.problems_file, "problems.jsonl")
    out = iter_file(s.iter_dir, None, "generated_problems.jsonl")
    check_distinct({"generated problems": out}, {"problems_file": seeds_file})
    check_writable(out, "generated problems")
    seeds = read_rows(seeds_file, required=PROBLEM_FIELDS)
    held_out = read_rows(s.eval_file, required=PROBLEM_FIELDS) if s.eval_file else []
    task = get_task(s.task, **s.task_options)
    if s.generation_source == "generator":
        config = {
            key: v
            for key, v in asdict(s).items()
            if key in ("new_problems", "generation_source", "generator_sizes", "seed", "iteration")
        }

        def fresh() -> dict:
            kept, _, counts = from_generator(seeds, held_out, task, s)
            write_rows(out, kept)
            print(f"[generate-problems] {out}: {counts['kept']} fresh puzzles from the generator")
            return counts

        return run_once(
            "generate-problems", out, config, [seeds_file] + ([s.eval_file] if s.eval_file else []), fresh, s.overwrite
        )
    model_path = resolve_model(s.generation_model or s.model)  # the writer; M_t's votes filter the problems later
    keys = (
        "new_problems",
        "generation_prompt",
        "generation_shots",
        "generation_temperature",
        "generation_max_tokens",
        "dedupe_ngram",
        "dedupe_threshold",
        "seed",
        "top_p",
        "top_k",
        "iteration",
    )
    config = {key: v for key, v in asdict(s).items() if key in keys} | {
        "model": model_path,
        "model_weights": model_fingerprint(model_path),
    }

    def body() -> dict:
        sampler = make_sampler(
            model_path,
            s,
            top_p=s.top_p,
            top_k=s.top_k,
            max_tokens=s.generation_max_tokens,
            stop=s.stop,
            lora_path=s.lora_path,
        )
        kept, dropped, counts = generate(seeds, held_out, sampler, s, task)
        write_rows(out.replace(".jsonl", ".dropped.jsonl"), dropped)
        write_rows(out, kept)  # last: its manifest marks the stage done
        print(f"[generate-problems] {out}: {counts}")
        return counts

    return run_once(
        "generate-problems", out, config, [seeds_file] + ([s.eval_file] if s.eval_file else []), body, s.overwrite
    )


SETTINGS = GenerateSettings


def main(argv: list[str]) -> dict | None:
    return run(parse_settings(GenerateSettings, argv))
