"""A joint byte-level BPE vocabulary for source and target (the paper's shared vocabulary), as a fast tokenizer.

The result is a plain `PreTrainedTokenizerFast`: `AutoTokenizer.from_pretrained` loads the saved folder with no code
of this project. Byte-level BPE has no unknown characters and decodes back to exactly the text it was given
(accents, ß, œ and all).
"""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# ids fixed to match VanillaTransformerConfig's defaults (pad 0, bos 1, eos 2) plus unk 3
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, model_max_length: int = 1024,
    mask_token: str | None = None,
) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on `texts` (give source and target sentences together for one shared vocabulary).

    Every encoded sequence ends with `</s>`, targets too (`text_target=`); the model's decoder starts from `<s>`.
    `mask_token` (pre-training) adds a special token with the next id (4).
    """
    if vocab_size <= len(SPECIAL_TOKENS) + 256:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for merges: byte-level BPE needs more than 260.")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()) + ([mask_token] if mask_token else []),  # ids 0, 1, 2, 3 (4)
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,  # to stderr; a large corpus takes a while
    )
    backend.train_from_iterator(texts, trainer=trainer)
    eos = SPECIAL_TOKENS["eos_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=model_max_length,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
        clean_up_tokenization_spaces=False,
        **SPECIAL_TOKENS,
        **({"mask_token": mask_token} if mask_token else {}),
    )



def fit_to_model(tokenizer, model):
    """Give `tokenizer` the model's limit (`model_max_length` = its `max_position_embeddings`), so that
    `truncation=True` (pipelines, generate, the recipes) always yields inputs the model accepts; every folder a recipe
    saves (checkpoints too) then carries it. Returns the tokenizer."""
    tokenizer.model_max_length = model.config.max_position_embeddings
    return tokenizer
