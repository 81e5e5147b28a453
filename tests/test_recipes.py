"""Every recipe end to end on small local data, in seconds: tiny preset, few steps."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import write_translation_csv
from huggingface_hub import ModelCard
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

import hf_vanilla  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
TRANSLATION_FLAGS = ["--preset", "tiny", "--vocab_size", "300", "--source_column", "en", "--target_column", "fr",
                     "--max_eval_samples", "20", "--max_predict_samples", "20", "--logging_steps", "5"]


def run_module(module, *args, timeout=300, env=None, input=None):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=input)


def check_translation_folder(folder):
    files = {p.name for p in Path(folder).iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md",
            "training_curves.png", "modeling_vanilla_transformer.py", "results.json"} <= files
    config = json.loads((Path(folder) / "config.json").read_text())
    assert "AutoModelForSeq2SeqLM" in config["auto_map"]
    generation = json.loads((Path(folder) / "generation_config.json").read_text())
    assert generation["num_beams"] == 4 and generation["length_penalty"] == 0.6
    card = (Path(folder) / "README.md").read_text()
    assert "BLEU" in card and "nrefs:1|case:mixed" in card and "python -m recipes." in card
    # the Hub's metadata block, parsed by huggingface_hub, carries the measured results
    metadata = ModelCard.load(Path(folder) / "README.md").data
    # trained on the user's own file: its terms are unknown to the project, and the card says so
    assert metadata.library_name == "transformers" and metadata.license == "unknown" and metadata.datasets
    assert metadata.pipeline_tag == "translation"
    results = json.loads((Path(folder) / "results.json").read_text())
    saved = results["results"][results["chosen"]]
    published = {(r.dataset_split, r.metric_type): r.metric_value for r in metadata.eval_results}
    assert published == {(split, metric): round(saved[split][metric], 4) for split in ("validation", "test")
                         for metric in ("bleu", "chrf")}
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # the tokenizer's limit is the model's, so truncation=True always gives inputs the model accepts
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    long = tokenizer(["the red cat sees a dog. " * 400], return_tensors="pt", truncation=True)
    assert long["input_ids"].shape[1] == model.config.max_position_embeddings
    out = model.generate(**long, max_new_tokens=3)
    out = model.generate(**tokenizer(["the red cat sees a dog."], return_tensors="pt"), max_new_tokens=12)
    assert 1 < out.shape[1] <= 13 and out[0, 0] == model.config.decoder_start_token_id


def test_train_translation_end_to_end(tmp_path, translation_csv):
    out = tmp_path / "model"
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out,
                        *TRANSLATION_FLAGS, "--max_steps", 30, "--save_steps", 10, "--eval_steps", 15,
                        "--average_last_n", 3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test BLEU" in result.stdout
    check_translation_folder(out)
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"last", "average of last 3"}


def test_existing_output_dir_is_refused(tmp_path, translation_csv):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out,
                        *TRANSLATION_FLAGS, "--max_steps", 2)
    assert result.returncode == 2, result.stderr[-2000:]  # a usage error, refused before any work
    assert "error: --output_dir: " in result.stderr and "exists and is not empty" in result.stderr
    assert "--overwrite_output_dir" in result.stderr
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tmp_path, translation_csv):
    out = tmp_path / "model"
    args = ["--train_file", translation_csv, "--output_dir", out, *TRANSLATION_FLAGS, "--max_steps", 400,
            "--save_steps", 1000, "--eval_steps", 1000, "--average_last_n", 1]
    process = subprocess.Popen([sys.executable, "-m", "recipes.train_translation", *map(str, args)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks = []

    def read():
        for chunk in iter(lambda: process.stdout.read1(4096), b""):
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # the first loss log (--logging_steps 5) says the loop is running, however loaded the machine: a fixed sleep
    # either interrupted before the loop or, on a fast machine, after the last step
    deadline = time.time() + 180
    while time.time() < deadline and process.poll() is None and b"'loss'" not in b"".join(chunks):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    reader.join(timeout=30)
    stderr = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 130, stderr[-3000:]
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert len(checkpoints) == 1 and "resume with" in stderr
    step = int(checkpoints[0].name.split("-")[1])
    assert 0 < step < 400

    result = run_module("recipes.train_translation", *args, "--resume_from_checkpoint", checkpoints[0])
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "checkpoint-400" / "trainer_state.json").read_text())
    assert state["global_step"] == 400
    check_translation_folder(out)


def test_accelerate_recipe_and_resume(tmp_path, translation_csv):
    out = tmp_path / "model"
    args = ["--train_file", translation_csv, "--output_dir", out, *TRANSLATION_FLAGS, "--max_steps", 12,
            "--save_steps", 6, "--max_tokens", 600, "--gradient_accumulation_steps", 2, "--average_last_n", 2]
    result = run_module("recipes.train_translation_accelerate", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    check_translation_folder(out)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-6"]
    # resume from the middle: the loop state says where it was
    resumed = run_module("recipes.train_translation_accelerate", *args, "--resume_from_checkpoint",
                         out / "checkpoint-6")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "at step 6" in resumed.stderr


def torchrun(module, *args, port=29517, env=None):
    """`module` on two CPU processes (gloo), as a user starts it: torchrun --nproc_per_node 2 -m MODULE ARGS."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", module, *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_accelerate_recipe_on_two_processes_plain_and_sharded(tmp_path, translation_csv):
    """DDP, then FSDP2 (--fsdp True): sharded, each rank holds half of every parameter, and it computes what DDP
    computes: the saved folders (ordinary save_pretrained folders) reload to the same weights."""
    from safetensors.torch import load_file

    args = ["--train_file", translation_csv, *TRANSLATION_FLAGS, "--max_steps", 4, "--save_steps", 2,
            "--max_tokens", 400, "--dropout", 0]  # no dropout: the two runs draw no random numbers differently
    plain = torchrun("recipes.train_translation_accelerate", *args, "--output_dir", tmp_path / "ddp")
    assert plain.returncode == 0, plain.stderr[-4000:]
    assert "rank 0 finished" in plain.stdout and "rank 1 finished" in plain.stdout
    assert "2 processes" in plain.stderr and "FSDP2" not in plain.stdout
    check_translation_folder(tmp_path / "ddp")

    sharded = torchrun("recipes.train_translation_accelerate", *args, "--output_dir", tmp_path / "fsdp", "--fsdp",
                       "True")
    assert sharded.returncode == 0, sharded.stderr[-4000:]
    assert "rank 0 holds 50% of the parameters (FSDP2)" in sharded.stdout
    assert "rank 1 holds 50% of the parameters (FSDP2)" in sharded.stdout
    check_translation_folder(tmp_path / "fsdp")
    for checkpoint in ("checkpoint-2", "checkpoint-4"):
        ddp = load_file(tmp_path / "ddp" / checkpoint / "model.safetensors")
        fsdp = load_file(tmp_path / "fsdp" / checkpoint / "model.safetensors")
        assert ddp.keys() == fsdp.keys()
        for name in ddp:
            torch.testing.assert_close(fsdp[name], ddp[name], rtol=1e-4, atol=1e-5, msg=f"{checkpoint}: {name}")
    first, last = (load_file(tmp_path / "fsdp" / c / "model.safetensors") for c in ("checkpoint-2", "checkpoint-4"))
    assert not all(torch.equal(first[name], last[name]) for name in first)  # training moved the weights
    # its checkpoints hold the full model, not the optimiser's shards: resuming is refused, not run wrong
    resumed = run_module("recipes.train_translation_accelerate", *args, "--output_dir", tmp_path / "fsdp",
                         "--resume_from_checkpoint", tmp_path / "fsdp" / "checkpoint-2")
    assert resumed.returncode == 2 and "cannot be resumed" in resumed.stderr


