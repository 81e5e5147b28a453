import pytest
import torch
from toy_tasks import _PadOnly, exact_match, reversal_examples

from hf_vanilla import VanillaTransformerForConditionalGeneration

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core

DECODING = {
    "greedy": dict(do_sample=False),
    "beam": dict(num_beams=4, do_sample=False),
    "sampling": dict(do_sample=True, top_k=5, temperature=2.0),
}


@pytest.fixture(scope="module")
def sources():
    """Six right-padded reversal inputs of different lengths."""
    return _PadOnly().pad(reversal_examples(6, seed=99, min_length=2, max_length=8))


def test_seq2seq_trainer_learns_sequence_reversal(reversal_model):
    """Seq2SeqTrainer with label smoothing 0.1 teaches the tiny preset to reverse unseen sequences. Seeded, but the
    900 steps' float sums are not bit-identical from run to run on a CPU (one full-suite run gave 0.933, others
    >= 0.95): 0.9 still fails a model that has not learned the task (an untrained one is near 0)."""
    assert exact_match(reversal_model, reversal_examples(300, seed=4321)) >= 0.9


@pytest.mark.parametrize("mode", DECODING)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_cache_gives_the_same_tokens(mode, implementation, reversal_model, sources):
    reversal_model.set_attn_implementation(implementation)
    torch.manual_seed(1)
    cached = reversal_model.generate(**sources, max_new_tokens=10, use_cache=True, **DECODING[mode])
    torch.manual_seed(1)
    uncached = reversal_model.generate(**sources, max_new_tokens=10, use_cache=False, **DECODING[mode])
    reversal_model.set_attn_implementation("sdpa")
    assert torch.equal(cached, uncached)
    assert len(set(cached[:, 1:].flatten().tolist())) > 6  # input-dependent output, not one repeated token


def test_cache_gives_the_same_logits(reversal_model, sources):
    """Decoding token by token with the cache reproduces the logits of one full forward pass."""
    target = reversal_model.generate(**sources, max_new_tokens=8, min_new_tokens=8)
    full = reversal_model(**sources, decoder_input_ids=target).logits
    encoder_outputs = reversal_model.get_encoder()(**sources)
    cache, steps = None, []
    for position in range(target.shape[1]):
        out = reversal_model(
            attention_mask=sources["attention_mask"],
            encoder_outputs=encoder_outputs,
            decoder_input_ids=target[:, position : position + 1],
            cache=cache,
            use_cache=True,
        )
        cache = out.cache if "cache" in out else out.past_key_values  # the field's name before transformers 5.x
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_padded_batch_generates_what_each_sentence_generates_alone(mode, reversal_model, sources):
    together = reversal_model.generate(**sources, max_new_tokens=10, **DECODING[mode])
    for row in range(together.shape[0]):
        length = int(sources["attention_mask"][row].sum())
        alone = reversal_model.generate(
            input_ids=sources["input_ids"][row : row + 1, :length], max_new_tokens=10, **DECODING[mode]
        )
        width = alone.shape[1]
        assert together[row, :width].tolist() == alone[0].tolist()
        finished = (together[row, width:] == reversal_model.config.pad_token_id) | (
            together[row, width:] == reversal_model.config.eos_token_id
        )
        assert finished.all()


def test_generation_starts_with_the_decoder_start_token(reversal_model, sources):
    out = reversal_model.generate(**sources, max_new_tokens=4)
    assert (out[:, 0] == reversal_model.config.decoder_start_token_id).all()


def test_cross_attention_keys_and_values_are_computed_once(reversal_model, sources):
    """Cross-attention k/v projections run once per generate call, not once per new token."""
    calls = []
    hooks = [
        layer.encoder_attn.k_proj.register_forward_hook(lambda *args: calls.append(1))
        for layer in reversal_model.model.decoder.layers
    ]
    try:
        reversal_model.generate(**sources, max_new_tokens=8, min_new_tokens=8, num_beams=2)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == len(reversal_model.model.decoder.layers)


def test_generate_returns_cross_attentions(reversal_model, sources):
    out = reversal_model.generate(
        **sources, max_new_tokens=5, min_new_tokens=5, output_attentions=True, return_dict_in_generate=True
    )
    assert len(out.cross_attentions) == 5  # one entry per generated token
    assert out.cross_attentions[-1][0].shape[-1] == sources["input_ids"].shape[1]
    # a trained reversal model looks at the source token it is copying: the first output attends to the last symbol
    first_step = out.cross_attentions[0][-1][0].mean(0)[-1]  # last layer, row 0, mean over heads, query -1
    assert first_step.argmax().item() == int(sources["attention_mask"][0].sum()) - 2


@pytest.fixture(scope="module")
def post_ln_reversal_model(tmp_path_factory):
    """The paper's post-LN placement, trained on reversal: an untrained (or scrambled) post-LN model repeats one token
    per row, which would let cached and uncached decoding agree for the wrong reason."""
    from toy_tasks import train_reversal

    return train_reversal(str(tmp_path_factory.mktemp("post-ln")), max_steps=400, report=False, norm_first=False)


@pytest.mark.parametrize("mode", ["greedy", "beam"])
def test_post_ln_model_generates_with_and_without_cache(post_ln_reversal_model, sources, mode):
    model = post_ln_reversal_model
    assert not model.config.norm_first
    a = model.generate(**sources, max_new_tokens=8, use_cache=True, **DECODING[mode])
    b = model.generate(**sources, max_new_tokens=8, use_cache=False, **DECODING[mode])
    assert torch.equal(a, b)
    assert len({tuple(row) for row in a[:, 1:].tolist()}) == len(a)  # each input its own output


def test_beam_search_leaves_the_cross_attention_cache_in_place_with_the_same_results(sources, monkeypatch):
    """`_reorder_cache` skips copying cross-attention keys/values (equal across a sentence's beams): same beams."""
    from hf_vanilla import VanillaTransformerConfig

    torch.manual_seed(0)  # untrained weights: beams change places at almost every step
    model = VanillaTransformerForConditionalGeneration(VanillaTransformerConfig.from_preset("tiny", vocab_size=40))
    model.eval()
    settings = dict(max_new_tokens=10, min_new_tokens=10, num_beams=4, num_return_sequences=4, do_sample=False,
                    output_scores=True, return_dict_in_generate=True)
    reorders = []

    def spy(cache, beam_idx):
        reorders.append(beam_idx.clone())
        return VanillaTransformerForConditionalGeneration._reorder_cache(cache, beam_idx)

    monkeypatch.setattr(model, "_reorder_cache", spy)
    fast = model.generate(**sources, **settings)

    def reorder_everything(cache, beam_idx):
        cache.reorder_cache(beam_idx)  # what transformers does without the hook
        return cache

    monkeypatch.setattr(model, "_reorder_cache", reorder_everything)
    full = model.generate(**sources, **settings)
    assert reorders and any(not torch.equal(idx, torch.arange(len(idx))) for idx in reorders)  # beams did move
    assert torch.equal(fast.sequences, full.sequences)
    torch.testing.assert_close(fast.sequences_scores, full.sequences_scores)
