"""Every argument is checked before any work, as one rule (hf_vanilla.cli.RANGES); a resume continues only the run it
was, with what its budget left (reliability round three)."""

import dataclasses
import importlib
import json
import pkgutil
import re

import pytest
from test_recipes import TRANSLATION_FLAGS, run_module
from transformers import HfArgumentParser

import recipes
from hf_vanilla.cli import RANGES, parse_arguments

ARGUMENTS_MODULE = "hf_vanilla.training.arguments"

QUICK = [*TRANSLATION_FLAGS, "--eval_strategy", "no", "--average_last_n", 1, "--max_eval_samples", 4,
         "--max_predict_samples", 4]


@pytest.mark.parametrize("flag,value", [
    ("--learning_rate", "nan"), ("--learning_rate", "-1"), ("--label_smoothing_factor", "1.5"),
    ("--max_source_length", "-1"), ("--max_train_minutes", "0"), ("--max_train_minutes", "nan"),
    ("--max_train_minutes", "-1"), ("--vocab_size", "200"), ("--num_beams", "1000"), ("--dropout", "inf"),
    ("--weight_decay", "-0.1"),
])
def test_numbers_out_of_range_are_usage_errors_before_any_work(flag, value, tmp_path):
    # the corpus is never loaded: the numbers are checked as the arguments are parsed
    out = tmp_path / "out"
    result = run_module("recipes.train_translation", "--train_file", tmp_path / "missing.csv", "--output_dir", out,
                        *TRANSLATION_FLAGS, flag, value, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{flag} " in result.stderr and "missing.csv" not in result.stderr, result.stderr[-2000:]
    assert not out.exists()


def argument_classes(module):
    """The dataclasses a recipes module parses: a Trainer recipe's `arguments`, else the argument dataclasses it defines
    or imports from the project (not a library's, such as a data collator)."""
    values = [value for value in vars(module).values() if isinstance(value, type)]
    recipe = next((value for value in values if getattr(value, "arguments", None)), None)
    return recipe.arguments if recipe else tuple(
        value for value in values
        if dataclasses.is_dataclass(value) and value.__module__.startswith(("recipes.", ARGUMENTS_MODULE)))


def recipe_dataclasses():
    """Every recipe's argument dataclasses, so that a new recipe or a new field is covered without a list here."""
    return {cls for info in pkgutil.iter_modules(recipes.__path__)
            for cls in argument_classes(importlib.import_module(f"recipes.{info.name}"))}


def test_every_number_a_recipe_takes_has_a_range():
    """A number without a range reaches Trainer, numpy or torch unchecked: 0 epochs saved an untrained model (exit
    0), a gradient accumulation of 0 ended in a ZeroDivisionError, a seed of -1 in numpy's ValueError."""
    numeric = re.compile(r"\b(int|float)\b")
    fields = {(cls.__name__, field.name) for cls in recipe_dataclasses() for field in dataclasses.fields(cls)
              if field.init and numeric.search(str(field.type)) and "bool" not in str(field.type)}
    assert len(fields) > 60  # the walk found the recipes' dataclasses, Trainer's own included
    assert sorted(f"{cls}.{name}" for cls, name in fields if name not in RANGES) == []


@pytest.mark.parametrize("recipe,flag,value", [
    ("train_translation", "--num_train_epochs", "0"), ("train_translation", "--num_train_epochs", "-2"),
    ("train_translation", "--max_steps", "0"), ("train_translation", "--max_steps", "-5"),
    ("train_translation", "--gradient_accumulation_steps", "0"), ("train_translation", "--eval_accumulation_steps", "0"),
    ("train_translation", "--seed", "-1"), ("train_translation", "--adam_beta2", "1.5"),
    ("train_translation", "--max_grad_norm", "-1"), ("train_translation", "--save_steps", "-1"),
    ("train_translation", "--eval_steps", "-3"), ("train_translation", "--generation_max_length", "0"),
    ("train_translation", "--save_total_limit", "0"), ("train_classification", "--num_train_epochs", "0"),
    ("pretrain", "--seed", "4294967296"), ("train_translation_accelerate", "--label_smoothing", "1.5"),
    ("train_translation_accelerate", "--max_steps", "0"), ("train_translation_accelerate", "--num_train_epochs", "0"),
])
def test_trainer_numbers_are_checked_as_they_are_parsed(recipe, flag, value, capsys):
    """In this process, as the recipes parse (no data is read): each is exit 2 naming the flag."""
    classes = argument_classes(importlib.import_module(f"recipes.{recipe}"))
    with pytest.raises(SystemExit) as stopped:
        parse_arguments(HfArgumentParser(classes), ["--output_dir", "unused", flag, value])
    assert stopped.value.code == 2 and f"{flag} {value}" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["recipes.train_classification", "recipes.pretrain", "recipes.translate",
                                    "recipes.serve"])
