"""Configuration of the vanilla Transformer ("Attention Is All You Need", Vaswani et al., 2017)."""

import warnings

import transformers
from packaging.version import Version
from transformers import PretrainedConfig

# The transformers releases this code is tested against (both ends run in CI); keep in step with pyproject.toml.
SUPPORTED_TRANSFORMERS = (Version("5.0.0"), Version("5.25.0"))  # oldest tested, first untested


def _check_transformers_version(installed=transformers.__version__):
    """Fail clearly below the supported range (4.x lacks the 5.x loading internals this code relies on); warn above
    it. Runs at import, for the package and for a folder loaded with trust_remote_code alike."""
    oldest, untested = SUPPORTED_TRANSFORMERS
    version = Version(installed)
    if version < oldest:
        raise ImportError(
            f"hf_vanilla needs transformers >= {oldest} (tested from {oldest} to below {untested}); transformers "
            f"{installed} is installed. Upgrade it: pip install 'transformers>={oldest},<{untested}'."
        )
    if version.release[:2] >= untested.release[:2]:
        warnings.warn(
            f"hf_vanilla is tested with transformers {oldest} to below {untested}; transformers {installed} is "
            f"installed. It may work; if it fails, install a tested release: pip install "
            f"'transformers>={oldest},<{untested}'.",
            stacklevel=2,
        )


_check_transformers_version()

# Activations the feed-forward layer accepts (names as in `transformers.activations.ACT2FN`).
ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu", "swish", "tanh")
POOLINGS = ("mean", "max", "first")

# Named sizes. `base` and `big` are the paper's table 3; `tiny` and `small` are sized for CPUs.
PRESETS = {
    "tiny": dict(d_model=64, encoder_layers=2, decoder_layers=2, num_attention_heads=4, ffn_dim=256, dropout=0.1),
    "small": dict(d_model=256, encoder_layers=3, decoder_layers=3, num_attention_heads=4, ffn_dim=1024, dropout=0.1),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, num_attention_heads=8, ffn_dim=2048, dropout=0.1),
    "big": dict(d_model=1024, encoder_layers=6, decoder_layers=6, num_attention_heads=16, ffn_dim=4096, dropout=0.3),
}


# The largest sizes a config may state, checked before any weight is allocated: a damaged or hostile config.json
# (`encoder_layers: 100000`, `max_position_embeddings: 1e9`) is refused instead of hanging or allocating hundreds of
# GB. Each is far above the paper's big model (1024 wide, 6 layers, 16 heads, 4096 inner).
SIZE_LIMITS = {"vocab_size": 1_048_576, "d_model": 16_384, "encoder_layers": 128, "decoder_layers": 128,
               "num_attention_heads": 256, "ffn_dim": 65_536, "max_position_embeddings": 65_536}


