import copy
import math

import pytest
import torch
from conftest import VOCAB, scrambled, tiny_config

from hf_vanilla import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerModel,
    sinusoidal_position_encoding,
)
from hf_vanilla.modeling_vanilla_transformer import VanillaTransformerAttention

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core


def test_position_encoding_is_the_papers_interleaved_formula():
    table = sinusoidal_position_encoding(50, 16)
    assert table.shape == (50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_position_encoding_is_a_rebuilt_non_persistent_buffer(tmp_path, config):
    model = VanillaTransformerForConditionalGeneration(config)
    assert not any("position_encoding" in key for key in model.state_dict())
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path)
    expected = sinusoidal_position_encoding(config.max_position_embeddings, config.d_model)
    assert torch.equal(loaded.model.encoder.position_encoding, expected)
    assert torch.equal(loaded.model.decoder.position_encoding, expected)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_zeroes_with_probability_p_and_keeps_only_a_boolean_mask(p):
    """The CPU dropout: Bernoulli(p) zeros, survivors scaled by 1/(1-p), the same gradient mask, seeded draws."""
    from hf_vanilla.modeling_vanilla_transformer import Dropout

    dropout = Dropout(p).train()
    x = (torch.rand(1000, 1000) + 0.5).requires_grad_()  # no zeros of its own
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        torch.manual_seed(0)
        y = dropout(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.005  # 1e6 draws: the standard error is below 0.0005
    torch.testing.assert_close(y[~dropped], x[~dropped] / (1 - p))
    y.sum().backward()
    torch.testing.assert_close(x.grad, (~dropped).float() / (1 - p))
    assert saved and all(t.dtype == torch.bool for t in saved)  # 1 byte per element, not nn.Dropout's 4
    torch.manual_seed(0)
    assert torch.equal(dropout(x), y)  # reproducible under torch.manual_seed (resumption, checkpointing)
    assert torch.equal(dropout.eval()(x), x)


def test_shapes(seq2seq, batch, config):
    out = seq2seq(**batch)
    assert out.logits.shape == (3, 6, VOCAB)
    assert out.encoder_last_hidden_state.shape == (3, 7, config.d_model)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    base = VanillaTransformerModel(config).eval()
    hidden = base(input_ids=batch["input_ids"], decoder_input_ids=batch["labels"]).last_hidden_state
    assert hidden.shape == (3, 6, config.d_model)


def test_three_way_tied_embeddings(config):
    model = VanillaTransformerForConditionalGeneration(config)
    shared = model.model.shared.weight
    assert model.lm_head.weight is shared
    assert model.model.encoder.embed_tokens.weight is shared
    assert model.model.decoder.embed_tokens.weight is shared
    untied = VanillaTransformerForConditionalGeneration(tiny_config(tie_word_embeddings=False))
    assert untied.lm_head.weight is not untied.model.shared.weight
    assert untied.model.decoder.embed_tokens.weight is untied.model.shared.weight  # one shared vocabulary


def test_resize_token_embeddings_keeps_the_ties(config):
    model = VanillaTransformerForConditionalGeneration(config)
    model.resize_token_embeddings(VOCAB + 8, mean_resizing=False)
    shared = model.model.shared.weight
    assert shared.shape == (VOCAB + 8, config.d_model)
    assert model.config.vocab_size == VOCAB + 8
    assert model.lm_head.weight is shared
    assert model.model.encoder.embed_tokens.weight is shared and model.model.decoder.embed_tokens.weight is shared
    logits = model(input_ids=torch.tensor([[VOCAB + 7, 5]]), decoder_input_ids=torch.tensor([[1]])).logits
    assert logits.shape[-1] == VOCAB + 8


def test_eager_and_sdpa_agree(batch):
    torch.manual_seed(0)
    sdpa = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(attn_implementation="sdpa")))
    eager = copy.deepcopy(sdpa)
    eager.set_attn_implementation("eager")
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    real = batch["attention_mask"].bool()
    a, b = sdpa(**batch), eager(**batch)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        a.encoder_last_hidden_state[real], b.encoder_last_hidden_state[real], rtol=1e-4, atol=1e-4
    )
    # with decoder padding too (an explicit causal+padding mask under both)
    decoder_mask = torch.ones_like(batch["labels"])
    decoder_mask[0, 4:] = 0
    a = sdpa(**batch, decoder_attention_mask=decoder_mask).logits
    b = eager(**batch, decoder_attention_mask=decoder_mask).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_is_causal(norm_first, batch):
    """Changing a later target token never changes the logits at earlier positions."""
    torch.manual_seed(0)
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(norm_first=norm_first)))
    labels = batch["labels"].clone()
    before = model(**{**batch, "labels": labels}).logits
    labels[:, 4] = (labels[:, 4] + 1) % VOCAB
    after = model(**{**batch, "labels": labels}).logits
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_post_ln_has_no_final_norm_and_pre_ln_has_one():
    pre = VanillaTransformerForConditionalGeneration(tiny_config())
    post = VanillaTransformerForConditionalGeneration(tiny_config(norm_first=False))
    assert pre.model.encoder.layer_norm is not None and pre.model.decoder.layer_norm is not None
    assert post.model.encoder.layer_norm is None and post.model.decoder.layer_norm is None


