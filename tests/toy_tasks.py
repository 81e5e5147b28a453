"""Toy tasks for the tests: sequence reversal trained by Seq2SeqTrainer."""

import random

import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed

from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration

PAD, BOS, EOS = 0, 1, 2
FIRST_SYMBOL = 4  # ids 0-3 are pad, bos, eos, unk


def reversal_examples(count, vocab_size=40, min_length=3, max_length=8, seed=0):
    """`count` random symbol sequences, each with its reversal as the target; both end with EOS."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        source = [rng.randrange(FIRST_SYMBOL, vocab_size) for _ in range(rng.randint(min_length, max_length))]
        examples.append({"input_ids": source + [EOS], "labels": source[::-1] + [EOS]})
    return examples


class _PadOnly:
    """The collator needs only a tokenizer's padding: the toy task has no text."""

    pad_token_id = PAD
    padding_side = "right"

    def pad(self, features, return_tensors="pt", **kwargs):
        length = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), length), PAD)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for row, feature in enumerate(features):
            input_ids[row, : len(feature["input_ids"])] = torch.tensor(feature["input_ids"])
            attention_mask[row, : len(feature["input_ids"])] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def exact_match(model, examples, batch_size=128):
    """Share of examples whose greedy generation equals the target exactly."""
    collate = _PadOnly()
    hits = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate.pad(chunk)
        generated = model.generate(**batch.copy(), max_new_tokens=12, do_sample=False, num_beams=1)
        for example, row in zip(chunk, generated.tolist()):
            hits += row[1 : 1 + len(example["labels"])] == example["labels"]
    return hits / len(examples)


def train_reversal(output_dir, max_steps=900, vocab_size=40, seed=0, report=True, norm_first=True):
    """Train the `tiny` preset on sequence reversal with Seq2SeqTrainer (label smoothing 0.1) and save it."""
    set_seed(seed)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=vocab_size, dropout=0.0, max_position_embeddings=64,
                                                  norm_first=norm_first)
    model = VanillaTransformerForConditionalGeneration(config)
    train = Dataset.from_list(reversal_examples(20_000, vocab_size, seed=seed))
    args = Seq2SeqTrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=64,
        learning_rate=1e-3,
        warmup_steps=100,
        lr_scheduler_type="inverse_sqrt",
        adam_beta2=0.98,
        adam_epsilon=1e-9,
        label_smoothing_factor=0.1,
        logging_steps=100,
        save_strategy="no",
        report_to=[],
        disable_tqdm=not report,
        use_cpu=True,
        seed=seed,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=DataCollatorForSeq2Seq(_PadOnly(), model=model, label_pad_token_id=-100),
    )
    trainer.train()
    model.save_pretrained(output_dir)
    return model.eval()
