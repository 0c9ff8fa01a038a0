"""The GPU recipes hold the papers' settings: each value is read back through the stage that uses it, per iteration,
and compared with the paper (ScPO arXiv 2411.04109 v3; IRPO arXiv 2404.19733; CREAM's code Raibows/CREAM; TTRL's verl
scripts). docs/papers.md ("recipe vs paper", per paper) lists the same values with their sources."""

from __future__ import annotations

import pytest
from helpers import ROOT

SCPO = {  # ScPO §3, the same for GSM8K and MATH
    "k": 8,
    "temperature": 0.7,
    "top_p": 0.9,
    "resample_n": 8,
    "resample_temperature": 1.2,
    "loss": "scpo",
    "beta": 0.5,
    "alpha": 1.0,
    "learning_rate": 5e-6,
    "lr_scheduler_type": "cosine",
    "num_train_epochs": 10,
    "select_checkpoint": "dev",
    "effective_batch": 16,
    "generation_prompt": "scpo",
    "generation_shots": 4,
    "generation_temperature": 0.7,
    "chat": False,
    "iterations": 2,
}
CASES = {
    "llama3_8b/gsm8k/config_scpo.yaml": {
        **SCPO,
        "tau": [0.5, 0.7],
        "new_problems": [0, 8000],
        "mode": "unsupervised",
        "answer_format": "#### < number >",
    },
    "llama3_8b/math/config_scpo.yaml": {
        **SCPO,
        "tau": [0.5, 0.6],
        "new_problems": [4000, 8000],
        "mode": "unsupervised",
        "answer_format": "The final answer is $\\boxed{",
    },
    "llama3_8b/zebra/config_scpo.yaml": {
        "k": 16,
        "temperature": 0.7,
        "top_p": 0.9,
        "resample_n": 8,
        "resample_temperature": 1.2,
        "loss": "scpo",
        "beta": 0.5,
        "alpha": 1.0,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "effective_batch": 16,
        "tau": [2, 0.5],
        "new_problems": [6000, 6000],
        "mode": "unsupervised",
        "generation_prompt": "zebra",
        "generation_shots": 1,
        "generation_temperature": 0.7,
        "chat": True,
        "iterations": 2,
        "select_checkpoint": "none",
        "answer_format": "zebra",
    },
    "llama3_8b/gsm8k/config_scpo_semi_supervised.yaml": {
        **SCPO,
        "tau": [0.5, 0.7],
        "mode": "semi_supervised",
        "gold_ratio": None,
        "answer_format": "#### < number >",
    },
    "llama3_8b/gsm8k/config_irpo_gold.yaml": {
        "k": 8,
        "mode": "supervised",
        "loss": "irpo",
        "beta": 0.5,
        "alpha": 1.0,
        "learning_rate": 5e-6,
        "num_train_epochs": 10,
        "effective_batch": 16,
        "new_problems": [0, 0],
    },
    "llama2_70b/gsm8k/config_irpo.yaml": {
        "k": 30,
        "temperature_by_iteration": [0.8, 0.8, 1.3, 1.3],
        "labeler": "irpo",
        "irpo_pairs_per_problem": 10,
        "irpo_gold_rationale": True,
        "loss": "irpo",
        "alpha": 1.0,
        "beta": 0.1,
        "learning_rate": 7e-7,
        "effective_batch": 16,
        "iterations": 4,
    },
    # ScPO scaled to the 2-core box: the paper's sampling, tau and loss; epochs, batch and resampling are choices
    "qwen2.5_coder_0.5b/gsm8k/config_scpo.yaml": {
        "k": 8,
        "temperature": 0.7,
        "top_p": 0.9,
        "resample_n": 0,
        "loss": "scpo",
        "beta": 0.5,
        "alpha": 1.0,
        "learning_rate": 5e-6,
        "lr_scheduler_type": "cosine",
        "num_train_epochs": 3,
        "select_checkpoint": "dev",
        "effective_batch": 8,
        "tau": [0.5, 0.7],
        "mode": "unsupervised",
        "chat": True,
        "iterations": 2,
        "new_problems": [0, 0],
    },
    "llama3_8b/gsm8k/config_cream.yaml": {
        "k": 5,
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 768,
        "labeler": "cream",
        "loss": "cream",
        "beta": 0.1,
        "learning_rate": 1e-6,
        "weight_decay": 0.01,
        "num_train_epochs": 1,
        "lr_scheduler_type": "cosine",
        "effective_batch": 32,
        "sft_learning_rate": 5e-6,
        "sft_epochs": 5,
    },
}


