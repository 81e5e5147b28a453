"""The vanilla Transformer of "Attention Is All You Need" (Vaswani et al., 2017) as a Hugging Face model family.

Read top-down, in the paper's order: positions (3.5), attention (3.2), the feed-forward network (3.3), encoder and
decoder layers with their residual connections (3.1), the two stacks, the models, then the heads. The transformers
internals that change between releases sit in one adapter section at the end.

This file imports only torch, transformers and, relatively, the configuration and the loading checks: `save_pretrained`
copies it and its relative imports next to the weights for `trust_remote_code` loading.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    SequenceClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

from .configuration_vanilla_transformer import VanillaTransformerConfig
from .loading_vanilla_transformer import check_before_loading, check_loading_info

logger = logging.get_logger(__name__)
# The paper's decoding (section 6.1), the defaults wherever a folder's generation config does not say otherwise: an
# output may be its input's length + EXTRA_OUTPUT_TOKENS tokens (the default of `generate` here, of recipes.translate
# and of the CTranslate2 engine: hf_vanilla.inference.output_length_limit), beam 4, length penalty 0.6. Their home is
# this file because it travels with every saved folder (the translation pipeline there reads them too).
EXTRA_OUTPUT_TOKENS = 50
DEFAULT_NUM_BEAMS = 4
DEFAULT_LENGTH_PENALTY = 0.6

# ---------------------------------------------------------------------------------------------------------------------
# Positions: the scaled token embedding plus the sinusoidal encoding (section 3.5)
# ---------------------------------------------------------------------------------------------------------------------

def sinusoidal_position_encoding(num_positions: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)), interleaved."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),)
    angle = position / torch.pow(10000.0, two_i / d_model)  # (P, ceil(d/2))
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # an odd d_model has one sine more than cosines
    return table.float()


class VanillaTransformerScaledEmbedding(nn.Embedding):
    """Token embedding multiplied by sqrt(d_model) (paper section 3.4), so that `get_input_embeddings()(ids)` is what
    the stacks consume, as in BART and Marian. The parameter is still named `weight` and is the one the output
    projection shares."""

    def __init__(self, config):
        super().__init__(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.embed_scale  # (B, L) -> (B, L, d)

# ---------------------------------------------------------------------------------------------------------------------
# Attention: scaled dot-product attention, its masks, multi-head attention (section 3.2)
# ---------------------------------------------------------------------------------------------------------------------

def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, is_causal=False,
                            **kwargs):
    """softmax(Q K^T / sqrt(d_k)) V. `attention_mask` is boolean (True = may attend), broadcastable to the scores;
    `is_causal` (with no mask) hides later positions, as in sdpa."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling  # (B, h, T, S)
    if is_causal:
        attention_mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()  # (T, S)
    if attention_mask is not None:
        # the dtype's own minimum, not -inf: an all-padding row then gives a uniform row instead of NaN
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, T, h, d_k)
    return output, weights


def _padding_mask(attention_mask, batch_size, length, name, key_length=None):
    """(B, S) of 1/0 -> boolean (B, 1, 1, key_length), True where a key may be attended to; None when none is given.

    The mask is used as given even when it holds no padding: testing that (`mask.all()`) would read it. A static
    cache has more key slots (`key_length`) than tokens so far; the slots past the mask are hidden by causality."""
    if attention_mask is None:
        return None
    expected = f"({batch_size}, {length})" if key_length is None else f"({batch_size}, <= {key_length})"
    if attention_mask.dim() != 2 or attention_mask.shape[0] != batch_size or (
        attention_mask.shape[1] != length if key_length is None else attention_mask.shape[1] > key_length
    ):
        raise ValueError(
            f"{name} has shape {tuple(attention_mask.shape)} but must be (batch_size, sequence_length) = "
            f"{expected}, one 1 or 0 per token."
        )
    attention_mask = attention_mask.bool()
    if key_length is not None and attention_mask.shape[1] < key_length:
        attention_mask = F.pad(attention_mask, (0, key_length - attention_mask.shape[1]), value=True)
    return attention_mask[:, None, None, :]


def _causal_mask(padding_mask, positions, key_length):
    """Boolean (B|1, 1, T, key_length) mask for decoder self-attention: query i sees keys at positions <= its own.

    `positions` (T,) are the queries' positions; with a cache they start after the cached tokens."""
    key_positions = torch.arange(key_length, device=positions.device)  # (S,)
    mask = (key_positions[None, :] <= positions[:, None])[None, None]  # (1, 1, T, S)
    return mask if padding_mask is None else mask & padding_mask


