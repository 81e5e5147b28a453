"""Property-based tests: over random small configs, input shapes, masks and ids, a forward pass either gives finite
outputs of the right shape or raises one of the documented ValueErrors (docs/errors.md) — never anything else."""

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_vanilla import (
    VanillaTransformerConfig,
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core

# the messages a bad tensor may get (each in the catalogue); anything else is a bug
DOCUMENTED = re.compile(
    r"contains token id -?\d+, outside the vocabulary|must hold integer token ids|is empty \(shape|positions but the "
    r"model takes at most max_position_embeddings|attention_mask has shape|labels contain -?\d+, outside|"
    r"decoder_input_ids holds \d+ sequences but the source batch \d+"
)

configs = st.fixed_dictionaries({
    "heads": st.sampled_from([1, 2, 4]),
    "head_dim": st.sampled_from([2, 4, 8]),
    "encoder_layers": st.integers(1, 2),
    "decoder_layers": st.integers(1, 2),
    "ffn_dim": st.integers(1, 32),
    "vocab_size": st.integers(5, 30),
    "max_position_embeddings": st.integers(1, 12),
    "norm_first": st.booleans(),
    "attn_implementation": st.sampled_from(["eager", "sdpa"]),
    "classifier_pooling": st.sampled_from(["mean", "max", "first"]),
})


def build(head, options, **extra):
    config = VanillaTransformerConfig(
        d_model=options["heads"] * options["head_dim"], num_attention_heads=options["heads"],
        encoder_layers=options["encoder_layers"], decoder_layers=options["decoder_layers"],
        ffn_dim=options["ffn_dim"], vocab_size=options["vocab_size"],
        max_position_embeddings=options["max_position_embeddings"], norm_first=options["norm_first"],
        attn_implementation=options["attn_implementation"], classifier_pooling=options["classifier_pooling"],
        pad_token_id=0, bos_token_id=1, eos_token_id=2, dropout=0.0, **extra,
    )
    torch.manual_seed(0)
    return head(config).eval()


@st.composite
def tensors(draw, options, batch=None):
    """Token ids and any 0/1 mask (all-padding rows included). Nine draws in ten lie inside every limit, so that most
    examples reach the output checks; the tenth may be empty, too long or hold an id outside the vocabulary. `batch`
    fixes the number of rows (a decoder input for a given source)."""
    inside = draw(st.integers(0, 9)) > 0
    if batch is None:
        batch = draw(st.integers(1, 3) if inside else st.integers(0, 3))
    limit = options["max_position_embeddings"]
    length = draw(st.integers(1, limit) if inside else st.integers(0, limit + 2))
    vocab = options["vocab_size"]
    ids = draw(st.lists(st.lists(st.integers(0, vocab - 1), min_size=length, max_size=length), min_size=batch,
                        max_size=batch))
    ids = torch.tensor(ids, dtype=torch.long).reshape(batch, length)
    if not inside and batch and length and draw(st.booleans()):
        ids[draw(st.integers(0, batch - 1)), draw(st.integers(0, length - 1))] = draw(st.sampled_from([-1, vocab]))
    mask = torch.tensor(draw(st.lists(st.integers(0, 1), min_size=batch * length, max_size=batch * length)),
                        dtype=torch.long).reshape(batch, length)
    return ids, mask


def finite_or_documented(call):
    try:
        return call()
    except ValueError as error:
        assert DOCUMENTED.search(str(error)), f"undocumented error: {error}"
        return None


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REACHED = {"seq2seq": 0, "classifier": 0}  # examples that got past the documented errors to the output checks


@SETTINGS
@given(data=st.data(), options=configs)
def test_seq2seq_forward_is_finite_or_a_documented_error(data, options):
    model = build(VanillaTransformerForConditionalGeneration, options)
    ids, mask = data.draw(tensors(options))
    # the decoder's batch is the source's, except now and then (a documented error of its own)
    batch = len(ids) if data.draw(st.integers(0, 9)) else data.draw(st.integers(0, 3))
    decoder_ids, _ = data.draw(tensors(options, batch=batch))
    output = finite_or_documented(lambda: model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids))
    if output is not None:
        REACHED["seq2seq"] += 1
        assert output.logits.shape == (*decoder_ids.shape, options["vocab_size"])
        assert output.encoder_last_hidden_state.shape == (*ids.shape, options["heads"] * options["head_dim"])
        assert torch.isfinite(output.logits).all() and torch.isfinite(output.encoder_last_hidden_state).all()


@SETTINGS
@given(data=st.data(), options=configs, num_labels=st.integers(1, 4))
def test_classifier_forward_is_finite_or_a_documented_error(data, options, num_labels):
    model = build(VanillaTransformerForSequenceClassification, options, num_labels=num_labels)
    ids, mask = data.draw(tensors(options))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, num_labels), min_size=len(ids), max_size=len(ids))),
                          dtype=torch.long)
    output = finite_or_documented(lambda: model(input_ids=ids, attention_mask=mask, labels=labels))
    if output is not None:
        REACHED["classifier"] += 1
        assert output.logits.shape == (len(ids), num_labels)
        assert torch.isfinite(output.logits).all() and torch.isfinite(output.loss)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_documented_errors_are_reachable(implementation):
    """The pattern above is not vacuous: each branch of it is hit by some input."""
    options = {"heads": 2, "head_dim": 4, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 8, "vocab_size": 9,
               "max_position_embeddings": 4, "norm_first": True, "attn_implementation": implementation,
               "classifier_pooling": "mean"}
    model = build(VanillaTransformerForConditionalGeneration, options)
    good = torch.tensor([[3, 4]])
    for bad in [dict(input_ids=torch.tensor([[3, 9]])), dict(input_ids=good.float()),
                dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), dict(input_ids=torch.ones(1, 5, dtype=torch.long)),
                dict(attention_mask=torch.ones(1, 3)), dict(decoder_input_ids=torch.tensor([[3], [4]]))]:
        with pytest.raises(ValueError, match=DOCUMENTED):
            model(**{"input_ids": good, "decoder_input_ids": good, **bad})


def test_the_properties_check_outputs_not_only_errors():
    """Most drawn examples must reach the output checks: inputs that only ever hit a documented error would let the
    properties above pass without checking a single output."""
    for name, test in (("seq2seq", test_seq2seq_forward_is_finite_or_a_documented_error),
                       ("classifier", test_classifier_forward_is_finite_or_a_documented_error)):
        REACHED[name] = 0
        test()  # all of its examples again
        assert REACHED[name] >= 15, f"only {REACHED[name]} of 60 {name} examples reached the output checks"