def test_encoder_ignores_padding(seq2seq, batch):
    """Extra padding on the source changes nothing for the real tokens."""
    padded = {k: torch.nn.functional.pad(v, (0, 4)) for k, v in batch.items() if k != "labels"}
    a = seq2seq(**batch).logits
    b = seq2seq(**padded, labels=batch["labels"]).logits
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_output_attentions_and_hidden_states(seq2seq, batch, config):
    out = seq2seq(**batch, output_attentions=True, output_hidden_states=True)
    layers, heads = config.encoder_layers, config.num_attention_heads
    assert len(out.encoder_hidden_states) == layers + 1 and len(out.decoder_hidden_states) == layers + 1
    assert out.encoder_attentions[0].shape == (3, heads, 7, 7)
    assert out.decoder_attentions[0].shape == (3, heads, 6, 6)
    assert out.cross_attentions[0].shape == (3, heads, 6, 7)
    torch.testing.assert_close(out.encoder_hidden_states[-1], out.encoder_last_hidden_state)
    # rows are distributions, padding gets no weight, the future gets no weight
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(3, heads, 6))
    assert out.cross_attentions[0][2, :, :, 3:].abs().max() == 0
    assert torch.triu(out.decoder_attentions[0][0, 0], diagonal=1).abs().max() == 0


def test_all_padding_row_is_finite(seq2seq, batch):
    batch["attention_mask"][1] = 0
    for implementation in ("sdpa", "eager"):
        seq2seq.set_attn_implementation(implementation)
        out = seq2seq(**batch)
        assert torch.isfinite(out.logits).all() and torch.isfinite(out.encoder_last_hidden_state).all()
        assert torch.isfinite(out.loss)


def test_gradient_checkpointing_gives_the_same_gradients(batch):
    torch.manual_seed(0)
    model = VanillaTransformerForConditionalGeneration(tiny_config(dropout=0.0)).train()

    def gradients():
        model.zero_grad()
        model(**batch).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.encoder.layers)
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], msg=name)


def test_loss_ignores_minus_100(seq2seq, batch):
    labels = batch["labels"].clone()
    labels[:, 3:] = -100
    masked = seq2seq(**{**batch, "labels": labels}, decoder_input_ids=seq2seq.prepare_decoder_input_ids_from_labels(
        batch["labels"])).loss
    logits = seq2seq(**batch).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :3].reshape(-1, VOCAB), batch["labels"][:, :3].reshape(-1))
    torch.testing.assert_close(masked, expected)


def test_prepare_decoder_input_ids_from_labels(seq2seq):
    labels = torch.tensor([[5, 6, 2, -100]])
    assert seq2seq.prepare_decoder_input_ids_from_labels(labels).tolist() == [[1, 5, 6, 2]]
    # an ignored label inside the sequence becomes padding, not the id -100 (found by the mutation pass)
    labels = torch.tensor([[5, -100, 6, 2]])
    assert seq2seq.prepare_decoder_input_ids_from_labels(labels).tolist() == [[1, 5, seq2seq.config.pad_token_id, 6]]


