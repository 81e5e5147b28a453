"""`pipeline("translation")` for hf_vanilla folders: transformers 5 removed its translation pipeline.

A translation folder saved by hf_vanilla declares this class in its config's `custom_pipelines` and carries this file,
so that

    pipeline("translation", model=FOLDER, trust_remote_code=True)

works with or without hf_vanilla installed (transformers runs only code from a folder it was told to trust; with
hf_vanilla installed, `pipeline(model=FOLDER, pipeline_class=VanillaTransformerTranslationPipeline)` needs no trust). It
decodes as recipes.translate does: the folder's beam size and length penalty (the paper's, the modeling file's
DEFAULT_NUM_BEAMS and DEFAULT_LENGTH_PENALTY, where the folder says nothing), each output up to its input length + 50
tokens within the model's positions (the model's `generate` applies that rule), inputs truncated to the positions.
`batch_size=N` pads N texts into one `generate`.
Keyword arguments (`num_beams`, `length_penalty`, `max_new_tokens`, any other `generate` option) override per call.
"""

from transformers import Pipeline

from .modeling_vanilla_transformer import DEFAULT_LENGTH_PENALTY, DEFAULT_NUM_BEAMS

# what a saved folder's config.json holds under custom_pipelines (the class is found by module and name in the folder)
PIPELINE_ENTRY = {"translation": {"impl": "pipeline_vanilla_transformer.VanillaTransformerTranslationPipeline",
                                  "pt": ["AutoModelForSeq2SeqLM"], "tf": [], "type": "text"}}


class VanillaTransformerTranslationPipeline(Pipeline):
    """Text in, `[{"translation_text": ...}]` out, one list per input text."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, **generate_kwargs):
        return {}, generate_kwargs, {}

    def preprocess(self, text):
        if not isinstance(text, str):
            raise TypeError(f"translation takes a text (or a list of texts), not {type(text).__name__}")
        # one position is the decoder's start token's; the encoder takes max_position_embeddings - 1 like the recipes
        limit = self.model.config.max_position_embeddings - 1
        return self.tokenizer(text, truncation=True, max_length=limit, return_tensors="pt")

    def _forward(self, inputs, **generate_kwargs):
        # what the folder's generation config sets (its non-default values), else the paper's
        saved = self.model.generation_config.to_diff_dict()
        settings = {"num_beams": saved.get("num_beams", DEFAULT_NUM_BEAMS),
                    "length_penalty": saved.get("length_penalty", DEFAULT_LENGTH_PENALTY), **generate_kwargs}
        if settings["num_beams"] == 1:
            settings.pop("length_penalty")  # greedy decoding has no use for it (and transformers warns)
        return {"output_ids": self.model.generate(**inputs, **settings)}

    def postprocess(self, outputs):
        ids = outputs["output_ids"]
        rows = ids if ids.dim() == 2 else ids.unsqueeze(0)
        return [{"translation_text": self.tokenizer.decode(row, skip_special_tokens=True).strip()} for row in rows]