class VanillaTransformerAttention(nn.Module):
    """Multi-head attention: Concat(head_1, ..., head_h) W_O with head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)."""

    def __init__(self, config, is_causal=False, is_cross_attention=False, layer_idx=None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.d_model // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        # read by transformers' sdpa kernel when no mask is given: encoder and cross-attention must not be causal
        self.is_causal = is_causal
        self.is_cross_attention = is_cross_attention
        self.layer_idx = layer_idx
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def _heads(self, x):
        return x.view(*x.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)  # (B, L, d) -> (B, h, L, d_k)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        positions: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (B, T, d) -> (B, T, d) and the attention weights (B, h, T, S) when asked for.

        Self-attention when `key_value_states` is None, else attention over them (B, S, d), the encoder output.
        `attention_mask` is boolean, broadcastable to (B, h, T, S). `positions` (T,) are where this step's keys go in a
        static cache (transformers 5.0 needs them; later releases keep the count in the cache)."""
        batch_size, length, _ = hidden_states.shape
        query = self._heads(self.q_proj(hidden_states))  # (B, h, T, d_k)
        if self.is_cross_attention:
            cached = _cached_cross_attention(cache, self.layer_idx) if cache is not None else None
            if cached is not None:  # the encoder output does not change while decoding: project it once per generate
                key, value = cached
            else:
                key, value = self._heads(self.k_proj(key_value_states)), self._heads(self.v_proj(key_value_states))
                if cache is not None:
                    cache.cross_attention_cache.update(key, value, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
        else:
            key, value = self._heads(self.k_proj(hidden_states)), self._heads(self.v_proj(hidden_states))
            if cache is not None:
                cache_kwargs = {"cache_position": positions}
                key, value = cache.self_attention_cache.update(key, value, self.layer_idx, cache_kwargs)  # (B,h,S,d_k)

        attention = _attention_interface(self.config, output_attentions)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
            is_causal=self.is_causal and attention_mask is None,  # a Python bool: no test of a (symbolic) length
        )
        output = output.reshape(batch_size, length, -1)  # (B, T, h, d_k) -> (B, T, d)
        return self.out_proj(output), weights

# ---------------------------------------------------------------------------------------------------------------------
# Position-wise feed-forward network (section 3.3), and dropout (section 5.4)
# ---------------------------------------------------------------------------------------------------------------------

class VanillaTransformerFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied to each position separately."""

    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.ffn_dim)
        self.activation = ACT2FN[config.activation_function]
        self.dropout = Dropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.ffn_dim, config.d_model)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, L, ffn_dim) -> (B, L, d)."""
        return self.fc2(self.dropout(self.activation(self.fc1(hidden_states))))


class Dropout(nn.Dropout):
    """nn.Dropout (each element zeroed with probability p, the rest scaled by 1/(1-p)), lighter on CPU.

    On CPU, nn.Dropout draws its mask with bernoulli_ and keeps it as a float tensor for the backward pass; here the
    mask comes from uniform draws and is kept as booleans, which is faster and lighter (measured in
    benchmarks/speed.py). Elsewhere (CUDA already has a fused
    kernel with a boolean mask), in evaluation, and for p of 0 or 1 it is nn.Dropout itself.
    """

    def forward(self, input):
        if not self.training or input.device.type != "cpu" or not 0 < self.p < 1 or self.inplace:
            return super().forward(input)
        keep = torch.rand(input.shape, device=input.device) >= self.p  # True with probability 1 - p
        return torch.where(keep, input * (1.0 / (1.0 - self.p)), 0.0)

# ---------------------------------------------------------------------------------------------------------------------
# Layers: each sub-layer inside a residual connection and a LayerNorm (section 3.1)
# ---------------------------------------------------------------------------------------------------------------------

class _SubLayerMixin:
    """The residual connection around a sub-layer, in either LayerNorm placement."""

    def _residual(self, hidden_states, norm, sublayer):
        if self.norm_first:  # pre-LN: h + dropout(sublayer(norm(h)))
            output, weights = sublayer(norm(hidden_states))
            return hidden_states + self.dropout(output), weights
        output, weights = sublayer(hidden_states)  # post-LN, the paper: norm(h + dropout(sublayer(h)))
        return norm(hidden_states + self.dropout(output)), weights


class VanillaTransformerEncoderLayer(_SubLayerMixin, GradientCheckpointingLayer):
    """Self-attention, then the feed-forward network, each inside a residual connection."""

    # the hooks for a variant (as the stacks' `layer_class`): a subclass that sets them swaps the sub-layers, which
    # keep these classes' constructor and forward signatures
    attention_class = VanillaTransformerAttention
    feed_forward_class = VanillaTransformerFeedForward

    def __init__(self, config, layer_idx=None):
        super().__init__()
        self.norm_first = config.norm_first
        self.self_attn = self.attention_class(config, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = self.feed_forward_class(config)
        self.ffn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden_states (B, S, d) -> (B, S, d), and the self-attention weights (B, h, S, S) when asked for.
        `attention_mask` is the boolean (B, 1, 1, S) padding mask of `_padding_mask`, or None."""
        hidden_states, self_weights = self._residual(
            hidden_states,
            self.self_attn_layer_norm,
            lambda h: self.self_attn(h, attention_mask=attention_mask, output_attentions=output_attentions),
        )
        hidden_states, _ = self._residual(hidden_states, self.ffn_layer_norm, lambda h: (self.feed_forward(h), None))
        return hidden_states, self_weights