def resolve(recipe: str, iteration: int = 0) -> dict:
    """The settings every stage resolves from the recipe at this iteration (TRL's fields through TRL's parser)."""
    from scpo.core.settings import parse_settings
    from scpo.loop.plan import LoopSettings
    from scpo.stages import generate, label, pairs, sample, sft, train

    argv = ["--config", str(ROOT / "recipes" / recipe), "--iteration", str(iteration)]
    out: dict = {}
    loop = parse_settings(LoopSettings, argv)
    s = parse_settings(sample.SampleSettings, argv)
    g = parse_settings(generate.GenerateSettings, argv)
    lab = parse_settings(label.settings_class(argv), argv)
    p = parse_settings(pairs.settings_class(argv), argv)
    t, args, _ = train.parse(argv)
    from scpo.tasks import get_task

    task = get_task(s.task, **s.task_options)
    out.update(
        k=s.k,
        temperature=s.temperature,
        top_p=s.top_p,
        max_tokens=s.max_tokens,
        resample_n=s.resample_n,
        resample_temperature=s.resample_temperature,
        new_problems=s.new_problems,
        tau=p.tau,
        mode=p.mode,
        gold_ratio=p.gold_ratio,
        labeler=lab.labeler,
        loss=t.loss,
        beta=args.beta,
        alpha=t.alpha,
        learning_rate=args.learning_rate,
        lr_scheduler_type=str(args.lr_scheduler_type.value),
        num_train_epochs=args.num_train_epochs,
        weight_decay=args.weight_decay,
        select_checkpoint=t.select_checkpoint,
        generation_prompt=g.generation_prompt,
        generation_shots=g.generation_shots,
        generation_temperature=g.generation_temperature,
        chat=task.chat,
        prompt=str(task.prompt_for({"prompt": "PROBLEM", "houses": 2, "columns": ["Name", "Drink"]})),
        iterations=loop.iterations,
        effective_batch=args.per_device_train_batch_size * args.gradient_accumulation_steps * (t.num_processes or 1),
    )
    if lab.labeler == "irpo":
        out.update(irpo_pairs_per_problem=lab.irpo_pairs_per_problem, irpo_gold_rationale=lab.irpo_gold_rationale)
    if loop.sft_file:
        settings, sft_args, _ = sft.parse(argv)
        out.update(sft_learning_rate=sft_args.learning_rate, sft_epochs=sft_args.num_train_epochs)
    return out


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_recipe_holds_the_papers_settings(recipe):
    want = dict(CASES[recipe])
    per_iteration = {key: want.pop(key) for key in ("tau", "new_problems", "temperature_by_iteration") if key in want}
    answer_format = want.pop("answer_format", None)
    got = resolve(recipe)
    assert {key: got[key] for key in want} == want
    iterations = got["iterations"]
    for key, values in per_iteration.items():
        field = "temperature" if key == "temperature_by_iteration" else key
        assert [resolve(recipe, t)[field] for t in range(iterations)] == values, key
    if answer_format == "zebra":  # ZeroEval's one-shot template (ScPO Appendix D) in the Instruct model's user turn
        from scpo.tasks.zebra import ZEBRA_GRID

        assert got["prompt"].startswith("[{'role': 'user', 'content': '\\n# Example Puzzle")
        assert ZEBRA_GRID.split("{puzzle}")[0].strip()[-20:].replace("\n", "\\n") in got["prompt"]
    elif answer_format:  # ScPO Appendix D's zero-shot prompt, sent as plain text to the base model
        assert answer_format in got["prompt"] and got["prompt"].endswith("A: Let's think step by step.")
        assert "Q: PROBLEM" in got["prompt"]


def test_ttrl_recipe_gives_eight_updates_per_rollout_batch():
    """TTRL's verl scripts: 8 prompts x 64 rollouts per rollout batch, one prompt's 32 trained rollouts per update."""
    import yaml

    from scpo.stages import eval as eval_stage
    from scpo.stages import grpo

    path = ROOT / "recipes" / "qwen2.5_math_7b" / "math500" / "config_ttrl.yaml"
    settings, args, _ = grpo.parse(["--config", str(path)])
    processes = yaml.safe_load(path.read_text())["num_processes"]
    rollouts_per_batch = args.per_device_train_batch_size * processes * args.steps_per_generation
    assert rollouts_per_batch // settings.n_votes == 8  # prompts per rollout batch
    assert args.steps_per_generation // args.gradient_accumulation_steps == 8  # optimizer updates per rollout batch
    trained_per_update = args.per_device_train_batch_size * settings.n_samples // settings.n_votes * processes
    assert trained_per_update == settings.n_samples  # one prompt's trained rollouts
    assert (settings.n_votes, settings.n_samples, args.learning_rate, args.beta, args.temperature) == (
        64,
        32,
        5e-7,
        0.001,
        1.0,
    )
    from scpo.core.settings import parse_settings

    ev = parse_settings(eval_stage.EvalSettings, ["--config", str(path)])
    assert (ev.eval_k, ev.eval_temperature, ev.eval_top_p) == (16, 0.6, 0.95)
