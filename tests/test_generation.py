import pytest
import torch

from conftest import scrambled, tiny_config
from hf_vanilla import VanillaTransformerForConditionalGeneration

DECODING = {
    "greedy": dict(do_sample=False),
    "beam": dict(num_beams=3, do_sample=False),
    "sampling": dict(do_sample=True, top_k=8),
}


@pytest.mark.parametrize("mode", DECODING)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_cache_gives_the_same_tokens(mode, implementation, batch):
    torch.manual_seed(0)
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(attn_implementation=implementation)))
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    torch.manual_seed(1)
    cached = model.generate(**inputs, max_new_tokens=10, use_cache=True, **DECODING[mode])
    torch.manual_seed(1)
    uncached = model.generate(**inputs, max_new_tokens=10, use_cache=False, **DECODING[mode])
    assert torch.equal(cached, uncached)
    assert len(set(cached[:, 1:].flatten().tolist())) > 3  # the model is not stuck on one token


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_padded_batch_generates_what_each_sentence_generates_alone(mode, seq2seq, batch):
    together = seq2seq.generate(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=10, **DECODING[mode]
    )
    for row in range(3):
        length = int(batch["attention_mask"][row].sum())
        alone = seq2seq.generate(input_ids=batch["input_ids"][row : row + 1, :length], max_new_tokens=10,
                                 **DECODING[mode])
        width = alone.shape[1]
        assert together[row, :width].tolist() == alone[0].tolist()
        assert (together[row, width:] == seq2seq.config.pad_token_id).all()


def test_generation_starts_with_the_decoder_start_token(seq2seq, batch):
    out = seq2seq.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=4)
    assert (out[:, 0] == seq2seq.config.decoder_start_token_id).all()


def test_cross_attention_keys_and_values_are_computed_once(seq2seq, batch):
    """Cross-attention k/v projections run once per generate call (per beam batch), not once per new token."""
    calls = []
    hooks = [
        layer.encoder_attn.k_proj.register_forward_hook(lambda *args: calls.append(1))
        for layer in seq2seq.model.decoder.layers
    ]
    seq2seq.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=8,
                     min_new_tokens=8)
    for hook in hooks:
        hook.remove()
    assert len(calls) == len(seq2seq.model.decoder.layers)


def test_generate_with_attention_outputs(seq2seq, batch):
    out = seq2seq.generate(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        max_new_tokens=5,
        min_new_tokens=5,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    assert len(out.cross_attentions) == 5  # one entry per generated token
    assert out.cross_attentions[-1][0].shape[-1] == batch["input_ids"].shape[1]