class VanillaTransformerDecoderLayer(_SubLayerMixin, GradientCheckpointingLayer):
    """Masked self-attention, encoder-decoder attention, then the feed-forward network, each with a residual."""

    attention_class = VanillaTransformerAttention  # for both attentions; hooks as in the encoder layer
    feed_forward_class = VanillaTransformerFeedForward

    def __init__(self, config, layer_idx=None):
        super().__init__()
        self.norm_first = config.norm_first
        self.self_attn = self.attention_class(config, is_causal=True, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.encoder_attn = self.attention_class(config, is_cross_attention=True, layer_idx=layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = self.feed_forward_class(config)
        self.ffn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        positions: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """hidden_states (B, T, d) -> (B, T, d), with the self- and cross-attention weights when asked for.

        `encoder_hidden_states` (B, S, d) is the encoder output; `attention_mask` the boolean causal (and padding)
        mask broadcastable to (B, h, T, T + cached), or None for plain causality; `encoder_attention_mask` the
        boolean (B, 1, 1, S) source padding mask; `positions` (T,) this step's positions (for a static cache)."""
        hidden_states, self_weights = self._residual(
            hidden_states,
            self.self_attn_layer_norm,
            lambda h: self.self_attn(
                h, attention_mask=attention_mask, cache=cache, positions=positions, output_attentions=output_attentions
            ),
        )
        hidden_states, cross_weights = self._residual(
            hidden_states,
            self.encoder_attn_layer_norm,
            lambda h: self.encoder_attn(
                h,
                key_value_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
                cache=cache,
                output_attentions=output_attentions,
            ),
        )
        hidden_states, _ = self._residual(hidden_states, self.ffn_layer_norm, lambda h: (self.feed_forward(h), None))
        return hidden_states, self_weights, cross_weights

# ---------------------------------------------------------------------------------------------------------------------
# The shared base class: initialisation (section 5), saving, and the loading policy
# ---------------------------------------------------------------------------------------------------------------------


_AUTO_MAP = {
    "AutoConfig": "configuration_vanilla_transformer.VanillaTransformerConfig",
    "AutoModel": "modeling_vanilla_transformer.VanillaTransformerModel",
    "AutoModelForSeq2SeqLM": "modeling_vanilla_transformer.VanillaTransformerForConditionalGeneration",
    "AutoModelForSequenceClassification": "modeling_vanilla_transformer.VanillaTransformerForSequenceClassification",
}


class VanillaTransformerPreTrainedModel(PreTrainedModel):
    """What every model of the family shares: the config class, attention backends, weight initialisation, and
    saving and loading (safetensors only, checked folders, `auto_map` for `trust_remote_code`)."""

    config_class = VanillaTransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _no_split_modules = ["VanillaTransformerEncoderLayer", "VanillaTransformerDecoderLayer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, from safetensors only and with the folder checked first (the policy is
        in loading_vanilla_transformer.py)."""
        check_before_loading(pretrained_model_name_or_path, kwargs)
        wanted = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        check_loading_info(cls.__name__, info, pretrained_model_name_or_path)  # complete, or refused
        return (model, info) if wanted else model

    @property
    def _keys_to_ignore_on_save(self):
        """The names under which a parameter seen earlier appears again (the tied copies of the shared embedding).

        `save_pretrained` writes each tensor once anyway; naming the copies here lets Trainer, when it reloads its
        best checkpoint, re-tie them instead of warning that they are missing. Computed from the live model, so a
        weight untied after construction is saved."""
        seen, copies = set(), set()
        for name, parameter in self.named_parameters(remove_duplicate=False):
            if id(parameter) in seen:
                copies.add(name)
            seen.add(id(parameter))
        return copies

    @_keys_to_ignore_on_save.setter
    def _keys_to_ignore_on_save(self, value):
        pass  # transformers' post_init stores its own list; the property above always describes the live model

    def save_pretrained(self, save_directory, *args, **kwargs):
        # list every head in auto_map, so that any saved folder loads as any head with trust_remote_code=True
        if self._auto_class is not None:
            self.config.auto_map = {**_AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            # with the sqrt(d_model) input scale, this gives unit-variance embeddings and unit-scale tied logits
            nn.init.normal_(module.weight, mean=0.0, std=self.config.d_model**-0.5)
            # never on loaded weights: the tied output layer trains the padding row too (transformers 5.0 calls
            # this on loaded modules and marks their weights `_is_hf_initialized`)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, _VanillaTransformerStack):
            # a non-persistent buffer is never loaded: rebuild it (from_pretrained creates the model on meta)
            with torch.no_grad():
                module.position_encoding.copy_(
                    sinusoidal_position_encoding(self.config.max_position_embeddings, self.config.d_model)
                )



# ---------------------------------------------------------------------------------------------------------------------
# Stacks: N layers over embedded inputs (section 3.1); the input checks run here
# ---------------------------------------------------------------------------------------------------------------------

def _reads_values(tensor):
    """Whether a check may read a tensor's values here at no cost: eager mode on a CPU tensor.

    Reading an accelerator tensor from Python waits for the device (a host synchronisation), and under
    `torch.compile` / `torch.export` it breaks the graph; there the checks that read values are skipped, and torch's
    own index checks (or the entry point `generate`, once per call) catch bad ids instead. Shape and dtype checks read
    no values and always run."""
    return tensor.device.type == "cpu" and not _is_tracing()


def _is_tracing():
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or _is_exporting()


def _is_exporting():
    return hasattr(torch.compiler, "is_exporting") and torch.compiler.is_exporting()


def _check_input_ids(input_ids, config, name, read_values=None):
    """A clear error for ids a user got wrong, instead of an index error deep inside torch.

    The vocabulary-range check reads the ids, so by default it runs only where that costs nothing (`_reads_values`);
    `read_values=True` forces it (entry points, once per call)."""
    if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"{name} must hold integer token ids, got dtype {input_ids.dtype}.")
    if input_ids.dim() != 2:
        raise ValueError(f"{name} must have shape (batch_size, sequence_length), got {tuple(input_ids.shape)}.")
    if input_ids.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(input_ids.shape)}): give at least one token per sequence.")
    if not (read_values if read_values is not None else _reads_values(input_ids)):
        return
    low, high = (int(end) for end in torch.aminmax(input_ids))
    if low < 0 or high >= config.vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} contains token id {bad}, outside the vocabulary: ids must lie in [0, vocab_size="
            f"{config.vocab_size}). Is the tokenizer the one this model was trained with?"
        )


def _check_length(length, config, name):
    if length > config.max_position_embeddings:
        raise ValueError(
            f"{name} has {length} positions but the model takes at most max_position_embeddings="
            f"{config.max_position_embeddings}: truncate the input (tokenizer(..., truncation=True, max_length="
            f"{config.max_position_embeddings})) or build the model with a larger max_position_embeddings."
        )


class _VanillaTransformerStack(VanillaTransformerPreTrainedModel):
    """What encoder and decoder share: the scaled token embedding, the sinusoidal table, N layers, a final norm."""

    layer_class = None  # set by the subclass
    num_layers_field = None

    def __init__(self, config, embed_tokens=None):
        super().__init__(config)
        self.embed_tokens = embed_tokens if embed_tokens is not None else VanillaTransformerScaledEmbedding(config)
        self.register_buffer(
            "position_encoding",
            sinusoidal_position_encoding(config.max_position_embeddings, config.d_model),
            persistent=False,
        )
        self.dropout = Dropout(config.dropout)
        num_layers = getattr(config, self.num_layers_field)
        self.layers = nn.ModuleList(self.layer_class(config, i) for i in range(num_layers))
        # post-LN already normalises after every sub-layer
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_first else None
        self.post_init()

    def _embed(self, input_ids, inputs_embeds, past_length, name):
        """Scaled token embedding plus the sinusoidal encoding of each position, then dropout; and the positions (L,).

        The length check needs a Python int: a static cache's count is a tensor, never read here."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"Give exactly one of {name} and its inputs_embeds.")
        if inputs_embeds is None:
            _check_input_ids(input_ids, self.config, name)
            inputs_embeds = self.embed_tokens(input_ids)  # already scaled by sqrt(d_model)
        length = inputs_embeds.shape[1]
        if isinstance(past_length, int):
            _check_length(past_length + length, self.config, name)
        positions = torch.arange(length, device=inputs_embeds.device) + past_length  # (L,)
        hidden_states = inputs_embeds + self.position_encoding[positions].to(inputs_embeds.dtype)
        return self.dropout(hidden_states), positions  # (B, L, d), (L,)

    def _final_norm(self, hidden_states, all_hidden_states):
        """The pre-LN stack's last LayerNorm; the last of the returned hidden states is the normalised one."""
        if self.layer_norm is None:
            return hidden_states, all_hidden_states
        hidden_states = self.layer_norm(hidden_states)
        if all_hidden_states is not None:
            all_hidden_states = all_hidden_states[:-1] + (hidden_states,)
        return hidden_states, all_hidden_states

    def _output_flags(self, output_attentions, output_hidden_states):
        config = self.config
        return (
            output_attentions if output_attentions is not None else config.output_attentions,
            output_hidden_states if output_hidden_states is not None else config.output_hidden_states,
        )


class VanillaTransformerEncoder(_VanillaTransformerStack):
    """N encoder layers over the embedded source, with a final LayerNorm in pre-LN."""

    layer_class = VanillaTransformerEncoderLayer
    num_layers_field = "encoder_layers"

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """Encode a batch of sources. No `**kwargs`: `generate` then hands the encoder only the arguments it names
        (it passes every model input, labels included, to an encoder that takes `**kwargs`), and a misspelled
        argument is Python's own TypeError.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): source token ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 for tokens, 0 for
                padding.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, source_length, d_model)`, *optional*): already
                embedded (and scaled) tokens instead of `input_ids`; positions are still added.
            output_attentions, output_hidden_states, return_dict: as everywhere in transformers.

        Returns:
            `BaseModelOutput`: `last_hidden_state` (batch_size, source_length, d_model), after the final LayerNorm
            in pre-LN.
        """
        output_attentions, output_hidden_states = self._output_flags(output_attentions, output_hidden_states)
        hidden_states, _ = self._embed(input_ids, inputs_embeds, 0, "input_ids")
        mask = _padding_mask(attention_mask, *hidden_states.shape[:2], "attention_mask")

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, mask, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states, all_hidden_states = self._final_norm(hidden_states, all_hidden_states)
        output = BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states,
                                 attentions=all_attentions)
        return output if return_dict is not False else output.to_tuple()


class VanillaTransformerDecoder(_VanillaTransformerStack):
    """N decoder layers over the embedded, right-shifted target, attending to the encoder output."""

    layer_class = VanillaTransformerDecoderLayer
    num_layers_field = "decoder_layers"

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.FloatTensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        """Decode: masked self-attention over the target so far, attention over the encoder output.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`): target ids, shifted right (the
                decoder start token first); while generating with a cache, only the new tokens.
            attention_mask (`torch.Tensor` of shape `(batch_size, cached + target_length)`, *optional*): 1 for
                target tokens, 0 for padding, over the cached tokens too.
            encoder_hidden_states (`torch.FloatTensor` of shape `(batch_size, source_length, d_model)`): the
                encoder output.
            encoder_attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): the source
                padding mask.
            cache (`EncoderDecoderCache`, *optional*): keys and values of earlier steps (dynamic or static); the
                cross-attention keys and values are computed once and kept in it. Also accepted as
                `past_key_values`.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, target_length, d_model)`, *optional*): instead
                of `input_ids`.
            use_cache (`bool`, *optional*): return the cache (one is created when none is given).

        Returns:
            `BaseModelOutputWithPastAndCrossAttentions`: `last_hidden_state` (batch_size, target_length, d_model)
            and the cache.
        """
        cache = _pop_cache_kwarg(cache, kwargs)
        _refuse_unused(kwargs, self)
        output_attentions, output_hidden_states = self._output_flags(output_attentions, output_hidden_states)
        # under torch.export (and ONNX's dynamo export) a forward given no cache builds none, so that the program's
        # outputs are tensors: the model as loaded exports with no wrapper. generate passes its own cache.
        if use_cache is None:
            use_cache = self.config.use_cache and (cache is not None or not _is_exporting())
        if encoder_hidden_states is None:
            raise ValueError("The decoder needs encoder_hidden_states: run the encoder first.")
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        if not use_cache:
            cache = None
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise ValueError(f"cache must be an EncoderDecoderCache, got {type(cache).__name__}.")
        past_length = _past_length(cache, kwargs.get("cache_position"))
        hidden_states, positions = self._embed(input_ids, inputs_embeds, past_length, "decoder_input_ids")
        batch_size, length = hidden_states.shape[:2]
        if encoder_hidden_states.shape[0] != batch_size:
            raise ValueError(
                f"decoder_input_ids holds {batch_size} sequences but the source batch {encoder_hidden_states.shape[0]}:"
                f" give one target sequence per source sequence."
            )
        static_length = _static_cache_length(cache)
        static = static_length is not None  # a preallocated cache: its empty slots must be masked
        key_length = static_length if static else past_length + length
        padding = _padding_mask(attention_mask, batch_size, key_length, "decoder_attention_mask",
                                key_length=key_length if static else None)
        # without a cache prefix or padding the kernels apply causality themselves (is_causal, sdpa's fast path)
        needs_mask = padding is not None or static or past_length != 0
        self_mask = _causal_mask(padding, positions, key_length) if needs_mask else None
        cross_mask = _padding_mask(
            encoder_attention_mask, batch_size, encoder_hidden_states.shape[1], "attention_mask (of the source)"
        )

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_self_attentions = () if output_attentions else None
        all_cross_attentions = () if output_attentions else None
        for layer in self.layers:
            # hidden states go positionally: that is what gradient checkpointing recomputes from
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                encoder_hidden_states,
                self_mask,
                cross_mask,
                cache=cache,
                positions=positions,
                output_attentions=output_attentions,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_self_attentions += (self_weights,)
                all_cross_attentions += (cross_weights,)
        hidden_states, all_hidden_states = self._final_norm(hidden_states, all_hidden_states)
        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_self_attentions,
            cross_attentions=all_cross_attentions,
            **_cache_output(cache),
        )
        return output if return_dict is not False else output.to_tuple()