# ---- bad input gets a clear error ----------------------------------------------------------------------------------


def test_token_id_outside_vocabulary(seq2seq):
    with pytest.raises(ValueError, match=rf"input_ids contains token id {VOCAB}.*vocab_size={VOCAB}"):
        seq2seq(input_ids=torch.tensor([[5, VOCAB]]), decoder_input_ids=torch.tensor([[1]]))
    with pytest.raises(ValueError, match=r"decoder_input_ids contains token id -3.*vocab_size"):
        seq2seq(input_ids=torch.tensor([[5, 6]]), decoder_input_ids=torch.tensor([[1, -3]]))


def test_float_input_ids(seq2seq):
    with pytest.raises(ValueError, match=r"input_ids must hold integer token ids, got dtype torch.float32"):
        seq2seq(input_ids=torch.tensor([[5.0, 6.0]]), decoder_input_ids=torch.tensor([[1]]))


def test_sequence_longer_than_the_table(seq2seq, config):
    too_long = torch.full((1, config.max_position_embeddings + 1), 5)
    with pytest.raises(ValueError, match=r"^input_ids has 65 positions.*max_position_embeddings=64"):
        seq2seq(input_ids=too_long, decoder_input_ids=torch.tensor([[1]]))
    with pytest.raises(ValueError, match=r"^decoder_input_ids has 65 positions.*max_position_embeddings=64"):
        seq2seq(input_ids=torch.tensor([[5]]), decoder_input_ids=too_long)


def test_mismatched_attention_mask(seq2seq, batch):
    with pytest.raises(ValueError, match=r"attention_mask has shape \(3, 5\) but must be .* \(3, 7\)"):
        seq2seq(**{**batch, "attention_mask": batch["attention_mask"][:, :5]})


def test_labels_of_the_wrong_shape(seq2seq, batch):
    with pytest.raises(ValueError, match=r"labels must have shape \(batch_size, target_length\), got \(18,\)"):
        seq2seq(**{**batch, "labels": batch["labels"].reshape(-1)})


def test_empty_batch(seq2seq):
    with pytest.raises(ValueError, match=r"input_ids is empty"):
        seq2seq(input_ids=torch.zeros((0, 4), dtype=torch.long), decoder_input_ids=torch.tensor([[1]]))


# ---- the model's own API refuses what it would silently ignore (reliability round three) ----------------------------


def test_forwards_refuse_arguments_they_do_not_use(config, batch):
    from hf_vanilla import VanillaTransformerForSequenceClassification, VanillaTransformerModel

    seq2seq = VanillaTransformerForConditionalGeneration(config)
    with pytest.raises(TypeError, match="atention_mask"):
        seq2seq(input_ids=batch["input_ids"], atention_mask=batch["attention_mask"], labels=batch["labels"])
    with pytest.raises(TypeError, match="decoder_inputs_ids"):
        VanillaTransformerModel(config)(input_ids=batch["input_ids"], decoder_inputs_ids=batch["labels"])
    classifier = VanillaTransformerForSequenceClassification(tiny_config(num_labels=2))
    with pytest.raises(TypeError, match="decoder_input_ids"):
        classifier(input_ids=batch["input_ids"], decoder_input_ids=batch["labels"])
    # what transformers itself passes is still accepted
    seq2seq(input_ids=batch["input_ids"], labels=batch["labels"], num_items_in_batch=torch.tensor(10))


def test_generate_stops_at_the_models_positions_and_keeps_what_it_made(hf_logs):
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(max_position_embeddings=30)))
    ids = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    capped = model.generate(ids, max_new_tokens=150, num_beams=1, min_new_tokens=150)
    assert capped.shape == (2, 30) and "would run past the model's 30 positions" in hf_logs.text
    # no length anywhere: the paper's input length + 50, within the positions
    assert model.generate(ids, num_beams=1, min_new_tokens=40).shape[1] <= 30


