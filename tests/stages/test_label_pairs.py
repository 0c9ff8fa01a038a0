"""The label and pairs stages on files: input errors, skips, manifests, settings, output formats."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_jsonl, write_jsonl

from scpo.core.errors import ScpoError
from scpo.stages import label, pairs

ROOT = Path(__file__).resolve().parents[1]


def completions(pid, texts, prompt=None, **extra):
    return [{"id": pid, "prompt": prompt or f"Question {pid}?", "completion": t, **extra} for t in texts]


def standard_samples() -> list[dict]:
    """p-maj: 3x18 vs 20 (pair, w=0.5); p-split: 3x7, 8, unparsed (pair, 3/5); p-none: all unparsed."""
    return (
        completions("p-maj", ["The answer is 18."] * 3 + ["The answer is 20."])
        + completions("p-split", ["The answer is 7."] * 3 + ["So it is 8.", "I give up."])
        + completions("p-none", ["I have no idea.", "Cannot solve this.", "Hmm."])
    )


@pytest.fixture
def samples(tmp_path):
    return write_jsonl(tmp_path / "samples.jsonl", standard_samples())


def run_label(samples_path, labels_path, *extra):
    return label.main(["--samples_file", str(samples_path), "--labels_file", str(labels_path), *extra])


def run_pairs(labels_path, pairs_path, *extra):
    return pairs.main(["--labels_file", str(labels_path), "--pairs_file", str(pairs_path), *extra])


def manifest_of(output) -> dict:
    return json.loads(Path(str(output) + ".manifest.json").read_text())


# --------------------------------------------------------------------------- bad input


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    good = json.dumps({"id": "a", "prompt": "q", "completion": "The answer is 1."})
    path.write_text(f'{good}\n\n{{"id": "a", "prompt": "q", "completion": \n{good}\n')
    with pytest.raises(ScpoError, match=re.escape(f"{path}:3: malformed JSON")):
        run_label(path, tmp_path / "labels.jsonl")
    assert not (tmp_path / "labels.jsonl").exists()


def test_missing_completion_field_names_file_and_line(tmp_path):
    path = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"id": "a", "prompt": "q", "completion": "The answer is 1."},
            {"id": "a", "prompt": "q", "text": "The answer is 2."},
        ],
    )
    with pytest.raises(ScpoError, match=re.escape(f"{path}:2: missing required field 'completion'")):
        run_label(path, tmp_path / "labels.jsonl")


def test_non_string_completion_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "samples.jsonl", [{"id": "a", "prompt": "q", "completion": 5}])
    with pytest.raises(ScpoError, match=re.escape(f"{path}:1: field 'completion' must be str, got int")):
        run_label(path, tmp_path / "labels.jsonl")


def test_bool_id_is_rejected(tmp_path):
    path = write_jsonl(tmp_path / "samples.jsonl", [{"id": True, "prompt": "q", "completion": "1"}])
    with pytest.raises(ScpoError, match=re.escape(f"{path}:1: field 'id'")):
        run_label(path, tmp_path / "labels.jsonl")


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_samples_file(tmp_path, content):
    path = tmp_path / "samples.jsonl"
    path.write_text(content)
    with pytest.raises(ScpoError, match=re.escape(f"{path}: file is empty")):
        run_label(path, tmp_path / "labels.jsonl")


def test_missing_samples_file(tmp_path):
    with pytest.raises(ScpoError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: file not found")):
        run_label(tmp_path / "nope.jsonl", tmp_path / "labels.jsonl")


def test_pairs_needs_labeled_rows(tmp_path, samples):
    # a samples file is not a labels file: the missing field is named with file and line
    with pytest.raises(ScpoError, match=re.escape(f"{samples}:1: missing required field 'answer_group'")):
        run_pairs(samples, tmp_path / "pairs.jsonl")


@pytest.mark.slow  # a subprocess
def test_cli_reports_bad_input_without_traceback(tmp_path):
    path = tmp_path / "samples.jsonl"
    good = '{"id": "a", "prompt": "q", "completion": "The answer is 1."}\n'
    path.write_text(good + good + '{"id": "a", "prompt": oops}\n' + good)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scpo.cli",
            "label",
            "--samples_file",
            str(path),
            "--labels_file",
            str(tmp_path / "labels.jsonl"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("scpo label: error: ")
    assert f"{path}:3: malformed JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "labels.jsonl").exists()


# --------------------------------------------------------------------------- skips and counts


def test_all_unparsed_prompt_is_skipped_and_counted(tmp_path, samples, capsys):
    labels_path, pairs_path = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    lab = run_label(samples, labels_path)
    assert lab["counts"]["prompts"] == 3 and lab["counts"]["completions"] == 12
    assert lab["counts"]["prompts_all_unparsed"] == 1
    assert lab["counts"]["unparsed_completions"] == 4
    assert "no parseable answer" in capsys.readouterr().err

    rows = read_jsonl(labels_path)
    assert len(rows) == 12
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    assert [r["answer"] for r in by_id["p-maj"]] == ["18", "18", "18", "20"]
    assert [r["votes"] for r in by_id["p-maj"]] == [3, 3, 3, 1]
    assert [r["answer_group"] for r in by_id["p-split"]] == [0, 0, 0, 1, -1]
    assert all(r["answer"] is None and r["answer_group"] == -1 for r in by_id["p-none"])
    assert {r["k"] for r in rows} == {4, 5, 3}

    out = run_pairs(labels_path, pairs_path)
    assert out["counts"]["pairs"] == 2
    assert out["counts"]["skipped"] == {"all_unparsed": 1}
    got = {p["id"]: p for p in read_jsonl(pairs_path)}
    assert set(got) == {"p-maj", "p-split"}
    assert got["p-maj"]["weight"] == 0.5 and got["p-maj"]["chosen_answer"] == "18"
    assert got["p-maj"]["rejected_answer"] == "20"
    assert (got["p-split"]["chosen_votes"], got["p-split"]["rejected_votes"], got["p-split"]["k"]) == (3, 1, 5)
    assert got["p-split"]["weight"] == pytest.approx(2 / 5)


def test_zero_pairs_raises_and_writes_nothing(tmp_path):
    samples = write_jsonl(
        tmp_path / "samples.jsonl", completions("a", ["The answer is 3."] * 4) + completions("b", ["no"] * 2)
    )
    labels_path, pairs_path = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    run_label(samples, labels_path)
    with pytest.raises(ScpoError, match="0 pairs from 2 prompts") as info:
        run_pairs(labels_path, pairs_path)
    message = str(info.value)  # the advice follows the cause of each skip
    assert "all samples agreed" in message and "raise the sampling temperature or set resample_n" in message
    assert "no completion had an answer the task could parse" in message and "lower tau" not in message
    assert not pairs_path.exists()
    assert not Path(str(pairs_path) + ".manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pairs")] == []  # no temp file left


def test_below_tau_everywhere_raises(tmp_path, samples):
    run_label(samples, tmp_path / "labels.jsonl")
    with pytest.raises(ScpoError, match=r"fewer than tau=0\.9 of the votes: lower tau or raise k"):
        run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--tau", "0.9")


# --------------------------------------------------------------------------- manifests


def test_rerun_is_skipped_and_changed_settings_rerun(tmp_path, samples, capsys):
    labels_path, pairs_path = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    run_label(samples, labels_path)
    run_pairs(labels_path, pairs_path)
    label_mtime, pairs_mtime = labels_path.stat().st_mtime_ns, pairs_path.stat().st_mtime_ns
    capsys.readouterr()

    again = run_label(samples, labels_path)
    assert "up to date" in capsys.readouterr().out
    assert labels_path.stat().st_mtime_ns == label_mtime
    assert again["counts"]["prompts"] == 3
    again = run_pairs(labels_path, pairs_path)
    assert "up to date" in capsys.readouterr().out
    assert pairs_path.stat().st_mtime_ns == pairs_mtime
    assert again["counts"]["pairs"] == 2

    # a different tau re-runs the pairs stage: p-split (3/5 votes) falls below tau 0.7
    changed = run_pairs(labels_path, pairs_path, "--tau", "0.7")
    assert "up to date" not in capsys.readouterr().out
    assert changed["counts"]["pairs"] == 1 and changed["counts"]["skipped"] == {"all_unparsed": 1, "below_tau": 1}
    assert manifest_of(pairs_path)["config"]["tau"] == 0.7
    ids = [p["id"] for p in read_jsonl(pairs_path)]
    assert ids == ["p-maj"]

    # back to the default: re-runs (the manifest now describes tau 0.7), never appends
    back = run_pairs(labels_path, pairs_path)
    assert back["counts"]["pairs"] == 2
    ids = [p["id"] for p in read_jsonl(pairs_path)]
    assert len(ids) == len(set(ids)) == 2

    # --overwrite forces a run
    run_pairs(labels_path, pairs_path, "--overwrite")
    assert "up to date" not in capsys.readouterr().out


def test_changed_input_reruns_label(tmp_path, samples, capsys):
    labels_path = tmp_path / "labels.jsonl"
    run_label(samples, labels_path)
    write_jsonl(samples, standard_samples() + completions("p-new", ["The answer is 1."] * 2))
    capsys.readouterr()
    out = run_label(samples, labels_path)
    assert "up to date" not in capsys.readouterr().out
    assert out["counts"]["prompts"] == 4


def test_edited_output_is_redone(tmp_path, samples, capsys):
    labels_path, pairs_path = tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl"
    run_label(samples, labels_path)
    run_pairs(labels_path, pairs_path)
    pairs_path.write_text(pairs_path.read_text().splitlines()[0] + "\n")  # a damaged output
    capsys.readouterr()
    run_pairs(labels_path, pairs_path)
    assert "up to date" not in capsys.readouterr().out
    assert len(read_jsonl(pairs_path)) == 2


# --------------------------------------------------------------------------- output formats


def _check_trl_columns(ds):
    for column in ("prompt", "chosen", "rejected", "weight", "chosen_votes", "rejected_votes", "k"):
        assert column in ds.column_names, (column, ds.column_names)
    assert len(ds) == 2
    for row in ds:
        assert isinstance(row["prompt"], list) and row["prompt"][-1]["role"] == "user"
        assert row["prompt"][-1]["content"].startswith(f"Question {row['id']}?")
        assert len(row["chosen"]) == 1 and row["chosen"][0]["role"] == "assistant"
        assert len(row["rejected"]) == 1 and row["rejected"][0]["role"] == "assistant"
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
        assert 0 < row["weight"] <= 1 and row["chosen_votes"] > row["rejected_votes"]


def test_pairs_load_with_datasets_jsonl_and_parquet(tmp_path, samples):
    import datasets

    labels_path = tmp_path / "labels.jsonl"
    run_label(samples, labels_path)
    run_pairs(labels_path, tmp_path / "pairs.jsonl")
    run_pairs(labels_path, tmp_path / "pairs.parquet")
    cache = str(tmp_path / "hf_cache")
    from_json = datasets.load_dataset("json", data_files=str(tmp_path / "pairs.jsonl"), split="train", cache_dir=cache)
    from_parquet = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "pairs.parquet"), split="train", cache_dir=cache
    )
    _check_trl_columns(from_json)
    _check_trl_columns(from_parquet)
    assert from_json.to_list() == from_parquet.to_list()


def test_prompt_messages_pass_through(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    samples = write_jsonl(
        tmp_path / "samples.jsonl", [{"id": 7, "prompt": messages, "completion": t} for t in ["4", "4", "5"]]
    )
    run_label(samples, tmp_path / "labels.jsonl")
    run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl")
    (pair,) = read_jsonl(tmp_path / "pairs.jsonl")
    assert pair["id"] == 7 and pair["prompt"] == messages


def test_logprobs_become_reference_logps(tmp_path):
    texts = ["The answer is 18."] * 3 + ["The answer is 20.", "I give up."]
    rows = []
    for pid in ("a", "b", "c"):
        for j, t in enumerate(texts):
            rows.append({"id": pid, "prompt": "q", "completion": f"{t} (#{j})", "logprob": -1.5 * (j + 1)})
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    logprob_of = {r["completion"]: r["logprob"] for r in rows}
    run_label(samples, tmp_path / "labels.jsonl")
    for name in ("pairs.jsonl", "pairs.parquet"):
        run_pairs(tmp_path / "labels.jsonl", tmp_path / name)
        import pyarrow.parquet as pq

        got = read_jsonl(tmp_path / name) if name.endswith("jsonl") else pq.read_table(tmp_path / name).to_pylist()
        assert len(got) == 3
        for pair in got:
            assert pair["ref_chosen_logps"] == logprob_of[pair["chosen"][0]["content"]]
            assert pair["ref_rejected_logps"] == logprob_of[pair["rejected"][0]["content"]]


def test_no_logprobs_no_reference_columns(tmp_path, samples):
    run_label(samples, tmp_path / "labels.jsonl")
    run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl")
    assert all("ref_chosen_logps" not in p for p in read_jsonl(tmp_path / "pairs.jsonl"))


def test_gold_pairs_in_semi_supervised_mode(tmp_path):
    rows = completions("g", ["The answer is 5."] * 3 + ["The answer is 6."], gold="6") + completions(
        "v", ["The answer is 1."] * 3 + ["The answer is 2."]
    )
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    lab = run_label(samples, tmp_path / "labels.jsonl")
    assert lab["counts"]["prompts_with_gold"] == 1 and lab["counts"]["majority_accuracy"] == 0.0
    out = run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--mode", "semi_supervised")
    got = {p["id"]: p for p in read_jsonl(tmp_path / "pairs.jsonl")}
    assert got["g"]["source"] == "gold" and got["g"]["weight"] == 1.0
    assert got["g"]["chosen_answer"] == "6" and got["g"]["rejected_answer"] == "5"
    assert got["v"]["source"] == "votes" and got["v"]["chosen_answer"] == "1"
    assert out["counts"]["chosen_accuracy"] == 1.0
    # supervised mode: the prompt without gold gives no pair
    out = run_pairs(tmp_path / "labels.jsonl", tmp_path / "sup.jsonl", "--mode", "supervised")
    assert out["counts"]["skipped"] == {"no_gold": 1}


def test_parquet_labels_keep_fields_missing_from_first_row(tmp_path):
    rows = (
        completions("v", ["The answer is 1."] * 3 + ["The answer is 2."])  # no gold, first
        + completions("g", ["The answer is 5."] * 3 + ["The answer is 6."], gold="6")
    )
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    run_label(samples, tmp_path / "labels.parquet")
    out = run_pairs(tmp_path / "labels.parquet", tmp_path / "pairs.jsonl", "--mode", "semi_supervised")
    got = {p["id"]: p for p in read_jsonl(tmp_path / "pairs.jsonl")}
    assert got["g"]["source"] == "gold", out["counts"]


def test_parquet_labels_without_gold_fall_back_to_votes(tmp_path):
    rows = completions("g", ["The answer is 5."] * 3 + ["The answer is 6."], gold="6") + completions(
        "v", ["The answer is 1."] * 3 + ["The answer is 2."]
    )
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    run_label(samples, tmp_path / "labels.parquet")
    out = run_pairs(tmp_path / "labels.parquet", tmp_path / "pairs.jsonl", "--mode", "semi_supervised")
    assert out["counts"]["pairs"] == 2, out["counts"]


def test_parquet_pairs_keep_logps_missing_from_first_pair(tmp_path):
    rows = completions("a", ["The answer is 1."] * 3 + ["The answer is 2."]) + completions(
        "b", ["The answer is 1."] * 3 + ["The answer is 2."], logprob=-2.0
    )
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    run_label(samples, tmp_path / "labels.jsonl")
    run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.parquet")
    import pyarrow.parquet as pq

    got = {p["id"]: p for p in pq.read_table(tmp_path / "pairs.parquet").to_pylist()}
    assert got["b"].get("ref_chosen_logps") == -2.0


# --------------------------------------------------------------------------- settings


def test_recipe_and_command_line_override(tmp_path, samples):
    run_label(samples, tmp_path / "labels.jsonl")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("tau: 0.7\nseed: 3\nweighting: none\n")
    out = run_pairs(tmp_path / "labels.jsonl", tmp_path / "a.jsonl", "--config", str(recipe))
    assert out["config"]["tau"] == 0.7 and out["config"]["seed"] == 3
    assert out["counts"]["pairs"] == 1 and out["counts"]["mean_weight"] == 1.0
    # the command line wins over the recipe; the recipe may also come first without --config
    out = pairs.main(
        [
            str(recipe),
            "--labels_file",
            str(tmp_path / "labels.jsonl"),
            "--pairs_file",
            str(tmp_path / "b.jsonl"),
            "--tau",
            "0.5",
        ]
    )
    assert out["config"]["tau"] == 0.5 and out["config"]["seed"] == 3
    assert out["counts"]["pairs"] == 2
    assert manifest_of(tmp_path / "b.jsonl")["config"]["weighting"] == "none"


@pytest.mark.parametrize("iteration, tau, n_pairs", [(0, 0.5, 2), (1, 0.75, 1), (4, 0.75, 1)])
def test_per_iteration_setting(tmp_path, samples, iteration, tau, n_pairs):
    run_label(samples, tmp_path / "labels.jsonl")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("tau: [0.5, 0.75]\n")
    out = run_pairs(
        tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--config", str(recipe), "--iteration", str(iteration)
    )
    assert manifest_of(tmp_path / "pairs.jsonl")["config"]["tau"] == tau
    assert out["counts"]["pairs"] == n_pairs


def test_per_iteration_list_on_command_line(tmp_path, samples):
    run_label(samples, tmp_path / "labels.jsonl")
    out = run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--tau", "0.5,0.75", "--iteration", "1")
    assert out["config"]["tau"] == 0.75


def test_misspelt_setting_suggests_the_right_one(tmp_path, samples):
    with pytest.raises(ScpoError, match=r"unknown setting 'tua' in the command line \(did you mean 'tau'\?\)"):
        run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--tua", "0.5")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("tua: 0.5\n")
    with pytest.raises(ScpoError, match=re.escape(f"unknown setting 'tua' in recipe {recipe}")):
        run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--config", str(recipe))


def test_other_stages_keys_are_accepted(tmp_path, samples, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "task: gsm8k\nlearning_rate: 1.0e-6\nbeta: 0.1\nsamples_file: elsewhere.jsonl\ntau: 0.5\nrun_name: demo\n"
    )
    run_label(samples, tmp_path / "labels.jsonl", "--config", str(recipe))  # tau and learning_rate: not label's
    capsys.readouterr()
    out = run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--config", str(recipe))
    assert capsys.readouterr().err == ""  # silently: no warning about the other stages' keys
    assert out["counts"]["pairs"] == 2
    assert "learning_rate" not in out["config"] and "samples_file" not in out["config"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--tau", "abc"], "tau"),
        (["--mode", "fully"], "mode"),
        (["stray"], "unexpected argument"),
        (["--config", "/nonexistent/recipe.yaml"], "file not found"),
    ],
)
def test_bad_settings(tmp_path, samples, argv, match):
    with pytest.raises(ScpoError, match=match):
        run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", *argv)


def test_task_options_from_recipe(tmp_path):
    rows = completions("mc", ["The answer is (C)"] * 2 + ["The answer is (D)", "The answer is (B)"])
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: multiple_choice\ntask_options:\n  num_choices: 3\n")
    out = run_label(samples, tmp_path / "labels.jsonl", "--config", str(recipe))
    assert out["config"]["task_options"] == {"num_choices": 3}
    answers = [r["answer"] for r in read_jsonl(tmp_path / "labels.jsonl")]
    assert answers == ["C", "C", None, "B"]  # (D) is beyond 3 choices
    with pytest.raises(ScpoError, match="no option"):
        run_label(samples, tmp_path / "other.jsonl", "--task", "multiple_choice", "--task_options", "{choices: 3}")


def test_pairs_stage_never_writes_negative_weights(tmp_path, samples):
    rows = standard_samples() + completions("p-mostly-garbage", ["The answer is 5.", "no idea", "unsure"])
    write_jsonl(samples, rows)
    run_label(samples, tmp_path / "labels.jsonl")
    run_pairs(tmp_path / "labels.jsonl", tmp_path / "pairs.jsonl", "--tau", "0.25")
    bad = [
        (p["id"], p["weight"], p["chosen_votes"], p["rejected_votes"])
        for p in read_jsonl(tmp_path / "pairs.jsonl")
        if p["weight"] < 0 or p["chosen_votes"] <= p["rejected_votes"]
    ]
    assert not bad