# ---------------------------------------------------------------------------------------------------------------------
# Models: the encoder-decoder, and the encoder alone
# ---------------------------------------------------------------------------------------------------------------------


def shift_tokens_right(labels, pad_token_id, decoder_start_token_id):
    """Decoder inputs from labels: start token, then the labels one step later; -100 (ignored) becomes padding."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class VanillaTransformerModel(VanillaTransformerPreTrainedModel):
    """Encoder-decoder without a head. Source and target share one embedding (one shared vocabulary)."""

    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config):
        super().__init__(config)
        self.shared = VanillaTransformerScaledEmbedding(config)
        self.encoder = VanillaTransformerEncoder(config, self.shared)
        self.decoder = VanillaTransformerDecoder(config, self.shared)
        self.post_init()

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = value
        self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    def get_encoder(self, *args, **kwargs):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode the source (unless `encoder_outputs` is given), then decode the target.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): source token ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 for source
                tokens, 0 for padding.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`): target ids shifted right;
                without them (and without labels) the source shifted right, as in BART.
            decoder_attention_mask (`torch.Tensor` of shape `(batch_size, cached + target_length)`, *optional*):
                1 for target tokens, 0 for padding.
            encoder_outputs (`BaseModelOutput` or tuple, *optional*): a precomputed encoder output; the encoder is
                then skipped.
            cache (`EncoderDecoderCache`, *optional*): the decoding cache (also accepted as `past_key_values`).
            inputs_embeds, decoder_inputs_embeds (`torch.FloatTensor` of shape `(batch_size, length, d_model)`,
                *optional*): embedded tokens instead of ids.
            use_cache (`bool`, *optional*): return the decoding cache.

        Returns:
            `Seq2SeqModelOutput`: the decoder's `last_hidden_state` (batch_size, target_length, d_model), the
            encoder's, and the cache.
        """
        cache = _pop_cache_kwarg(cache, kwargs)
        _refuse_unused(kwargs, self)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):  # a tuple from return_dict=False
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "decoder_input_ids are missing: pass them, or pass labels to a "
                    "VanillaTransformerForConditionalGeneration, which shifts them right."
                )
            # as BART: the source shifted right is the decoder's input (what pipeline("feature-extraction") needs)
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            **_cache_output(decoder_outputs.get(_CACHE_FIELD)),
        )
        return output if return_dict is not False else output.to_tuple()