def test_the_rule_holds_in_every_recipe(module, tmp_path):
    flag = {"recipes.translate": ["--model", tmp_path, "--num_beams", "0"],
            "recipes.serve": ["--model", tmp_path, "--port", "70000"]}.get(module, ["--learning_rate", "nan"])
    result = run_module(module, *flag, timeout=120)
    assert result.returncode == 2 and f"{flag[-2]} " in result.stderr, result.stderr[-2000:]


def test_pretrain_corpora_none_means_none_and_text_files_are_checked(tmp_path):
    from hf_vanilla.training.pretraining import english_training_texts

    assert english_training_texts(None, []) == {}  # an empty list used to mean all four corpora
    folder, empty = tmp_path / "texts", tmp_path / "empty.txt"
    folder.mkdir()
    empty.write_text("")
    for path, why in [(folder, "is a folder"), (empty, "is empty")]:
        result = run_module("recipes.pretrain", "--corpora", "none", "--text_files", path, "--output_dir",
                            tmp_path / "out", "--preset", "tiny", timeout=120)
        assert result.returncode == 2 and why in result.stderr, result.stderr[-2000:]
    blank = tmp_path / "blank.txt"
    blank.write_text("   \n\n")
    result = run_module("recipes.pretrain", "--corpora", "none", "--text_files", blank, "--output_dir",
                        tmp_path / "out", "--preset", "tiny", timeout=120)
    assert result.returncode == 2 and "holds no text" in result.stderr, result.stderr[-2000:]


def test_time_budget_is_the_runs_total_across_a_resume(tmp_path, translation_csv):
    out = tmp_path / "out"
    budget = ["--max_train_minutes", 0.15, "--max_steps", 100000, "--save_steps", 10]
    first = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                       *budget)
    assert first.returncode == 0, first.stderr[-3000:]
    last = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    state = json.loads((last / "trainer_state.json").read_text())
    spent = state["stateful_callbacks"]["TimeBudget"]["attributes"]["spent_before"]
    assert spent >= 0.15 * 60
    again = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                       *budget, "--resume_from_checkpoint", last)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "were spent before this resume" in again.stderr
    # nothing was left: the stop is honoured at the first step's end (Trainer has no stop before a step)
    assert json.loads((out / "results.json").read_text())["steps"] <= state["global_step"] + 1


def test_every_trainer_recipe_takes_a_time_budget(tmp_path):
    # --max_train_minutes is a field of every recipe's training arguments (arguments.RecipeTrainingArguments):
    # the classifier, on a linear schedule, stops when its budget is spent and still evaluates and saves
    from test_recipes import write_reviews

    data = tmp_path / "reviews.csv"
    write_reviews(data)
    out = tmp_path / "out"
    result = run_module("recipes.train_classification", "--train_file", data, "--text_column", "review",
                        "--label_column", "stars", "--preset", "tiny", "--vocab_size", "300", "--output_dir", out,
                        "--num_train_epochs", 1000, "--max_train_minutes", 0.1, "--save_strategy", "no",
                        "--eval_strategy", "no", "--load_best_model_at_end", "False")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "time budget of 0.1 minutes spent" in result.stderr, result.stderr[-3000:]
    assert "test_accuracy" in json.loads((out / "results.json").read_text())["test"]


@pytest.mark.parametrize("change", [["--seed", "7"], ["--learning_rate", "3e-3"], ["--max_tokens", "500"]])
def test_resume_with_other_loop_settings_is_refused_naming_them(change, tmp_path, translation_csv):
    out = tmp_path / "out"
    first = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                       "--max_steps", 3, "--save_steps", 3, "--learning_rate", "1e-3")
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                       "--max_steps", 6, "--save_steps", 3, "--learning_rate", "1e-3", *change,
                       "--resume_from_checkpoint", out / "checkpoint-3")
    assert again.returncode == 2, again.stderr[-3000:]
    assert change[0].lstrip("-") + ":" in again.stderr and "--resume_from_checkpoint" in again.stderr
    assert "--resume_with_changes True" in again.stderr