def test_generate_with_max_new_tokens_from_a_saved_folder_does_not_warn(tmp_path, hf_logs):
    from transformers import AutoModelForSeq2SeqLM

    from hf_vanilla.training.translation import paper_generation_settings

    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config()))
    paper_generation_settings(model, 4, 0.6)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    hf_logs.clear()
    loaded.generate(torch.randint(4, VOCAB, (1, 5)), max_new_tokens=8)
    assert "max_new_tokens" not in hf_logs.text and "max_length" not in hf_logs.text, hf_logs.text


@pytest.mark.parametrize("damage", ["missing", "extra"])
def test_a_load_is_complete_or_refused_naming_the_tensors(damage, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForSeq2SeqLM

    VanillaTransformerForConditionalGeneration(tiny_config()).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    if damage == "missing":
        del tensors["model.encoder.layers.0.self_attn.q_proj.weight"]
        name = "model.encoder.layers.0.self_attn.q_proj.weight"
    else:
        tensors["model.encoder.layers.9.extra.weight"] = torch.zeros(2)
        name = "model.encoder.layers.9.extra.weight"
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("field,value", [("encoder_layers", 100000), ("max_position_embeddings", 10**9),
                                         ("d_model", 1 << 20)])
def test_absurd_sizes_are_refused_before_anything_is_allocated(field, value):
    import time

    start = time.monotonic()
    with pytest.raises(ValueError, match=f"{field}={value} is above"):
        VanillaTransformerForConditionalGeneration(tiny_config(**{field: value}))
    assert time.monotonic() - start < 5


class _TemperedAttention(VanillaTransformerAttention):
    """A variant: a learned temperature on the queries (a new parameter, saved and loaded with the rest)."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.log_temperature = torch.nn.Parameter(torch.zeros(()))

    def forward(self, hidden_states, *args, **kwargs):
        return super().forward(hidden_states * self.log_temperature.exp(), *args, **kwargs)


class _TwoLayerGeluFeedForward(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc1 = torch.nn.Linear(config.d_model, config.ffn_dim)
        self.fc2 = torch.nn.Linear(config.ffn_dim, config.d_model)

    def forward(self, hidden_states):
        return self.fc2(torch.nn.functional.gelu(self.fc1(hidden_states)))


def test_a_layer_variant_is_one_hook_and_trains_saves_and_reloads(tmp_path, monkeypatch):
    """The layers take their attention and feed-forward classes from `attention_class` / `feed_forward_class`; a
    variant set there is built in every layer, trains, and saves and reloads equal."""
    import hf_vanilla.modeling_vanilla_transformer as modeling

    class EncoderLayer(modeling.VanillaTransformerEncoderLayer):
        attention_class, feed_forward_class = _TemperedAttention, _TwoLayerGeluFeedForward

    class DecoderLayer(modeling.VanillaTransformerDecoderLayer):
        attention_class = _TemperedAttention

    monkeypatch.setattr(modeling.VanillaTransformerEncoder, "layer_class", EncoderLayer)
    monkeypatch.setattr(modeling.VanillaTransformerDecoder, "layer_class", DecoderLayer)
    torch.manual_seed(0)
    model = VanillaTransformerForConditionalGeneration(tiny_config())
    layers = [*model.model.encoder.layers, *model.model.decoder.layers]
    assert all(isinstance(layer.self_attn, _TemperedAttention) for layer in layers)
    assert all(isinstance(layer.encoder_attn, _TemperedAttention) for layer in model.model.decoder.layers)
    assert all(isinstance(layer.feed_forward, _TwoLayerGeluFeedForward) for layer in model.model.encoder.layers)
    ids = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert model.model.encoder.layers[0].self_attn.log_temperature.item() != 0  # the variant's own parameter trained
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, labels=ids).logits, loaded(input_ids=ids, labels=ids).logits)


def test_the_decoder_never_attends_to_masked_decoder_positions():
    """Tokens under decoder_attention_mask 0 (left padding) cannot change any other position's output (found by the
    mutation pass: dropping the decoder's padding mask from the causal mask went unnoticed)."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config())).eval()
    ids = torch.randint(4, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    decoder = torch.randint(4, VOCAB, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(decoder)
    mask[:, :2] = 0  # two pad positions first
    other = decoder.clone()
    other[:, :2] = torch.randint(4, VOCAB, (2, 2), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = model(input_ids=ids, decoder_input_ids=decoder, decoder_attention_mask=mask).logits
        b = model(input_ids=ids, decoder_input_ids=other, decoder_attention_mask=mask).logits
    torch.testing.assert_close(a[:, 2:], b[:, 2:])
    assert not torch.allclose(a[:, :2], b[:, :2])  # the changed tokens themselves did change something


@pytest.mark.parametrize("norm_first", [True, False])
def test_each_layer_is_the_papers_residual_formula(norm_first):
    """pre-LN: h + sublayer(norm(h)); post-LN: norm(h + sublayer(h)), computed by hand from the layer's own parts (a
    sign or an order changed in the residual was not caught before the mutation pass)."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(norm_first=norm_first))).eval()
    layer = model.model.encoder.layers[0]
    h = torch.randn(2, 5, model.config.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, _ = layer(h)

        def attention(x):
            return layer.self_attn(x)[0]

        if norm_first:
            h1 = h + attention(layer.self_attn_layer_norm(h))
            expected = h1 + layer.feed_forward(layer.ffn_layer_norm(h1))
        else:
            h1 = layer.self_attn_layer_norm(h + attention(h))
            expected = layer.ffn_layer_norm(h1 + layer.feed_forward(h1))
    torch.testing.assert_close(got, expected)


def test_a_mask_with_more_than_two_dimensions_is_refused():
    """(B, S, 1) looks right in its batch and length; the check also needs the 2 dimensions (found by the mutation
    pass: a check joined with `and` instead of `or` went unnoticed)."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config()))
    ids = torch.randint(4, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5, 1\) but must be \(batch_size, "):
        model(input_ids=ids, attention_mask=torch.ones(2, 5, 1, dtype=torch.long), decoder_input_ids=ids)


@pytest.mark.parametrize("scale", [True, False])
def test_the_embedding_scale_follows_the_config(scale):
    """sqrt(d_model) times the table with scale_embedding (the paper, section 3.4), the table itself without (found by
    the mutation pass: scale_embedding False was never checked)."""
    model = VanillaTransformerForConditionalGeneration(tiny_config(scale_embedding=scale))
    ids = torch.tensor([[5, 6, 7]])
    table = model.get_input_embeddings().weight[ids]
    factor = math.sqrt(model.config.d_model) if scale else 1.0
    torch.testing.assert_close(model.get_input_embeddings()(ids), table * factor)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_multi_head_attention_is_torchs_with_the_same_weights(implementation):
    """Self-, causal and cross-attention equal torch's nn.MultiheadAttention given the same projections: the scaling
    1/sqrt(d_k), the split into heads and back, the masks and the output projection, in both kernels (found by the
    mutation pass: the suite compared the model only with itself, and eager and sdpa share the scaling and heads)."""
    config = tiny_config(attn_implementation=implementation)
    d, heads = config.d_model, config.num_attention_heads
    generator = torch.Generator().manual_seed(0)
    reference = torch.nn.MultiheadAttention(d, heads, batch_first=True).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    q, k, v = reference.in_proj_weight.chunk(3)
    qb, kb, vb = reference.in_proj_bias.chunk(3)

    def ours(**kwargs):
        attention = VanillaTransformerAttention(config, **kwargs).eval()
        with torch.no_grad():
            for linear, weight, bias in ((attention.q_proj, q, qb), (attention.k_proj, k, kb),
                                         (attention.v_proj, v, vb), (attention.out_proj, reference.out_proj.weight,
                                                                     reference.out_proj.bias)):
                linear.weight.copy_(weight)
                linear.bias.copy_(bias)
        return attention

    x = torch.randn(2, 5, d, generator=generator)
    memory = torch.randn(2, 7, d, generator=generator)
    keep = torch.ones(2, 7, dtype=torch.bool)
    keep[1, 4:] = False  # the second source is 4 tokens long
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    with torch.no_grad():
        for module, (query, memory_, our_mask, their_mask) in (
            (ours(), (x, None, None, None)),
            (ours(is_causal=True), (x, None, causal[None, None], ~causal)),
            (ours(is_causal=True), (x, None, None, ~causal)),  # no mask: is_causal makes the kernel causal
            (ours(is_cross_attention=True), (x, memory, keep[:, None, None, :], None)),
        ):
            got, no_weights = module(query, key_value_states=memory_, attention_mask=our_mask)
            source = memory_ if memory_ is not None else query
            expected, _ = reference(query, source, source, attn_mask=their_mask,
                                    key_padding_mask=None if memory_ is None else ~keep)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            if implementation == "sdpa":  # no weights unless asked for: they would need the slower eager kernel
                assert no_weights is None
        # and the weights a caller asks for are torch's, one (T, S) map per head
        got, weights = ours(is_cross_attention=True)(x, key_value_states=memory, attention_mask=keep[:, None, None, :],
                                                     output_attentions=True)
        _, expected = reference(x, memory, memory, key_padding_mask=~keep, average_attn_weights=False)
        torch.testing.assert_close(weights, expected, rtol=1e-5, atol=1e-5)


def test_the_feed_forward_network_is_the_papers_formula():
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 (section 3.3), computed by hand from the layer's weights."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config())).eval()
    ffn = model.model.encoder.layers[0].feed_forward
    x = torch.randn(2, 5, model.config.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.relu(x @ ffn.fc1.weight.T + ffn.fc1.bias) @ ffn.fc2.weight.T + ffn.fc2.bias
        torch.testing.assert_close(ffn(x), expected)


def test_the_output_length_rule_in_every_case(hf_logs):
    """No length given: input length + 50 (section 6.1); a length past the positions: capped there with a warning,
    counting the decoder tokens given; a length within them: as given."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(max_position_embeddings=64)))
    ids = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    forced = {"num_beams": 1, "suppress_tokens": [model.config.eos_token_id]}  # no early stop: the rule sets the length
    assert model.generate(ids, **forced).shape == (2, 1 + 7 + 50)
    assert model.generate(ids[:, :3], **forced).shape == (2, 1 + 3 + 50)
    assert model.generate(ids, max_new_tokens=9, **forced).shape == (2, 1 + 9)
    assert not hf_logs.text
    assert model.generate(ids, max_length=100, **forced).shape == (2, 64)
    assert "max_length=100 is more than the model's 64 positions" in hf_logs.text
    start = torch.ones(2, 3, dtype=torch.long)  # three decoder tokens given: 61 positions are left
    assert model.generate(ids, decoder_input_ids=start, max_new_tokens=100, **forced).shape == (2, 64)
    assert "generating at most 61 tokens" in hf_logs.text
    # a source past what the positions allow for: the rule stays within them; one position left: one token
    long = torch.randint(4, VOCAB, (1, 40), generator=torch.Generator().manual_seed(1))
    assert model.generate(long, **forced).shape == (1, 64)
    assert model.generate(ids, decoder_input_ids=torch.ones(2, 63, dtype=torch.long), **forced).shape == (2, 64)
    # lengths that just fit give no warning; the generation config's own lengths are ruled too
    hf_logs.clear()
    assert model.generate(ids, max_new_tokens=63, **forced).shape == (2, 64)
    assert model.generate(ids, max_length=64, **forced).shape == (2, 64)
    assert not hf_logs.text
    from transformers import GenerationConfig

    assert model.generate(ids, generation_config=GenerationConfig(max_length=90), **forced).shape == (2, 64)
    assert "max_length=90 is more than" in hf_logs.text
    model.generation_config.max_new_tokens = 80
    assert model.generate(ids, **forced).shape == (2, 64)
    assert "max_new_tokens=80 would run past" in hf_logs.text


def test_position_encoding_is_exact_at_long_positions_and_odd_widths():
    """The angles are computed in float64: in float32 an angle near 4,000 is off by about 2e-4, and so is its sine.
    An odd width has one sine more than cosines (found by the mutation pass: only 50 positions were checked)."""
    for positions, d_model in ((4096, 64), (20, 7)):
        table = sinusoidal_position_encoding(positions, d_model)
        assert table.shape == (positions, d_model) and table.dtype == torch.float32
        position = torch.arange(positions, dtype=torch.float64)[:, None]
        angle = position / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
        torch.testing.assert_close(table[:, 0::2].double(), angle.sin(), atol=1e-6, rtol=0)
        torch.testing.assert_close(table[:, 1::2].double(), angle[:, : d_model // 2].cos(), atol=1e-6, rtol=0)


def test_the_padding_row_starts_at_zero_and_a_trained_one_is_kept(tmp_path):
    """A new model's padding embedding is zero (padding adds nothing at the start); the tied output layer trains that
    row too, so a saved model's row is loaded as saved, never zeroed again (found by the mutation pass)."""
    model = VanillaTransformerForConditionalGeneration(tiny_config())
    pad = model.config.pad_token_id
    table = model.get_input_embeddings().weight
    assert torch.equal(table[pad], torch.zeros_like(table[pad])) and table[pad + 1].abs().sum() > 0
    with torch.no_grad():
        table[pad] = 0.5
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(loaded.get_input_embeddings().weight[pad], torch.full_like(table[pad], 0.5))


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_dropout_acts_in_training_only(implementation):
    """attention_dropout drops attention weights while training, never in eval; at 0 training changes nothing (found
    by the mutation pass: dropout always off, always on, or at torch's default 0.5 went unnoticed)."""
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(0))
    for p in (0.5, 0.0):
        torch.manual_seed(0)
        attention = VanillaTransformerAttention(tiny_config(attention_dropout=p, attn_implementation=implementation))
        attention.config._attn_implementation = implementation
        with torch.no_grad():
            evaluated = attention.eval()(x)[0]
            torch.testing.assert_close(attention(x)[0], evaluated)  # eval: deterministic
            trained = attention.train()(x)[0]
        if p:
            assert not torch.allclose(trained, evaluated)
        else:
            torch.testing.assert_close(trained, evaluated)


def test_the_kernel_is_the_configured_one_and_eager_when_weights_are_asked_for():
    """sdpa where configured (the fast kernel, not silently eager); eager when attention weights are asked for, as
    sdpa has none (found by the mutation pass: outputs agree, so only the kernel shows the change)."""
    from hf_vanilla.modeling_vanilla_transformer import (
        ALL_ATTENTION_FUNCTIONS,
        _attention_interface,
        eager_attention_forward,
    )

    sdpa = VanillaTransformerForConditionalGeneration(tiny_config(attn_implementation="sdpa")).config
    eager = VanillaTransformerForConditionalGeneration(tiny_config(attn_implementation="eager")).config
    assert _attention_interface(sdpa, output_attentions=False) is ALL_ATTENTION_FUNCTIONS["sdpa"]
    assert _attention_interface(sdpa, output_attentions=True) is eager_attention_forward
    assert _attention_interface(eager, output_attentions=False) is eager_attention_forward


def test_the_output_length_rule_with_inputs_embeds_only(hf_logs):
    """generate(inputs_embeds=...) has no ids to measure: the rule falls back on the model's positions (found by the
    mutation pass: reading the length of absent ids went unnoticed)."""
    model = scrambled(VanillaTransformerForConditionalGeneration(tiny_config(max_position_embeddings=64)))
    ids = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    embeds = model.get_input_embeddings()(ids)
    out = model.generate(inputs_embeds=embeds, num_beams=1, suppress_tokens=[model.config.eos_token_id])
    assert out.shape == (2, 64)
    torch.testing.assert_close(out[:, :10], model.generate(ids, num_beams=1, max_new_tokens=9))
