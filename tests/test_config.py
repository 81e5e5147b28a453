import pytest
from transformers import AutoConfig

from hf_vanilla import PRESETS, VanillaTransformerConfig

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core


def test_presets_match_the_paper():
    base = VanillaTransformerConfig.from_preset("base")
    assert (base.d_model, base.encoder_layers, base.decoder_layers, base.num_attention_heads, base.ffn_dim) == (
        512, 6, 6, 8, 2048)
    assert base.dropout == 0.1
    big = VanillaTransformerConfig.from_preset("big")
    assert (big.d_model, big.encoder_layers, big.num_attention_heads, big.ffn_dim, big.dropout) == (
        1024, 6, 16, 4096, 0.3)
    assert set(PRESETS) == {"tiny", "small", "base", "big"}
    assert VanillaTransformerConfig.from_preset("small", vocab_size=123).vocab_size == 123


def test_defaults_and_generic_names():
    config = VanillaTransformerConfig()
    assert config.norm_first and config.scale_embedding and config.tie_word_embeddings
    assert config.hidden_size == config.d_model == 512
    assert config.num_hidden_layers == config.encoder_layers
    assert config.decoder_start_token_id == config.bos_token_id
    assert config.is_encoder_decoder


def test_round_trip(tmp_path):
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=100, norm_first=False, classifier_pooling="first")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, VanillaTransformerConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'huge'.*tiny, small, base, big"):
        VanillaTransformerConfig.from_preset("huge")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_model=100, num_attention_heads=8), r"d_model=100 is not divisible by num_attention_heads=8"),
        (dict(d_model=0), r"d_model must be a positive integer, got 0"),
        (dict(vocab_size=-5), r"vocab_size must be a positive integer, got -5"),
        (dict(encoder_layers=0), r"encoder_layers must be a positive integer, got 0"),
        (dict(decoder_layers=1.5), r"decoder_layers must be a positive integer, got 1.5"),
        (dict(num_attention_heads=0), r"num_attention_heads must be a positive integer, got 0"),
        (dict(ffn_dim=-1), r"ffn_dim must be a positive integer, got -1"),
        (dict(max_position_embeddings=0), r"max_position_embeddings must be a positive integer, got 0"),
        (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\), got 1.0"),
        (dict(attention_dropout=-0.1), r"attention_dropout must be a probability in \[0, 1\), got -0.1"),
        (dict(activation_dropout=2), r"activation_dropout must be a probability in \[0, 1\), got 2"),
        (dict(classifier_dropout=1.5), r"classifier_dropout must be a probability in \[0, 1\), got 1.5"),
        (dict(activation_function="softmax"), r"activation_function='softmax' is unknown: choose one of relu"),
        (dict(classifier_pooling="sum"), r"classifier_pooling='sum' is unknown: choose one of mean, max, first"),
        (dict(vocab_size=10, pad_token_id=10), r"pad_token_id=10 is outside the vocabulary.*vocab_size=10"),
        (dict(vocab_size=10, eos_token_id=-1), r"eos_token_id=-1 is outside the vocabulary"),
        (dict(vocab_size=10, bos_token_id=12), r"bos_token_id=12 is outside the vocabulary"),
        (dict(vocab_size=10, decoder_start_token_id=99), r"decoder_start_token_id=99 is outside the vocabulary"),
        (dict(layer_norm_eps=0), r"layer_norm_eps must be a positive number, got 0"),
    ],
)
def test_impossible_settings_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VanillaTransformerConfig(**kwargs)
