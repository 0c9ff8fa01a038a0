"""data_tools.convert: built-in sources on the real data, dedupe, deterministic splits, generic inputs."""

from __future__ import annotations

import json
import random
import re

import pytest
from helpers import data_file, read_jsonl, write_jsonl

from data_tools.convert import SOURCES, main
from scpo.core.errors import ScpoError


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path_factory, monkeypatch):
    """Keep the `datasets` cache of converted files out of the user's home."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.getbasetemp() / "hf_datasets_cache")


def convert(input_path, out_dir, *extra) -> tuple[dict, list[dict], list[dict]]:
    counts = main(["--input", str(input_path), "--output_dir", str(out_dir), *extra])
    train = read_jsonl(out_dir / "train.jsonl")
    dev = read_jsonl(out_dir / "dev.jsonl") if (out_dir / "dev.jsonl").exists() else []
    return counts, train, dev


def _question_key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# --------------------------------------------------------------------------- built-in sources


def test_gsm8k_test_set(tmp_path):
    src = data_file("gsm8k/test.jsonl")
    counts, train, dev = convert(src, tmp_path, "--source", "gsm8k")
    assert counts == {
        "input_rows": 1319,
        "duplicates_dropped": 0,
        "empty_prompts_dropped": 0,
        "without_gold": 0,
        "train": 1319,
    }
    assert len(train) == 1319 and dev == []
    assert train[0]["gold"] == "18" and train[0]["task"] == "gsm8k"
    assert train[0]["prompt"].startswith("Janet")
    assert len({p["id"] for p in train}) == 1319
    raw = read_jsonl(src)
    golds = {p["gold"] for p in train}
    assert all("," not in g and "#" not in g for g in golds)
    assert [p["gold"] for p in train[:5]] == [r["answer"].split("####")[-1].strip().replace(",", "") for r in raw[:5]]
    manifest = json.loads((tmp_path / "data.manifest.json").read_text())
    assert manifest["counts"]["train"] == 1319


def test_math500(tmp_path):
    src = data_file("math500/test.jsonl")
    raw = read_jsonl(src)
    counts, train, _ = convert(src, tmp_path, "--source", "math500")
    assert counts["train"] == 500 and counts["duplicates_dropped"] == 0
    assert [p["id"] for p in train] == [r["unique_id"] for r in raw]
    assert [p["gold"] for p in train] == [r["answer"] for r in raw]
    assert {p["task"] for p in train} == {"math"}


def test_svamp(tmp_path):
    src = data_file("svamp/test.jsonl")
    raw = read_jsonl(src)
    counts, train, _ = convert(src, tmp_path, "--source", "svamp")
    assert counts["input_rows"] == 1000
    first = train[0]
    assert first["id"] == raw[0]["ID"] == "chal-777"
    assert first["gold"] == "145" and first["task"] == "numeric"
    assert first["prompt"] == (
        "There are 87 oranges and 290 bananas in Philip's collection. If the bananas are organized into "
        "2 groups and oranges are organized into 93 groups. How big is each group of bananas?"
    )
    # a body already ending in a full stop is joined with a single space
    ends_with_stop = next(r for r in raw if r["Body"].strip().endswith("."))
    problem = next(p for p in train if p["id"] == ends_with_stop["ID"])
    assert problem["prompt"] == f"{ends_with_stop['Body'].strip()} {ends_with_stop['Question'].strip()}"


@pytest.mark.parametrize("name", ["singleop", "addsub", "multiarith"])
def test_mawps(tmp_path, name):
    src = data_file(f"mawps/{name}.jsonl")
    raw = read_jsonl(src)  # note: the files have no final newline, so `wc -l` shows one row fewer
    counts, train, _ = convert(src, tmp_path, "--source", "mawps")
    distinct = len({_question_key(r["input"]) for r in raw})
    assert counts["input_rows"] == len(raw)
    assert counts["train"] == distinct and counts["duplicates_dropped"] == len(raw) - distinct
    assert {p["task"] for p in train} == {"numeric"}
    assert train[0]["gold"] == format(float(raw[0]["target"]), "g")
    first_target = {}
    for r in raw:
        first_target.setdefault(_question_key(r["input"]), float(r["target"]))
    for p in train:
        target = first_target[_question_key(p["prompt"])]
        if target.is_integer():
            assert p["gold"] == str(int(target)), (p, target)  # 145.0 -> '145'
        else:
            assert float(p["gold"]) == target, (p, target)


def test_aime24(tmp_path):
    src = data_file("aime24/test.jsonl")
    raw = read_jsonl(src)
    counts, train, _ = convert(src, tmp_path, "--source", "aime24")
    assert counts["train"] == 30
    assert [p["id"] for p in train] == [str(r["id"]) for r in raw]
    assert train[0]["gold"] == "204"
    assert all(re.fullmatch(r"\d+", p["gold"]) for p in train)


def test_amc23(tmp_path):
    src = data_file("amc23/test.jsonl")
    counts, train, _ = convert(src, tmp_path, "--source", "amc23")
    assert counts["train"] == 40
    assert train[0]["gold"] == "27" and train[0]["id"] == "0"
    assert all(not p["gold"].endswith(".0") for p in train)


def test_unknown_source(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"question": "q?", "answer": "1"}])
    with pytest.raises(ScpoError, match="unknown source 'gsm9k'"):
        convert(path, tmp_path / "out", "--source", "gsm9k")
    assert set(SOURCES) == {"gsm8k", "math500", "svamp", "mawps", "aime24", "amc23"}


# --------------------------------------------------------------------------- dedupe and splits


def test_dedupe_ignores_whitespace_and_case(tmp_path):
    rows = [
        {"question": "How many apples are left?", "answer": "3"},
        {"question": "  how   many Apples\tare left? ", "answer": "4"},
        {"question": "How many pears are left?", "answer": "5"},
        {"question": "HOW MANY APPLES ARE LEFT?", "answer": "6"},
    ]
    counts, train, _ = convert(write_jsonl(tmp_path / "dups.jsonl", rows), tmp_path / "out")
    assert counts == {
        "input_rows": 4,
        "duplicates_dropped": 2,
        "empty_prompts_dropped": 0,
        "without_gold": 0,
        "train": 2,
    }
    assert [(p["prompt"], p["gold"]) for p in train] == [
        ("How many apples are left?", "3"),
        ("How many pears are left?", "5"),
    ]  # the first kept
    ids = [p["id"] for p in train]  # a hash of the question: independent of row order
    assert all(i.startswith("dups-") for i in ids) and len(set(ids)) == 2


def _id_rows(n=120):
    return [{"uid": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(n)]


def test_split_dev_size_is_exact_and_deterministic(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _id_rows())
    counts, train, dev = convert(path, tmp_path / "a", "--id_field", "uid", "--dev_size", "17", "--seed", "5")
    assert counts["train"] == 103 and counts["dev"] == 17 and len(dev) == 17
    assert {p["id"] for p in train}.isdisjoint({p["id"] for p in dev})
    assert len(train) + len(dev) == 120
    _, train2, dev2 = convert(path, tmp_path / "b", "--id_field", "uid", "--dev_size", "17", "--seed", "5")
    assert (train2, dev2) == (train, dev)
    assert (tmp_path / "a" / "dev.jsonl").read_bytes() == (tmp_path / "b" / "dev.jsonl").read_bytes()
    _, _, dev_other_seed = convert(path, tmp_path / "c", "--id_field", "uid", "--dev_size", "17", "--seed", "6")
    assert {p["id"] for p in dev_other_seed} != {p["id"] for p in dev}


def test_split_does_not_depend_on_row_order(tmp_path):
    rows = _id_rows()
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    a = write_jsonl(tmp_path / "in.jsonl", rows)
    b = write_jsonl(tmp_path / "shuffled" / "in.jsonl", shuffled)
    for extra in (["--dev_size", "10"], ["--dev_fraction", "0.25"]):
        _, _, dev_a = convert(a, tmp_path / "out_a", "--id_field", "uid", *extra)
        _, _, dev_b = convert(b, tmp_path / "out_b", "--id_field", "uid", *extra)
        assert dev_a and {p["id"] for p in dev_a} == {p["id"] for p in dev_b}
    # a fraction keeps each problem's side even when other rows are removed
    _, _, dev_half = convert(
        write_jsonl(tmp_path / "half" / "in.jsonl", rows[:60]),
        tmp_path / "out_c",
        "--id_field",
        "uid",
        "--dev_fraction",
        "0.25",
    )
    assert {p["id"] for p in dev_half} == {p["id"] for p in dev_a if int(p["id"][1:]) < 60}


def test_split_of_real_gsm8k_is_deterministic(tmp_path):
    src = data_file("gsm8k/test.jsonl")
    _, train, dev = convert(src, tmp_path / "a", "--source", "gsm8k", "--dev_size", "100")
    _, train2, dev2 = convert(src, tmp_path / "b", "--source", "gsm8k", "--dev_size", "100")
    assert len(dev) == 100 and len(train) == 1219
    assert dev == dev2 and train == train2


def test_split_without_id_field_does_not_depend_on_row_order(tmp_path):
    raw = read_jsonl(data_file("gsm8k/test.jsonl"))[:200]
    shuffled = raw[:]
    random.Random(1).shuffle(shuffled)
    _, _, dev_a = convert(
        write_jsonl(tmp_path / "a.jsonl", raw), tmp_path / "out_a", "--source", "gsm8k", "--dev_size", "20"
    )
    _, _, dev_b = convert(
        write_jsonl(tmp_path / "b.jsonl", shuffled), tmp_path / "out_b", "--source", "gsm8k", "--dev_size", "20"
    )
    assert {p["prompt"] for p in dev_a} == {p["prompt"] for p in dev_b}


def test_max_rows(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", _id_rows())
    counts, train, _ = convert(path, tmp_path / "out", "--id_field", "uid", "--max_rows", "30")
    assert counts["train"] == 30 and len({p["id"] for p in train}) == 30


# --------------------------------------------------------------------------- generic inputs


def test_generic_file_with_field_names(tmp_path):
    rows = [{"problem_text": f"Compute {i} times 3.", "solution_value": 3 * i, "extra": "x"} for i in range(5)]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    counts, train, _ = convert(
        path,
        tmp_path / "out",
        "--question_field",
        "problem_text",
        "--answer_field",
        "solution_value",
        "--task",
        "numeric",
    )
    assert counts["train"] == 5
    assert {k: v for k, v in train[1].items() if k != "id"} == {
        "prompt": "Compute 1 times 3.",
        "task": "numeric",
        "gold": "3",
    }
    assert train[1]["id"].startswith("mine-")


def test_generic_file_without_answers(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "Why?"}, {"question": "How?"}])
    _, train, _ = convert(path, tmp_path / "out", "--answer_field", "none")
    assert [p.get("gold") for p in train] == [None, None] and all("gold" not in p for p in train)


def test_csv_and_parquet_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "q.csv").write_text("question,answer\nWhat is 2+2?,4\nWhat is 3+3?,6\n")
    _, train, _ = convert(tmp_path / "q.csv", tmp_path / "out_csv")
    assert [(p["prompt"], p["gold"]) for p in train] == [("What is 2+2?", "4"), ("What is 3+3?", "6")]
    pq.write_table(pa.Table.from_pylist([{"question": "What is 5+5?", "answer": "10"}]), tmp_path / "q.parquet")
    _, train, _ = convert(tmp_path / "q.parquet", tmp_path / "out_pq")
    assert train[0]["gold"] == "10"


def test_hugging_face_dataset_folder(tmp_path):
    import datasets

    rows = [{"q": f"What is {i} squared?", "a": str(i * i), "qid": f"sq-{i}"} for i in range(6)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    counts, train, _ = convert(
        tmp_path / "ds", tmp_path / "out", "--question_field", "q", "--answer_field", "a", "--id_field", "qid"
    )
    assert counts["train"] == 6
    assert train[3] == {"id": "sq-3", "prompt": "What is 3 squared?", "task": "gsm8k", "gold": "9"}

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:2]), "test": datasets.Dataset.from_list(rows[2:])}
    ).save_to_disk(str(tmp_path / "dd"))
    counts, train, _ = convert(
        tmp_path / "dd", tmp_path / "out2", "--question_field", "q", "--answer_field", "a", "--split", "test"
    )
    assert counts["train"] == 4 and train[0]["prompt"] == "What is 2 squared?"
    with pytest.raises(ScpoError, match=r"no split 'validation'"):
        convert(tmp_path / "dd", tmp_path / "out3", "--question_field", "q", "--split", "validation")


def test_missing_field_names_the_row(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "What is 1+1?", "answer": "2"}])
    with pytest.raises(ScpoError, match=re.escape(f"{path}: row 1 has no field 'question'")):
        convert(path, tmp_path / "out")
    # a row whose question is missing while other rows have it (datasets fills None)
    path = write_jsonl(tmp_path / "holes.jsonl", [{"question": "What is 1+1?", "answer": "2"}, {"answer": "3"}])
    with pytest.raises(ScpoError, match=re.escape(f"{path}: row 2")):
        convert(path, tmp_path / "out")
    # a built-in source on a file of another layout
    with pytest.raises(ScpoError, match=re.escape(f"{path}: row 1 has no field 'Body'")):
        convert(path, tmp_path / "out", "--source", "svamp")
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_bad_inputs(tmp_path):
    with pytest.raises(ScpoError, match="needs --input"):
        main(["--output_dir", str(tmp_path)])
    with pytest.raises(ScpoError, match="input not found"):
        convert(tmp_path / "missing.jsonl", tmp_path / "out")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ScpoError, match="unknown file type"):
        convert(tmp_path / "x.txt", tmp_path / "out")
    (tmp_path / "broken.jsonl").write_text('{"question": "a", "answer": "1"}\n{"question": \n')
    with pytest.raises(ScpoError, match=re.escape(f"{tmp_path / 'broken.jsonl'}: cannot be read as json")):
        convert(tmp_path / "broken.jsonl", tmp_path / "out")


def test_empty_prompts_and_rows_without_gold_are_counted_and_reported(tmp_path, capsys):
    """Issue 32 point 7: an empty or whitespace-only question is dropped and counted with its row number (it stopped
    the conversion before); a row without gold (missing, null or blank answer) is kept unlabeled and counted, in the
    printed summary, a warning and the manifest."""
    rows = [
        {"question": "What is 1+1?", "answer": "2"},
        {"question": "", "answer": "3"},
        {"question": " \n\t ", "answer": "4"},
        {"question": "What is 2+2?"},
        {"question": "What is 3+3?", "answer": None},
        {"question": "What is 4+4?", "answer": "  "},
    ]
    counts, train, _ = convert(write_jsonl(tmp_path / "holes.jsonl", rows), tmp_path / "out")
    assert counts["input_rows"] == 6 and counts["empty_prompts_dropped"] == 2 and counts["without_gold"] == 3
    assert [p["prompt"] for p in train] == ["What is 1+1?", "What is 2+2?", "What is 3+3?", "What is 4+4?"]
    assert [p.get("gold") for p in train] == ["2", None, None, None]  # a blank gold is written as no gold
    manifest = json.loads((tmp_path / "out" / "data.manifest.json").read_text())
    assert manifest["counts"] == counts
    out, err = capsys.readouterr()
    assert "'empty_prompts_dropped': 2" in out and "'without_gold': 3" in out
    assert "2 rows with an empty or whitespace-only question dropped (rows 2, 3)" in err
    assert "3 of 4 problems have no gold" in err
    _, train, _ = convert(
        write_jsonl(tmp_path / "q.jsonl", [{"question": "Why?"}]), tmp_path / "o2", "--answer_field", "none"
    )
    assert "no gold" not in capsys.readouterr().err  # unlabeled on purpose: counted, no warning
    with pytest.raises(ScpoError, match=r"no problem in its 2 rows \(2 with an empty or whitespace-only question\)"):
        convert(write_jsonl(tmp_path / "blank.jsonl", rows[1:3]), tmp_path / "o3")


def test_gsm8k_row_without_answer_is_an_unlabeled_problem(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl", [{"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}, {"question": "What is 2+2?"}]
    )
    _, train, _ = convert(path, tmp_path / "out", "--source", "gsm8k")
    assert [p.get("gold") for p in train] == ["2", None] and "gold" not in train[1]


def test_numeric_source_row_without_answer_has_no_gold_none(tmp_path):
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"Body": "A has 3 apples.", "Question": "How many?", "Answer": 3.0, "ID": "a"},
            {"Body": "B has 4 pears.", "Question": "How many?", "ID": "b"},
        ],
    )
    try:
        _, train, _ = convert(path, tmp_path / "out", "--source", "svamp")
    except ScpoError:
        return  # an error naming the problem is fine
    assert all(p.get("gold") != "None" for p in train), train


def test_arithmetic_sets_are_disjoint_and_deterministic(tmp_path):
    from data_tools.arithmetic import main as arithmetic

    counts = arithmetic(["--output_dir", str(tmp_path / "a"), "--train", "50", "--eval", "40"])
    arithmetic(["--output_dir", str(tmp_path / "b"), "--train", "50", "--eval", "40"])
    assert counts == {"train": 50, "eval": 40}
    train, dev = read_jsonl(tmp_path / "a" / "train.jsonl"), read_jsonl(tmp_path / "a" / "eval.jsonl")
    assert not {p["id"] for p in train} & {p["id"] for p in dev}
    assert (tmp_path / "a" / "eval.jsonl").read_text() == (tmp_path / "b" / "eval.jsonl").read_text()
    a, b = map(int, train[0]["prompt"].removeprefix("What is ").removesuffix("?").split(" + "))
    assert train[0]["gold"] == str(a + b)
    with pytest.raises(SystemExit, match="distinct problems"):
        arithmetic(["--output_dir", str(tmp_path / "c"), "--a", "1,2", "--b", "1,2", "--train", "3", "--eval", "3"])