@pytest.mark.parametrize("recipe", ["train_translation", "train_classification", "pretrain"])
def test_trainer_recipes_on_two_cpu_processes(recipe, tmp_path, translation_csv):
    """torchrun on a machine without GPU: both processes join one run (gloo), not two runs fighting over a folder."""
    data = tmp_path / "reviews.csv"
    write_reviews(data, count=300)
    flags = {
        "train_translation": ["--train_file", translation_csv, *TRANSLATION_FLAGS],
        "train_classification": ["--train_file", data, "--text_column", "review", "--label_column", "stars",
                                 "--preset", "tiny", "--vocab_size", "300"],
        "pretrain": ["--corpora", "none", "--text_files", translation_csv, "--preset", "tiny", "--vocab_size", "300"],
    }[recipe]
    out = tmp_path / "model"
    result = torchrun(f"recipes.{recipe}", *flags, "--output_dir", out, "--max_steps", 4, "--save_steps", 4,
                      port=29518 + ["train_translation", "train_classification", "pretrain"].index(recipe))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "in use by another run" not in result.stderr
    assert result.stderr.count("training a joint BPE tokenizer") <= 1  # one tokenizer, trained once, read by both
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


@pytest.mark.parametrize("config, module", [("fsdp.yaml", "recipes.train_translation_accelerate"),
                                            ("cpu.yaml", "recipes.train_translation")])
