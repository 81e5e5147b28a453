"""`--torch_compile` in every training recipe: the compiled model trains like the eager one.

Compiling on this 2-core CPU takes a minute or two per recipe, so these run in their own CI step
(`make test-compile`, marker `compile`), not in the default suite."""

import json

import pytest
from test_recipes import TRANSLATION_FLAGS, run_module, write_reviews

pytestmark = pytest.mark.compile

# dropout off: eager and compiled dropout draw from different random streams; everything else must agree
STEPS = ["--max_steps", 4, "--logging_steps", 1, "--dropout", 0, "--seed", 3]
QUICK = ["--max_eval_samples", 4, "--max_predict_samples", 4, "--average_last_n", 1]


def losses_trainer(out):
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def losses_accelerate(out):
    state = json.loads((out / "checkpoint-4" / "loop_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"]]


def inductor_cache(out):
    """Where a run's compiler writes the code it generates: it exists only if the model was compiled."""
    return out.parent / f"{out.name}-inductor"


def translation(module, data, out, *extra):
    return run_module(module, "--train_file", data, "--output_dir", out, *TRANSLATION_FLAGS, *QUICK, *STEPS,
                      "--save_steps", 4, *extra, timeout=900, env={"TORCHINDUCTOR_CACHE_DIR": str(inductor_cache(out))})


def classification(data, out, *extra):
    return run_module("recipes.train_classification", "--train_file", data, "--text_column", "review",
                      "--label_column", "stars", "--preset", "tiny", "--vocab_size", 300, "--output_dir", out,
                      *STEPS, "--save_steps", 4, "--learning_rate", "2e-3", "--warmup_steps", 2, *extra, timeout=900,
                      env={"TORCHINDUCTOR_CACHE_DIR": str(inductor_cache(out))})


@pytest.mark.parametrize("recipe", ["trainer", "accelerate", "classification"])
def test_compiled_training_follows_the_eager_loss_curve(recipe, tmp_path, translation_csv):
    if recipe == "classification":
        data = tmp_path / "reviews.csv"
        write_reviews(data, count=300)
        runs = {mode: classification(data, tmp_path / mode, *flags) for mode, flags in
                (("eager", []), ("compiled", ["--torch_compile", "True"]))}
        read = losses_trainer
    else:
        module = {"trainer": "recipes.train_translation", "accelerate": "recipes.train_translation_accelerate"}[recipe]
        extra = ["--max_tokens", 600] if recipe == "accelerate" else []
        runs = {mode: translation(module, translation_csv, tmp_path / mode, *extra, *flags) for mode, flags in
                (("eager", []), ("compiled", ["--torch_compile", "True"]))}
        read = losses_accelerate if recipe == "accelerate" else losses_trainer
    for mode, result in runs.items():
        assert result.returncode == 0, f"{mode}: {result.stderr[-3000:]}"
    assert any(inductor_cache(tmp_path / "compiled").rglob("*.py")), "the --torch_compile run compiled nothing"
    assert not any(inductor_cache(tmp_path / "eager").rglob("*.py"))
    eager, compiled = read(tmp_path / "eager"), read(tmp_path / "compiled")
    assert len(eager) == len(compiled) == 4
    assert compiled == pytest.approx(eager, rel=2e-3), (eager, compiled)
    assert eager[0] != eager[-1]  # the weights moved: four real steps
