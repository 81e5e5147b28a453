import random

import pytest
import torch
from conftest import scrambled, tiny_config, word_tokenizer
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, pipeline

from hf_vanilla import VanillaTransformerForSequenceClassification

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core


def classifier(**overrides):
    torch.manual_seed(0)
    return scrambled(VanillaTransformerForSequenceClassification(tiny_config(**overrides)), std=0.1)


@pytest.mark.parametrize("pooling", ["mean", "max", "first"])
def test_logits_unchanged_by_extra_padding(pooling, batch):
    model = classifier(num_labels=3, classifier_pooling=pooling)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    padded = {k: torch.nn.functional.pad(v, (0, 5)) for k, v in inputs.items()}
    torch.testing.assert_close(model(**inputs).logits, model(**padded).logits, rtol=1e-5, atol=1e-5)
    assert model(**inputs).logits.shape == (3, 3)


def test_mean_pooling_averages_only_real_tokens(batch):
    model = classifier(num_labels=2)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    hidden = out.hidden_states[-1]
    row = 2  # three real tokens
    expected = model.classifier(hidden[row, :3].mean(0))
    torch.testing.assert_close(out.logits[row], expected)


def test_max_pooling_takes_the_largest_value_over_real_tokens_only(batch):
    model = classifier(num_labels=2, classifier_pooling="max")
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    hidden = out.hidden_states[-1]
    row = 2  # three real tokens
    expected = model.classifier(hidden[row, :3].amax(0))
    torch.testing.assert_close(out.logits[row], expected)
    assert not torch.allclose(hidden[row, :3].amax(0), hidden[row].amax(0))  # the padding would have changed it


def test_single_label_loss_and_problem_type(batch):
    model = classifier(num_labels=3)
    labels = torch.tensor([0, 2, 1])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    assert model.config.problem_type == "single_label_classification"


def test_multi_label_loss(batch):
    model = classifier(num_labels=4)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels))
    assert model.config.problem_type == "multi_label_classification"


def test_regression_loss(batch):
    model = classifier(num_labels=1)
    labels = torch.tensor([0.5, -1.0, 2.0])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))
    assert model.config.problem_type == "regression"


def test_regression_over_several_outputs_takes_integer_targets(batch):
    """problem_type "regression" with 2 outputs, integer targets converted to the logits' dtype (found by the
    mutation pass: only 1 output and float targets were tested)."""
    model = classifier(num_labels=2, problem_type="regression")
    labels = torch.tensor([[1, 2], [0, -1], [3, 0]])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits, labels.float()))
    with pytest.raises(ValueError, match=r"labels have shape \(3,\); regression expects \(3, 2\)"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels[:, 0])


def test_multi_label_takes_integer_targets(batch):
    model = classifier(num_labels=4, problem_type="multi_label_classification")
    labels = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    torch.testing.assert_close(out.loss,
                               torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels.float()))


def test_label_outside_num_labels_is_a_clear_error(batch):
    model = classifier(num_labels=2)
    with pytest.raises(ValueError, match=r"labels contain 5, outside \[0, num_labels=2\)"):
        model(input_ids=batch["input_ids"], labels=torch.tensor([0, 5, 1]))


def test_labels_of_the_wrong_shape(batch):
    model = classifier(num_labels=2)
    with pytest.raises(ValueError, match=r"labels have shape \(2,\); single-label classification expects \(3,\)"):
        model(input_ids=batch["input_ids"], labels=torch.tensor([0, 1]))


def test_all_padding_row_is_finite(batch):
    model = classifier(num_labels=2)
    mask = batch["attention_mask"].clone()
    mask[0] = 0
    for implementation in ("sdpa", "eager"):
        model.set_attn_implementation(implementation)
        assert torch.isfinite(model(input_ids=batch["input_ids"], attention_mask=mask).logits).all()


