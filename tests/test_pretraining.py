"""Pre-training by text infilling (recipes.pretrain), the time budget, and pushing the final folder to the Hub."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration
from hf_vanilla.training.budget import InverseSqrtSchedule
from hf_vanilla.training.pretraining import (
    MASK_TOKEN,
    InfillingCollator,
    MaskedLMCollator,
    chunk_ids,
    infill,
    masked_lm_loss,
)
from hf_vanilla.training.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--vocab_size", "300", "--logging_steps", "5"]


def run_module(module, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def pretrain_tiny(tmp_path, steps, *args):
    """recipes.pretrain on a tiny model and a few dozen lines of toy text: (the process, its output folder)."""
    texts = tmp_path / "text.txt"
    texts.write_text("\n".join(f"the {a} {b} sees a {c} today." for a in ("big", "small", "red") for b in
                               ("cat", "dog", "bird") for c in ("cat", "dog", "bird")) * 3 + "\n")
    pretrained = tmp_path / "pretrained"
    result = run_module("recipes.pretrain", *args, "--corpora", "none", "--text_files", texts, "--vocabulary_pairs",
                        "none", "--output_dir", pretrained, *TINY, "--max_steps", steps, "--save_steps", 10,
                        "--warmup_steps", 5, "--validation_share", 0.1)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, pretrained


def classify_from(pretrained, tmp_path):
    """recipes.train_classification started from a pre-trained folder (--init_from), on toy reviews."""
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("review,stars\n" + "".join(f"the {w} film number {i},{'pos' if w == 'good' else 'neg'}\n"
                                                  for i in range(30) for w in ("good", "bad")))
    classified = run_module("recipes.train_classification", "--train_file", reviews, "--text_column", "review",
                            "--label_column", "stars", "--init_from", pretrained, "--output_dir", tmp_path / "cls",
                            "--num_train_epochs", 1)
    assert classified.returncode == 0, classified.stderr[-3000:]


def test_infilling_masks_about_the_share_asked_in_spans():
    rng = random.Random(0)
    ids = list(range(10, 110))
    masked = infill(ids, 4, rng, mask_ratio=0.3)
    kept = [i for i in masked if i != 4]
    assert 60 <= len(kept) <= 75  # about 30% of 100 tokens removed (spans of 0 insert a mask and remove none)
    assert kept == sorted(kept)  # the rest stays in order
    assert 1 <= masked.count(4) < 30  # spans, not single tokens


def test_collator_batches_masked_sources_and_whole_targets():
    tokenizer = train_bpe_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300, mask_token=MASK_TOKEN)
    assert tokenizer.convert_tokens_to_ids(MASK_TOKEN) == 4 and tokenizer.mask_token == MASK_TOKEN
    examples = [{"input_ids": tokenizer("the cat sat on the mat the cat")["input_ids"]},
                {"input_ids": tokenizer("the mat")["input_ids"]}]
    batch = InfillingCollator(tokenizer, seed=0)(examples)
    assert batch["labels"][0].tolist() == examples[0]["input_ids"]
    assert batch["labels"][1, len(examples[1]["input_ids"]):].eq(-100).all()
    assert (batch["input_ids"] == 4).any() and batch["attention_mask"].sum(1).tolist()[1] <= 3
    assert chunk_ids([[1, 2, 3, 4, 5]], 2) == [[1, 2], [3, 4], [5]]


def test_masked_lm_collator_chooses_about_15_percent_and_never_the_end_token():
    tokenizer = train_bpe_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300, mask_token=MASK_TOKEN)
    ids = tokenizer(" ".join(["the cat sat on the mat"] * 10))["input_ids"]
    examples = [{"input_ids": ids}, {"input_ids": ids[:5] + [tokenizer.eos_token_id]}] * 20
    batch = MaskedLMCollator(tokenizer, decoder_start_token_id=2, seed=0)(examples)
    chosen = batch["labels"] != -100
    real = batch["attention_mask"].bool()
    assert not (chosen & ~real).any()  # padding is never chosen
    assert 0.10 < chosen.sum() / real.sum() < 0.20
    originals = torch.full_like(batch["labels"], -1)
    for row, example in enumerate(examples):
        originals[row, : len(example["input_ids"])] = torch.tensor(example["input_ids"])
    assert torch.equal(batch["labels"][chosen], originals[chosen])  # the labels are the original tokens
    assert torch.equal(batch["input_ids"][~chosen & real], originals[~chosen & real])  # the rest is untouched
    assert (batch["input_ids"][chosen] == tokenizer.mask_token_id).float().mean() > 0.6  # most become <mask>
    for row, example in zip(batch["input_ids"], examples):  # the end token is never chosen
        assert row[len(example["input_ids"]) - 1] == tokenizer.eos_token_id
    assert batch["decoder_input_ids"].tolist() == [[2]] * len(examples)


def test_masked_lm_loss_is_the_encoders_cross_entropy_at_the_chosen_tokens_and_learns():
    torch.manual_seed(0)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=40, dropout=0.0)
    model = VanillaTransformerForConditionalGeneration(config)
    input_ids = torch.randint(5, 40, (3, 12))
    labels = torch.full_like(input_ids, -100)
    labels[:, 3], labels[:, 7] = input_ids[:, 3], input_ids[:, 7]
    masked = input_ids.clone()
    masked[labels != -100] = 4
    inputs = {"input_ids": masked, "attention_mask": torch.ones_like(masked),
              "decoder_input_ids": torch.full((3, 1), config.decoder_start_token_id)}
    loss_func = masked_lm_loss(model.get_output_embeddings())
    outputs = model(**inputs)
    loss = loss_func(outputs, labels)
    states = model.get_encoder()(input_ids=masked).last_hidden_state
    expected = torch.nn.functional.cross_entropy(model.lm_head(states[labels != -100]), labels[labels != -100])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss_func(outputs, labels, num_items_in_batch=12).item() == pytest.approx(expected.item() * 6 / 12,
                                                                                      rel=1e-5)
    loss.backward()
    encoder_grad = model.get_encoder().layers[0].self_attn.q_proj.weight.grad
    decoder_grad = model.get_decoder().layers[0].self_attn.q_proj.weight.grad
    assert encoder_grad.abs().sum() > 0 and decoder_grad is not None and decoder_grad.abs().sum() == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        optimizer.zero_grad()
        loss_func(model(**inputs), labels).backward()
        optimizer.step()
    assert loss_func(model(**inputs), labels).item() < 0.5 * expected.item()  # it learns the masked tokens


def test_schedule_is_the_papers_and_keeps_its_warmup_in_checkpoints():
    schedule = InverseSqrtSchedule(100)
    assert schedule(50) == 0.5 and schedule(100) == 1.0 and abs(schedule(400) - 0.5) < 1e-12
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    schedule.warmup_steps = 10  # what a time budget plans
    state = scheduler.state_dict()
    restored = InverseSqrtSchedule(100)
    torch.optim.lr_scheduler.LambdaLR(optimizer, restored).load_state_dict(state)
    assert restored.warmup_steps == 10


@pytest.mark.parametrize("warmup", [0, 1, 3, 4000])
def test_schedule_equals_the_papers_formula_at_every_edge(warmup):
    """lr(step) / peak = min(step^-0.5, step * w^-1.5) / w^-0.5, w at least 1 (a warm-up of 0 or 1 starts at the
    peak on the first step); step 0 gives 0. (Found by the mutation pass: nothing checked a warm-up of 1.)"""
    schedule, w = InverseSqrtSchedule(warmup), max(1, warmup)
    assert schedule.warmup_steps == w and schedule(0) == 0.0
    for step in (1, 2, w - 1, w, w + 1, 4 * w, 10_000):
        if step < 1:
            continue
        paper = min(step**-0.5, step * w**-1.5) / w**-0.5
        assert schedule(step) == pytest.approx(paper, rel=1e-12), step


def test_pretrain_then_classify_and_translate_from_it(tmp_path, translation_csv):
    result, pretrained = pretrain_tiny(tmp_path, 20)
    assert "held-out denoising loss" in result.stdout
    card = (pretrained / "README.md").read_text()
    assert "text_files" in card and "text infilling" in card
    assert json.loads((pretrained / "results.json").read_text())["steps"] == 20
    classify_from(pretrained, tmp_path)
    translated = run_module("recipes.train_translation", "--train_file", translation_csv, "--source_column", "en",
                            "--target_column", "fr", "--model_name_or_path", pretrained, "--output_dir",
                            tmp_path / "mt", "--max_steps", 4, "--save_steps", 4, "--average_last_n", 1,
                            "--max_eval_samples", 5, "--max_predict_samples", 5)
    assert translated.returncode == 0, translated.stderr[-3000:]


def test_masked_lm_pretraining_trains_the_encoder_a_classifier_starts_from(tmp_path):
    result, pretrained = pretrain_tiny(tmp_path, 10, "--objective", "masked_lm")
    assert "held-out masked-LM loss" in result.stdout
    card = (pretrained / "README.md").read_text()
    assert "masked LM" in card and "15% of the tokens" in card and "text infilling" not in card
    results = json.loads((pretrained / "results.json").read_text())
    assert results["objective"] == "masked_lm" and results["steps"] == 10 and results["validation_loss"] > 0
    assert json.loads((pretrained / "run_settings.json").read_text())["objective"] == "masked_lm"
    where = json.loads((pretrained / "provenance.json").read_text())  # every recipe records where it came from
    assert len(where["commit"]) == 40 and "recipes/pretrain.py --objective masked_lm" in where["command"]
    assert where["machine"]["cores"] and 0 < where["minutes"] < 60
    classify_from(pretrained, tmp_path)


def test_an_unknown_objective_and_masked_lm_under_fsdp_are_usage_errors(tmp_path):
    result = run_module("recipes.pretrain", "--objective", "electra", "--corpora", "none", "--text_files",
                        tmp_path / "missing.txt", "--output_dir", tmp_path / "out")
    assert result.returncode == 2 and "--objective 'electra': choose infilling or masked_lm" in result.stderr
    texts = tmp_path / "text.txt"
    texts.write_text("a few words\n")
    sharded = run_module("recipes.pretrain", "--objective", "masked_lm", "--fsdp", "full_shard", "--corpora", "none",
                         "--text_files", texts, "--output_dir", tmp_path / "out")
    assert sharded.returncode == 2 and "not under --fsdp" in sharded.stderr and not (tmp_path / "out").exists()


def test_time_budget_stops_training_and_still_saves(tmp_path, translation_csv):
    out = tmp_path / "out"
    result = run_module("recipes.train_translation", "--train_file", translation_csv, "--source_column", "en",
                        "--target_column", "fr", "--output_dir", out, *TINY, "--max_steps", 100000,
                        "--max_train_minutes", 0.4, "--warmup_steps", 100000, "--save_steps", 100000,
                        "--eval_strategy", "no", "--average_last_n", 1, "--max_eval_samples", 5,
                        "--max_predict_samples", 5)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warm-up shortened from 100000" in result.stderr and "time budget of 0.4 minutes spent" in result.stderr
    # the bar counts to the steps that fit (not to --max_steps 100000) and shows the minutes left
    assert "min left of the budget" in result.stderr and "/100000 [" not in result.stderr.split("steps fit")[-1]
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    assert 10 < state["global_step"] < 100000
    assert (out / "model.safetensors").is_file() and "test BLEU" in result.stdout


def test_push_to_hub_pushes_the_final_folder_only(tmp_path, translation_csv, monkeypatch):
    """The Hub client is replaced by a recorder (no network here); the recipe runs in this process."""
    from hf_vanilla.training import hub
    from recipes import train_translation

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id))

        def upload_folder(self, folder_path, repo_id, ignore_patterns, **kwargs):
            import fnmatch

            files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()
                           and not any(fnmatch.fnmatch(str(p.relative_to(folder_path)), g) for g in ignore_patterns))
            calls.append(("upload_folder", repo_id, files))
            return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    out = tmp_path / "mt"
    status = train_translation.main(["--train_file", str(translation_csv), "--source_column", "en", "--target_column",
                                     "fr", "--output_dir", str(out), *TINY, "--max_steps", "4", "--save_steps", "2",
                                     "--average_last_n", "2", "--max_eval_samples", "5", "--max_predict_samples", "5",
                                     "--push_to_hub", "--hub_model_id", "me/vanilla-en-fr", "--hub_token", "t0k"])
    assert status == 0
    assert calls[0] == ("token", "t0k") and calls[1] == ("create_repo", "me/vanilla-en-fr")
    _, repo, files = calls[2]
    assert repo == "me/vanilla-en-fr"
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "results.json"} <= set(files)
    assert not [f for f in files if f.startswith(("checkpoint-", "."))]