class VanillaTransformerEncoderModel(nn.Module):
    """The shared embedding and the encoder alone, under the same names as in `VanillaTransformerModel`."""

    def __init__(self, config):
        super().__init__()
        self.shared = VanillaTransformerScaledEmbedding(config)
        self.encoder = VanillaTransformerEncoder(config, self.shared)

    def set_input_embeddings(self, value):
        self.shared = value
        self.encoder.embed_tokens = value

# ---------------------------------------------------------------------------------------------------------------------
# Heads: the pre-softmax linear layer for generation (section 3.4), a classifier
# ---------------------------------------------------------------------------------------------------------------------

class VanillaTransformerForConditionalGeneration(VanillaTransformerPreTrainedModel, GenerationMixin):
    """Encoder-decoder with the pre-softmax linear layer, tied to the shared embedding; generates with `generate`."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.model = VanillaTransformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if not config.tie_word_embeddings:
            self._tied_weights_keys = {}
        self.post_init()

    def get_encoder(self, *args, **kwargs):
        return self.model.encoder

    def get_decoder(self):
        return self.model.decoder

    def save_pretrained(self, save_directory, *args, **kwargs):
        # the folder declares pipeline("translation") (removed from transformers 5); transformers copies the pipeline's
        # file with this one, as a relative import of it
        from .pipeline_vanilla_transformer import PIPELINE_ENTRY

        self.config.custom_pipelines = {**(getattr(self.config, "custom_pipelines", None) or {}), **PIPELINE_ENTRY}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        """Next-token logits over the shared vocabulary, and the cross-entropy loss when `labels` are given.

        Args:
            input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs, cache,
            inputs_embeds, decoder_inputs_embeds, use_cache: as in `VanillaTransformerModel.forward`.
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*): target ids; -100 is
                ignored. Without `decoder_input_ids`, the labels shifted right are the decoder's input.
            num_items_in_batch (*optional*): Trainer's token count of the whole accumulated batch; the loss is then
                the sum over tokens divided by it.

        Returns:
            `Seq2SeqLMOutput`: `logits` (batch_size, target_length, vocab_size), `loss`, and the cache.
        """
        cache = _pop_cache_kwarg(cache, kwargs)
        _refuse_unused(kwargs, self)
        if labels is not None:
            if labels.dim() != 2:
                raise ValueError(f"labels must have shape (batch_size, target_length), got {tuple(labels.shape)}.")
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(outputs.last_hidden_state)  # (B, T, V)

        loss = None
        if labels is not None:
            if labels.shape[:2] != logits.shape[:2]:
                raise ValueError(
                    f"labels have shape {tuple(labels.shape)} but the decoder produced {tuple(logits.shape[:2])} "
                    f"positions: labels and decoder_input_ids must have the same length."
                )
            # sum over tokens divided by the token count of the whole (accumulated) batch when Trainer gives it
            loss = F.cross_entropy(
                logits.float().view(-1, logits.size(-1)),
                labels.reshape(-1),
                ignore_index=-100,
                reduction="sum" if num_items_in_batch is not None else "mean",
            )
            if num_items_in_batch is not None:
                loss = loss / num_items_in_batch

        # the base model's outputs (cache, hidden states, attentions) pass through under the same names
        passed_on = {key: value for key, value in outputs.items() if key != "last_hidden_state"}
        output = Seq2SeqLMOutput(loss=loss, logits=logits, **passed_on)
        return output if return_dict is not False else output.to_tuple()

    def generate(self, inputs=None, *args, **kwargs):
        """`GenerationMixin.generate`, with the source ids checked once per call (the forward does not read the
        values of accelerator tensors: that would make the device wait at every step) and the output length ruled:

        - with no length in the call or the generation config, the paper's: input length + 50 tokens (section 6.1);
        - any length is capped at the model's `max_position_embeddings` (with one warning) instead of failing
          partway and losing what was generated."""
        input_ids = inputs if inputs is not None else kwargs.get("input_ids")
        if isinstance(input_ids, torch.Tensor) and not input_ids.is_floating_point() and input_ids.dim() == 2:
            _check_input_ids(input_ids, self.config, "input_ids", read_values=not _is_tracing())
        self._rule_output_length(input_ids, kwargs)
        return super().generate(inputs, *args, **kwargs)

    def _rule_output_length(self, input_ids, kwargs):
        positions = self.config.max_position_embeddings
        config = kwargs.get("generation_config") or self.generation_config
        start = kwargs["decoder_input_ids"].shape[1] if kwargs.get("decoder_input_ids") is not None else 1
        new = kwargs.get("max_new_tokens", config.max_new_tokens)
        length = kwargs.get("max_length", config.max_length)
        if new is None and length is None:  # the paper's rule
            source = input_ids.shape[1] if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 else positions
            kwargs["max_new_tokens"] = max(1, min(source + EXTRA_OUTPUT_TOKENS, positions - start))
        elif new is not None and start + new > positions:
            logger.warning_once(f"max_new_tokens={new} would run past the model's {positions} positions: generating "
                                f"at most {positions - start} tokens.")
            kwargs["max_new_tokens"] = positions - start
        elif new is None and length > positions:
            logger.warning_once(f"max_length={length} is more than the model's {positions} positions: generating up "
                                f"to {positions}.")
            kwargs["max_length"] = positions

    def create_masks_for_generate(self, attention_mask=None, **kwargs):
        """`generate` turns the decoder's 2-D padding mask into a 4-D one for static caches; this model builds its
        causal mask itself (`_causal_mask`), so the 2-D mask (or None) passes through unchanged."""
        return attention_mask

    def prepare_decoder_input_ids_from_labels(self, labels):
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @staticmethod
    def _reorder_cache(cache, beam_idx):
        """Beam search's hook: each row continues a beam of its own source sentence, and `generate` repeats each
        encoder output once per beam, so the cross-attention keys and values of a row and of its new parent are the
        same. Only the self-attention cache is reordered (copying the cross-attention one too is a measurable share
        of beam-search time: benchmarks/speed.py)."""
        cache.self_attention_cache.reorder_cache(beam_idx)
        return cache


class VanillaTransformerForSequenceClassification(VanillaTransformerPreTrainedModel):
    """The encoder, mean (or max, or first-token) pooling over non-padding tokens, dropout and a linear classifier.

    Its parameter names match the encoder of `VanillaTransformerForConditionalGeneration`, so `from_pretrained` on a
    translation model's folder starts the classifier from that model's encoder (the decoder is left out).
    """

    _tied_weights_keys = {"model.encoder.embed_tokens.weight": "model.shared.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = VanillaTransformerEncoderModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.shared

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """Class scores of each text, and the loss when `labels` are given.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, length)`): token ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, length)`, *optional*): 1 for tokens, 0 for
                padding; mean pooling averages over the tokens only.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, length, d_model)`, *optional*): instead of ids.
            labels (*optional*): class ids `(batch_size,)` (single-label; -100 ignored), floats `(batch_size,)`
                (regression, num_labels 1) or `(batch_size, num_labels)` (multi-label), as HF's own heads.

        Returns:
            `SequenceClassifierOutput`: `logits` (batch_size, num_labels) and `loss`.
        """
        _refuse_unused(kwargs, self)
        outputs = self.model.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state  # (B, S, d)
        if self.config.classifier_pooling == "first":
            pooled = hidden_states[:, 0]
        elif self.config.classifier_pooling == "max":  # the largest value of each feature over the tokens
            if attention_mask is not None:
                padding = attention_mask.unsqueeze(-1) == 0  # (B, S, 1)
                hidden_states = hidden_states.masked_fill(padding, torch.finfo(hidden_states.dtype).min)
            pooled = hidden_states.amax(dim=1)
            if attention_mask is not None:  # an all-padding row: 0, as mean pooling gives (not the dtype's minimum)
                pooled = pooled.masked_fill(padding.all(dim=1), 0.0)
        elif attention_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, S, 1)
            pooled = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # all-padding row: 0
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self._loss(logits, labels)
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict is not False else output.to_tuple()

    def _check_labels(self, labels):
        valid = labels[labels != -100]
        low, high = (int(end) for end in torch.aminmax(valid)) if valid.numel() else (0, 0)
        if low < 0 or high >= self.num_labels:
            bad = low if low < 0 else high
            raise ValueError(
                f"labels contain {bad}, outside [0, num_labels={self.num_labels}): set num_labels (or id2label) "
                f"to the number of classes in the data."
            )

    def _loss(self, logits, labels):
        """Regression, single-label or multi-label loss, chosen as HF's own sequence-classification heads do."""
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        batch_size = logits.shape[0]
        if self.config.problem_type == "regression":
            if labels.numel() != batch_size * self.num_labels:
                expected = f"({batch_size},)" if self.num_labels == 1 else f"({batch_size}, {self.num_labels})"
                raise ValueError(f"labels have shape {tuple(labels.shape)}; regression expects {expected}.")
            return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view_as(logits.squeeze(-1)))
        if self.config.problem_type == "single_label_classification":
            if labels.numel() != batch_size:
                raise ValueError(
                    f"labels have shape {tuple(labels.shape)}; single-label classification expects ({batch_size},)."
                )
            labels = labels.view(-1)
            if _reads_values(labels):  # elsewhere cross_entropy's own check reports a bad class
                self._check_labels(labels)
            return F.cross_entropy(logits.float(), labels)
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"labels have shape {tuple(labels.shape)}; multi-label classification expects "
                f"({batch_size}, num_labels={self.num_labels})."
            )
        return F.binary_cross_entropy_with_logits(logits.float(), labels.to(torch.float32))

# ---------------------------------------------------------------------------------------------------------------------
# Adapters: every use of a transformers internal that has changed between releases lives here, and only here
# ---------------------------------------------------------------------------------------------------------------------

# Output dataclasses name the decoding cache `cache` in recent 5.x releases, `past_key_values` in 5.0.
_CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def _cache_output(cache):
    """The keyword under which an output dataclass carries the decoding cache in this transformers release."""
    return {_CACHE_FIELD: cache}


# What transformers itself may pass to a forward beside the documented arguments (generate's model inputs, Trainer's
# token count). Anything else is a typo (`atention_mask`) or an argument this model does not use (decoder ids for a
# classifier): refused by name, never swallowed by **kwargs. Checked on the keys alone (no tensor is read).
_PASSED_BY_TRANSFORMERS = frozenset({"cache_position", "position_ids", "decoder_position_ids", "num_items_in_batch",
                                     "logits_to_keep"})


def _refuse_unused(kwargs, module):
    unused = sorted(name for name in kwargs if name not in _PASSED_BY_TRANSFORMERS)
    if unused:
        raise TypeError(f"{type(module).__name__}.forward() got argument(s) it does not use: {', '.join(unused)}. "
                        f"Check the spelling; the arguments it takes are in its docstring.")


def _pop_cache_kwarg(cache, kwargs):
    """`generate` passes the cache as `cache` (recent 5.x) or `past_key_values` (5.0): accept either."""
    legacy = kwargs.pop("past_key_values", None)
    return cache if cache is not None else legacy


def _cached_cross_attention(cache, layer_idx):
    """Keys and values of a cross-attention layer cached by an earlier step, or None before the first step.

    `is_updated` and `layers[i].keys` are the cache's internals (the same from 5.0 to 5.24; 4.x had `key_cache`)."""
    if not cache.is_updated.get(layer_idx, False):
        return None
    layer = cache.cross_attention_cache.layers[layer_idx]
    return layer.keys, layer.values


def _past_length(cache, cache_position):
    """Tokens already in the decoding cache: a Python int for a dynamic cache (from its shape), a 0-d tensor for a
    static cache, never read on the host. 5.0's `generate` also passes `cache_position` (this step's positions),
    cheaper than 5.0's static count, which scans the cache."""
    if cache is None:
        return 0
    past_length = cache.self_attention_cache.get_seq_length()
    if isinstance(past_length, int) or cache_position is None:
        return past_length
    return cache_position[0]


def _static_cache_length(cache):
    """The key slots of a static (preallocated) cache, or None for a dynamic cache or none. `max_cache_len` is the
    static layers' attribute from 5.0 to 5.24, set before their first update."""
    layers = getattr(cache.self_attention_cache, "layers", None) if cache is not None else None
    return getattr(layers[0], "max_cache_len", None) if layers else None


def _attention_interface(config, output_attentions):
    """The attention kernel for `config._attn_implementation`; eager when weights are asked for (sdpa has none).

    `model.set_attn_implementation` only switches kernels in a file where transformers finds, by searching the
    source text, the pattern of its release: `ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]` (5.0 to
    5.1x) or `ALL_ATTENTION_FUNCTIONS.get_interface(` (later). This function is what both patterns stand for.
    """
    implementation = config._attn_implementation or "eager"
    if output_attentions:
        return eager_attention_forward
    if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):  # later 5.x; 5.0 has no "eager" entry to look up
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
    return eager_attention_forward if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]


__all__ = [
    "VanillaTransformerPreTrainedModel",
    "VanillaTransformerModel",
    "VanillaTransformerForConditionalGeneration",
    "VanillaTransformerForSequenceClassification",
    "sinusoidal_position_encoding",
]