@pytest.mark.parametrize("pooling", ["mean", "max", "first"])
def test_each_pooling_is_its_formula_over_real_tokens(pooling, batch):
    """mean: the average of the real tokens (a one-token text is that token); max: their largest value of each
    feature; first: the first token. An all-padding row pools to 0 under mean and max, so its logits are the
    classifier's bias (found by the mutation pass: first-token pooling, the one-token mean and the all-padding rows
    went unchecked)."""
    model = classifier(num_labels=2, classifier_pooling=pooling)
    mask = batch["attention_mask"].clone()
    mask[1, 1:] = 0  # one real token
    mask[2] = 0  # none
    out = model(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states[-1]
    for row, length in ((0, 7), (1, 1)):
        real = hidden[row, :length]
        pooled = {"mean": real.mean(0), "max": real.amax(0), "first": hidden[row, 0]}[pooling]
        torch.testing.assert_close(out.logits[row], model.classifier(pooled))
    if pooling != "first":  # the first token of an all-padding row is a (padding) token's state, as in BERT
        torch.testing.assert_close(out.logits[2], model.classifier.bias)


def test_the_classifier_takes_embeddings_returns_attentions_and_tuples(batch):
    """inputs_embeds instead of ids, output_attentions and return_dict=False work as in HF's own heads; an argument
    the classifier does not use is refused naming the classifier (found by the mutation pass)."""
    model = classifier(num_labels=3)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    out = model(**inputs, output_attentions=True)
    embeds = model.get_input_embeddings()(batch["input_ids"])
    torch.testing.assert_close(model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits, out.logits)
    assert len(out.attentions) == model.config.encoder_layers and out.attentions[0].shape == (3, 4, 7, 7)
    as_tuple = model(**inputs, labels=torch.tensor([0, 2, 1]), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[1], out.logits)
    with pytest.raises(TypeError, match=r"VanillaTransformerForSequenceClassification.forward\(\) got argument\(s\) it "
                                        r"does not use: decoder_input_ids"):
        model(**inputs, decoder_input_ids=batch["input_ids"])


def test_regression_loss_is_in_the_logits_dtype_and_names_the_expected_shape(batch):
    """float64 targets give a float32 loss for a float32 model (the targets follow the logits, as HF's heads), and a
    wrong shape names (batch,) for one output (found by the mutation pass)."""
    model = classifier(num_labels=1)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                labels=torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    assert out.loss.dtype == torch.float32
    with pytest.raises(ValueError, match=r"labels have shape \(3, 2\); regression expects \(3,\)\."):
        model(input_ids=batch["input_ids"], labels=torch.zeros(3, 2))


WORDS = "good great fine superb bad awful poor dreadful the a film plot was is very".split()
POSITIVE, NEGATIVE = WORDS[:4], WORDS[4:8]
FILLER = WORDS[8:]


def sentiment_examples(count, seed):
    """Toy sentences whose label is set by which word list their one opinion word comes from."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        examples.append({"text": " ".join(words), "label": label})
    return examples


def test_trainer_learns_a_separable_task_and_the_model_works_in_a_pipeline(tmp_path):
    tokenizer = word_tokenizer(WORDS)
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), num_labels=2, id2label={0: "negative", 1: "positive"},
                         label2id={"negative": 0, "positive": 1})
    model = VanillaTransformerForSequenceClassification(config)

    def tokenize(rows):
        return tokenizer(rows["text"], truncation=True)

    train = Dataset.from_list(sentiment_examples(2000, seed=0)).map(tokenize, batched=True, remove_columns=["text"])
    test_rows = sentiment_examples(200, seed=1)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=150, per_device_train_batch_size=32, learning_rate=1e-3,
        warmup_steps=10, save_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True, seed=0,
    )
    Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer)).train()

    folder = tmp_path / "classifier"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    predictions = classify([row["text"] for row in test_rows], batch_size=16)
    accuracy = sum(p["label"] == config.id2label[row["label"]] for p, row in zip(predictions, test_rows)) / 200
    assert accuracy >= 0.95
    assert {p["label"] for p in predictions} == {"negative", "positive"}