class VanillaTransformerConfig(PretrainedConfig):
    r"""
    Configuration of a [`VanillaTransformerModel`]. The defaults are the paper's base model with a 37k shared
    vocabulary.

    Args:
        vocab_size (`int`, defaults to 37000): size of the one vocabulary shared by source and target.
        d_model (`int`, defaults to 512): width of every layer's input and output (the paper's d_model).
        encoder_layers (`int`, defaults to 6): number of encoder layers (N).
        decoder_layers (`int`, defaults to 6): number of decoder layers (N).
        num_attention_heads (`int`, defaults to 8): heads per attention layer (h); d_model must be divisible by it.
        ffn_dim (`int`, defaults to 2048): inner width of the position-wise feed-forward network (d_ff).
        activation_function (`str`, defaults to `"relu"`): activation inside the feed-forward network.
        dropout (`float`, defaults to 0.1): dropout on embeddings and on every sub-layer output (P_drop).
        attention_dropout (`float`, defaults to 0.0): dropout on the attention probabilities.
        activation_dropout (`float`, defaults to 0.0): dropout after the feed-forward activation.
        max_position_embeddings (`int`, defaults to 1024): rows of the sinusoidal table, the longest sequence accepted.
            Every size has an upper limit (`SIZE_LIMITS`: 1,048,576 tokens, 16,384 wide, 128 layers per stack, 256
            heads, 65,536 inner and 65,536 positions); a config above one is refused before anything is allocated.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        norm_first (`bool`, defaults to `True`): pre-LN (LayerNorm before each sub-layer, plus a final LayerNorm per
            stack); `False` gives the paper's original post-LN.
        scale_embedding (`bool`, defaults to `True`): multiply token embeddings by sqrt(d_model) (paper section 3.4).
        tie_word_embeddings (`bool`, defaults to `True`): tie the pre-softmax projection to the shared embedding, so
            source embedding, target embedding and output projection are one matrix (paper section 3.4).
        init_std (`float`, defaults to 0.02): std of the normal initialiser of linear layers (embeddings use
            d_model**-0.5 so that scaled embeddings have unit variance).
        classifier_dropout (`float`, *optional*): dropout before the classification layer; `None` uses `dropout`.
        classifier_pooling (`str`, defaults to `"mean"`): `"mean"` or `"max"` over non-padding tokens, or the `"first"` token.
        pad_token_id (`int`, defaults to 0): padding token id.
        bos_token_id (`int`, defaults to 1): beginning-of-sequence token id.
        eos_token_id (`int`, defaults to 2): end-of-sequence token id.
        decoder_start_token_id (`int`, *optional*): first decoder input token; `None` uses `bos_token_id`.

    Example:

    ```python
    >>> from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration
    >>> config = VanillaTransformerConfig.from_preset("small", vocab_size=8000)
    >>> model = VanillaTransformerForConditionalGeneration(config)
    ```
    """

    model_type = "vanilla_transformer"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "encoder_layers"}

    def __init__(
        self,
        vocab_size=37000,
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        num_attention_heads=8,
        ffn_dim=2048,
        activation_function="relu",
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
        max_position_embeddings=1024,
        layer_norm_eps=1e-5,
        norm_first=True,
        scale_embedding=True,
        tie_word_embeddings=True,
        init_std=0.02,
        classifier_dropout=None,
        classifier_pooling="mean",
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=None,
        is_encoder_decoder=True,
        use_cache=True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.num_attention_heads = num_attention_heads
        self.ffn_dim = ffn_dim
        self.activation_function = activation_function
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.max_position_embeddings = max_position_embeddings
        self.layer_norm_eps = layer_norm_eps
        self.norm_first = norm_first
        self.scale_embedding = scale_embedding
        self.tie_word_embeddings = tie_word_embeddings
        self.init_std = init_std
        self.classifier_dropout = classifier_dropout
        self.classifier_pooling = classifier_pooling
        self.use_cache = use_cache
        if decoder_start_token_id is None:
            decoder_start_token_id = bos_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.decoder_start_token_id = decoder_start_token_id
        self._validate()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=is_encoder_decoder,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "VanillaTransformerConfig":
        """A config of a named size (`tiny`, `small`, `base`, `big`); keyword arguments override the preset."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})

    def _validate(self):
        """Raise a `ValueError` naming the field and its value for every impossible setting."""
        for field in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "num_attention_heads", "ffn_dim",
                      "max_position_embeddings"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive integer, got {value!r}.")
            if value > SIZE_LIMITS[field]:  # refused before anything is allocated (a damaged or hostile config)
                raise ValueError(f"{field}={value} is above this model family's limit of {SIZE_LIMITS[field]:,}: "
                                 f"the config is damaged, or describes a model far outside what hf_vanilla supports.")
        if self.d_model % self.num_attention_heads != 0:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by num_attention_heads={self.num_attention_heads}: "
                f"each head gets d_model / num_attention_heads dimensions."
            )
        for field in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout"):
            value = getattr(self, field)
            if value is None and field == "classifier_dropout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{field} must be a probability in [0, 1), got {value!r}.")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}.")
        if not isinstance(self.init_std, (int, float)) or self.init_std <= 0:
            raise ValueError(f"init_std must be a positive number, got {self.init_std!r}.")
        if self.activation_function not in ACTIVATIONS:
            raise ValueError(
                f"activation_function={self.activation_function!r} is unknown: choose one of {', '.join(ACTIVATIONS)}."
            )
        if self.classifier_pooling not in POOLINGS:
            raise ValueError(
                f"classifier_pooling={self.classifier_pooling!r} is unknown: choose one of {', '.join(POOLINGS)}."
            )
        for field in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, field)
            ids = value if isinstance(value, (list, tuple)) else [value]
            for token_id in ids:
                if token_id is None:
                    continue
                if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < self.vocab_size:
                    raise ValueError(
                        f"{field}={value!r} is outside the vocabulary: token ids must lie in "
                        f"[0, vocab_size={self.vocab_size})."
                    )


__all__ = ["VanillaTransformerConfig", "PRESETS"]