def test_ready_accelerate_configs_launch_on_cpu(config, module, tmp_path, translation_csv):
    """The README's configs/accelerate files, as `accelerate launch --config_file` reads them: the FSDP one shards
    (on CPU processes the recipe does it with FSDP2), the CPU one runs a Trainer recipe on two processes."""
    command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
               str(REPO / "configs" / "accelerate" / config), "--main_process_port", "29522", "-m", module,
               "--train_file", str(translation_csv), *map(str, TRANSLATION_FLAGS), "--output_dir",
               str(tmp_path / "model"), "--max_steps", "2", "--save_steps", "2",
               *(["--max_tokens", "400"] if "accelerate" in module else [])]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    if config == "fsdp.yaml":
        assert "rank 0 holds 50%" in result.stdout and "rank 1 holds 50%" in result.stdout
    else:
        assert "in use by another run" not in result.stderr
    check_translation_folder(tmp_path / "model")


def test_trainer_fsdp_on_cpu_processes_is_refused_not_quietly_ddp(tmp_path, translation_csv):
    result = torchrun("recipes.train_translation", "--train_file", translation_csv, *TRANSLATION_FLAGS,
                      "--output_dir", tmp_path / "model", "--max_steps", 2, "--fsdp", "full_shard auto_wrap",
                      port=29521)
    # torchrun exits 1 for a failed worker and names the worker's own status: 2, a usage error
    assert result.returncode != 0 and re.search(r"exitcode\s*:\s*2\b", result.stderr), result.stderr[-3000:]
    assert "error: --fsdp: Trainer shards only on GPUs" in result.stderr and "--fsdp True" in result.stderr
    assert not (tmp_path / "model").exists()


def test_token_budget_batches():
    from hf_vanilla.training.batching import token_budget_batches

    lengths = [5, 30, 7, 12, 30, 2, 9, 16, 25, 3] * 10
    batches = token_budget_batches(lengths, max_tokens=64, seed=0)
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert all(len(batch) * max(lengths[i] for i in batch) <= 64 for batch in batches)
    assert batches == token_budget_batches(lengths, max_tokens=64, seed=0)


def write_reviews(path, count=1500):
    """Short reviews whose label is set by their one opinion word; varied enough to leave ~600 distinct texts."""
    import random

    rng = random.Random(0)
    good, bad = ["wonderful", "moving", "brilliant", "funny"], ["boring", "dull", "awful", "clumsy"]
    subjects, fillers = ["the film", "this movie", "the plot", "the cast", "the ending"], ["", " overall", " today",
                                                                                         " again", " at times"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "stars"])
        writer.writeheader()
        for _ in range(count):
            positive = rng.random() < 0.5
            text = f"{rng.choice(subjects)} was {rng.choice(['very ', 'quite ', ''])}" \
                   f"{rng.choice(good if positive else bad)}{rng.choice(fillers)}"
            writer.writerow({"review": text, "stars": "pos" if positive else "neg"})