def test_resume_with_changes_is_an_explicit_choice_the_card_records(tmp_path, translation_csv):
    out = tmp_path / "out"
    common = ["--train_file", translation_csv, "--output_dir", out, *QUICK, "--save_steps", 3, "--learning_rate"]
    assert run_module("recipes.train_translation", *common, "1e-3", "--max_steps", 3).returncode == 0
    again = run_module("recipes.train_translation", *common, "2e-3", "--max_steps", 6, "--seed", 7,
                       "--resume_from_checkpoint", out / "checkpoint-3", "--resume_with_changes", "True")
    assert again.returncode == 0, again.stderr[-3000:]
    card = (out / "README.md").read_text()
    assert "## Resumed with changes" in card and "`learning_rate: 0.001 -> 0.002`; `seed: 42 -> 7`" in card, card
    # the new settings are the run's now: resuming again with them needs no flag
    third = run_module("recipes.train_translation", *common, "2e-3", "--max_steps", 9, "--seed", 7,
                       "--resume_from_checkpoint", out / "checkpoint-6")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "`learning_rate: 0.001 -> 0.002`" in (out / "README.md").read_text()  # still recorded


def test_resume_must_name_a_checkpoint_folder(tmp_path, translation_csv):
    out = tmp_path / "out"
    first = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                       "--max_steps", 3, "--save_steps", 3)
    assert first.returncode == 0, first.stderr[-3000:]
    for wrong in (out, tmp_path / "nowhere"):
        again = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out, *QUICK,
                           "--max_steps", 6, "--resume_from_checkpoint", wrong)
        assert again.returncode == 2, again.stderr[-3000:]
        assert "error: --resume_from_checkpoint:" in again.stderr and "checkpoint-3" in again.stderr


def test_serve_refuses_a_port_in_use_before_loading_anything(tmp_path):
    import socket

    pytest.importorskip("gradio", reason="the [web] extra is not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_module("recipes.serve", "--model", tmp_path / "no-model-here", "--port", port, timeout=120)
    assert result.returncode == 2 and f"error: --port: {port} is in use" in result.stderr, result.stderr[-2000:]


def test_output_folders_get_the_users_umask_and_unwritable_ones_are_refused(tmp_path, monkeypatch):
    import os

    from hf_vanilla.files import OutputFolderRefused, atomic_folder, check_output_folder

    with atomic_folder(tmp_path / "made") as staging:
        (staging / "a").write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o777 & ~mask  # mkdtemp alone gives 0700
    # as root every folder is writable, so the refusal is shown with os.access answering as for another user
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputFolderRefused, match="not writable"):
        check_output_folder(tmp_path / "new" / "out")


def test_report_to_integrations_are_checked_before_any_work(tmp_path):
    from transformers.integrations.integration_utils import is_tensorboard_available

    result = run_module("recipes.train_translation", "--train_file", tmp_path / "missing.csv", "--output_dir",
                        tmp_path / "out", "--report_to", "nosuch", timeout=120)
    assert result.returncode == 2 and "--report_to nosuch: unknown" in result.stderr, result.stderr[-2000:]
    if not is_tensorboard_available():
        result = run_module("recipes.train_translation", "--train_file", tmp_path / "missing.csv", "--output_dir",
                            tmp_path / "out", "--report_to", "tensorboard", timeout=120)
        assert result.returncode == 2 and "hf_vanilla[tensorboard]" in result.stderr, result.stderr[-2000:]
        assert "missing.csv" not in result.stderr and not (tmp_path / "out").exists()


def test_the_progress_bar_counts_to_the_steps_that_fit_as_the_speed_changes(monkeypatch):
    # the first plan is made at one step per second; when the machine slows to one step per two seconds, the bar's
    # total follows (it is what a user reads as "how far will this get"), and the warm-up plan does not move
    from types import SimpleNamespace

    from transformers import TrainerControl

    from hf_vanilla.training import budget as budget_module

    clock = [0.0]
    monkeypatch.setattr(budget_module.time, "monotonic", lambda: clock[0])
    bar = SimpleNamespace(total=100000, set_postfix_str=lambda text, refresh=False: setattr(bar, "postfix", text))
    schedule = budget_module.InverseSqrtSchedule(300)
    timer = budget_module.TimeBudget(10, schedule=schedule, progress=SimpleNamespace(training_bar=bar))
    state, control = SimpleNamespace(global_step=0, stateful_callbacks=None), TrainerControl()
    timer.on_train_begin(None, state, control)
    for step in range(1, 101):
        clock[0], state.global_step = float(step), step
        timer.on_step_end(None, state, control)
    assert 590 <= bar.total <= 610 and timer.expected_steps == bar.total  # 600 s at 1 step/s
    warmup = schedule.warmup_steps
    for step in range(101, 301):
        clock[0], state.global_step = clock[0] + 2.0, step
        timer.on_step_end(None, state, control)
    # 500 s spent, 300 steps done at an average of (300 - 10) / (500 - 10) steps/s since timing began
    assert bar.total == 300 + int((300 - 10) / (500 - 10) * 100) and bar.total < 590
    assert "1.7 min left of the budget" == bar.postfix and schedule.warmup_steps == warmup