def test_train_classification_end_to_end_and_init_from_translation(tmp_path, translation_csv):
    data = tmp_path / "reviews.csv"
    write_reviews(data)
    out = tmp_path / "classifier"
    result = run_module("recipes.train_classification", "--train_file", data, "--text_column", "review",
                        "--label_column", "stars", "--preset", "tiny", "--vocab_size", "300", "--output_dir", out,
                        "--num_train_epochs", 8, "--learning_rate", "2e-3", "--warmup_steps", 10)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test accuracy" in result.stdout
    scores = json.loads((out / "results.json").read_text())
    assert scores["test"]["test_accuracy"] >= 0.9
    classify = pipeline("text-classification", model=str(out), device="cpu")
    assert classify("the plot was brilliant overall")[0]["label"] == "pos"
    # far longer than the model's positions: truncation=True cuts it to what the model takes (it used to cut to 1024)
    assert classify("the plot was brilliant overall " * 300, truncation=True)[0]["label"] in ("pos", "neg")
    assert "accuracy" in (out / "README.md").read_text()
    # the folder a user shares holds no pickle (Trainer writes its arguments as training_args.bin): JSON instead
    assert not [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert json.loads((out / "training_args.json").read_text())["learning_rate"] == 2e-3
    published = {(r.dataset_split, r.metric_type): r.metric_value
                 for r in ModelCard.load(out / "README.md").data.eval_results}
    assert published[("test", "accuracy")] == round(scores["test"]["test_accuracy"], 4)
    assert published[("test", "f1")] == round(scores["test"]["test_macro_f1"], 4)
    texts = tmp_path / "texts.txt"
    texts.write_text("this movie was quite dull\nthe ending was moving at times\n")
    labelled = run_module("recipes.classify", "--model", out, "--input", texts)
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    assert [line.split("\t")[0] for line in labelled.stdout.splitlines()] == ["neg", "pos"]

    # a classifier started from a translation model's encoder
    translation = tmp_path / "translation"
    assert run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", translation,
                      *TRANSLATION_FLAGS, "--max_steps", 4, "--average_last_n", 1).returncode == 0
    started = tmp_path / "started"
    result = run_module("recipes.train_classification", "--train_file", data, "--text_column", "review",
                        "--label_column", "stars", "--init_from", translation, "--output_dir", started,
                        "--max_steps", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    encoder = AutoModelForSeq2SeqLM.from_pretrained(translation).model.encoder.layers[0].self_attn.q_proj.weight
    classifier = AutoModelForSequenceClassification.from_pretrained(started)
    # two steps at a small learning rate move the weights only a little from where they started
    assert torch.allclose(classifier.model.encoder.layers[0].self_attn.q_proj.weight, encoder, atol=0.05)
    assert classifier.config.id2label == {0: "neg", 1: "pos"}


def test_translate_cli(tmp_path, translation_csv):
    out = tmp_path / "model"
    assert run_module("recipes.train_translation", "--train_file", translation_csv, "--output_dir", out,
                      *TRANSLATION_FLAGS, "--max_steps", 4, "--average_last_n", 1).returncode == 0
    inputs = tmp_path / "in.txt"
    inputs.write_text("the red cat sees a dog.\nthe small bird likes a cat today.\n")
    plot = tmp_path / "attention.png"
    result = run_module("recipes.translate", "--model", out, "--input", inputs, "--num_beams", 2,
                        "--plot_attention", plot)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("\n") == 2  # one line per input (an untrained model may give empty ones)
    assert plot.stat().st_size > 5000
    missing = run_module("recipes.translate", "--model", tmp_path / "nope")
    assert missing.returncode == 2 and "No model folder at" in missing.stderr


def test_quality_benchmarks_tfidf_baseline_picks_c_on_validation(tmp_path):
    """benchmarks/quality.py's baseline: fitted on train, C chosen on validation, scored on test."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import datasets
    from quality import tfidf_baseline

    write_reviews(tmp_path / "reviews.csv", count=600)
    rows = list(csv.DictReader(open(tmp_path / "reviews.csv", encoding="utf-8")))
    split = {"train": rows[:400], "validation": rows[400:500], "test": rows[500:]}
    raw = datasets.DatasetDict({name: datasets.Dataset.from_dict({
        "text": [r["review"] for r in part], "label": [int(r["stars"] == "pos") for r in part]})
        for name, part in split.items()})
    result = tfidf_baseline(raw, c_values=(0.01, 10))
    assert set(result["validation_accuracy_by_C"]) == {"0.01", "10"}  # keyed as JSON writes them
    by_c = result["validation_accuracy_by_C"]
    assert f"{result['C']:g}" == max(by_c, key=by_c.get)
    assert result["test"]["accuracy"] >= 0.9 and 0 < result["test"]["macro_f1"] <= 1


PIPELINE_WITHOUT_THE_PACKAGE = """
import json, sys
sys.modules["hf_vanilla"] = None  # `import hf_vanilla` raises ImportError: only the folder's own code is there
from transformers import pipeline
translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True)
assert type(translator).__module__.startswith("transformers_modules"), type(translator).__module__
print(json.dumps([r[0]["translation_text"] for r in translator(json.loads(sys.argv[2]), batch_size=2)]))
"""


@pytest.fixture(scope="module")
def translation_folder(tmp_path_factory):
    """A translation model trained by the recipe on the toy pairs, long enough to say something."""
    root = tmp_path_factory.mktemp("pipeline")
    data = write_translation_csv(root / "pairs.csv")
    out = root / "model"
    result = run_module("recipes.train_translation", "--train_file", data, "--output_dir", out, *TRANSLATION_FLAGS,
                        "--max_steps", 120, "--learning_rate", "3e-3", "--warmup_steps", 20, "--save_steps", 60,
                        "--eval_strategy", "no", "--average_last_n", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_pipeline_translation_on_a_saved_folder_decodes_as_the_cli(translation_folder, tmp_path):
    from hf_vanilla.pipeline_vanilla_transformer import VanillaTransformerTranslationPipeline

    sentences = ["the red cat sees a dog.", "the small bird likes a cat today.", "a dog."]
    cli = run_module("recipes.translate", "--model", translation_folder, input="\n".join(sentences) + "\n")
    assert cli.returncode == 0, cli.stderr[-3000:]
    expected = cli.stdout.splitlines()
    assert any(expected), "the model says nothing: the comparison would prove little"
    config = json.loads((translation_folder / "config.json").read_text())
    assert "translation" in config["custom_pipelines"]  # the folder declares it
    translator = pipeline("translation", model=str(translation_folder), trust_remote_code=True)
    assert [r[0]["translation_text"] for r in translator(sentences, batch_size=1)] == expected
    # installed, the class itself needs no trust; batches of 2 pad into one generate and decode the same here
    direct = pipeline(model=str(translation_folder), pipeline_class=VanillaTransformerTranslationPipeline)
    assert [r[0]["translation_text"] for r in direct(sentences[:2], batch_size=2)] == expected[:2]
    greedy = run_module("recipes.translate", "--model", translation_folder, "--num_beams", 1, input=sentences[0])
    assert direct(sentences[0], num_beams=1)[0]["translation_text"] == greedy.stdout.strip()
    # where hf_vanilla is not installed, the folder's own copy of the pipeline runs
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    alone = subprocess.run([sys.executable, "-c", PIPELINE_WITHOUT_THE_PACKAGE, str(translation_folder),
                            json.dumps(sentences[:2])], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=300)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert json.loads(alone.stdout.splitlines()[-1]) == expected[:2]


def test_streaming_never_loads_the_train_split_and_resumes_exactly(tmp_path):
    """--streaming: the train file is read as training goes (datasets never writes it to an Arrow cache, as it does
    for every split it loads into memory), with the same row checks; a run stopped and resumed ends where one left
    alone does."""
    from safetensors.torch import load_file

    train, validation, test = (write_translation_csv(tmp_path / f"{name}.csv", count=count)
                               for name, count in (("train", 3000), ("validation", 40), ("test", 40)))
    cache = tmp_path / "datasets-cache"
    env = {"HF_DATASETS_CACHE": str(cache)}
    flags = ["--streaming", "True", "--train_file", train, "--validation_file", validation, "--test_file", test,
             *TRANSLATION_FLAGS, "--per_device_train_batch_size", 8, "--save_steps", 4, "--average_last_n", 2]
    whole = run_module("recipes.train_translation", *flags, "--output_dir", tmp_path / "whole", "--max_steps", 8,
                       env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    arrow = sorted(path.name for path in cache.rglob("*.arrow"))
    assert "csv-validation.arrow" in arrow and "csv-test.arrow" in arrow  # the splits loaded whole are cached
    assert not [name for name in arrow if "train" in name], arrow  # the streamed one never was
    assert "train streamed pairs" in (tmp_path / "whole" / "README.md").read_text()

    # the same run, as if stopped after its checkpoint at step 4
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoint-8")
    resumed = run_module("recipes.train_translation", *flags, "--output_dir", tmp_path / "resumed", "--max_steps", 8,
                         "--resume_from_checkpoint", tmp_path / "resumed" / "checkpoint-4", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    left_alone = load_file(tmp_path / "whole" / "checkpoint-8" / "model.safetensors")
    continued = load_file(tmp_path / "resumed" / "checkpoint-8" / "model.safetensors")
    for name, tensor in left_alone.items():
        torch.testing.assert_close(continued[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("extra, module, message", [
    (["--max_steps", "-1"], "recipes.train_translation", "--streaming: a stream has no known length"),
    (["--max_steps", "4", "--max_tokens", "500"], "recipes.train_translation", "--max_tokens: token-budget"),
    (["--max_steps", "4", "--validation_file", None], "recipes.train_translation", "give --validation_file"),
    (["--max_steps", "4"], "recipes.train_classification", "--streaming is for translation"),
])
def test_streaming_refuses_what_a_stream_cannot_give(extra, module, message, tmp_path):
    files = {name: write_translation_csv(tmp_path / f"{name}.csv", count=40) for name in ("train", "validation", "test")}
    if "--validation_file" in extra:  # left out: validation cannot be cut from a stream
        del files["validation"]
        extra = extra[:2]
    columns = (["--source_column", "en", "--target_column", "fr"] if module == "recipes.train_translation"
               else ["--text_column", "en", "--label_column", "fr"])
    result = run_module(module, "--streaming", "True", *[item for name, path in files.items()
                                                          for item in (f"--{name}_file", path)],
                        *columns, "--output_dir", tmp_path / "model", "--vocab_size", 300, *extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "model" / "model.safetensors").exists()
    corpus = run_module("recipes.train_translation", "--streaming", "True", "--corpus", "libreoffice-help",
                        "--output_dir", tmp_path / "other")
    assert corpus.returncode == 2 and "--streaming is for your own data" in corpus.stderr


def test_the_demo_runs_its_choices_or_the_one_a_flag_changes(monkeypatch):
    """`recipes.demo` hands the translation recipe its chosen peak and token batches; --learning_rate and
    --per_device_train_batch_size change one choice (the README's "tried" / "before" rows); bad values exit 2 first."""
    import recipes.demo as demo

    commands = []
    monkeypatch.setattr(demo.subprocess, "call", lambda command: commands.append(command) or 3)  # stop after it

    def flags(*argv):
        assert demo.main(["--output_dir", "unused", *argv]) == 3
        command = commands.pop()
        return {name: command[i + 1] for i, name in enumerate(command) if name.startswith("--")}

    chosen = flags()
    assert chosen["--max_tokens"] == str(demo.DEMO_MAX_TOKENS) and float(chosen["--learning_rate"]) == 1e-3
    assert "--per_device_train_batch_size" not in chosen
    sentences = flags("--per_device_train_batch_size", "32", "--learning_rate", "7e-4")
    assert sentences["--per_device_train_batch_size"] == "32" and "--max_tokens" not in sentences
    assert float(sentences["--learning_rate"]) == 7e-4
    assert float(flags("--learning_rate", "1.4e-3")["--learning_rate"]) == 1.4e-3
    for bad in (["--learning_rate", "nan"], ["--learning_rate", "0"], ["--max_tokens", "0"],
                ["--per_device_train_batch_size", "0"], ["--max_tokens", "800", "--per_device_train_batch_size", "8"]):
        with pytest.raises(SystemExit) as refused:
            demo.main(bad)
        assert refused.value.code == 2, bad
    assert not commands
