"""Model cards (`README.md` of a saved folder) with the Hub's YAML metadata, results files and the command line."""

import json
import shlex
import sys
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

from .policies import changes_on_resume

LICENSE = "apache-2.0"  # the licence of this project's code, which a saved folder carries

# The terms of weights trained on a built-in corpus follow the corpus's (as `Corpus.licence` states them), as the Hub
# metadata (an SPDX-like id, or "other" with a name and a link): licence as written -> (license, name, link)
DATA_TERMS = {
    "MPL-2.0": ("mpl-2.0", None, None),
    "public domain": (LICENSE, None, None),  # no terms of its own: the code's licence
    "research use (Pang & Lee, 2005)": ("other", "research-use-only-pang-lee-2005",
                                        "https://www.cs.cornell.edu/people/pabo/movie-review-data/"),
    "research use (Greene & Cunningham, 2006)": ("other", "research-use-only-greene-cunningham-2006",
                                                 "http://mlg.ucd.ie/datasets/bbc.html"),
}


def weights_licence(licences):
    """The Hub's (license, license_name, license_link) for weights trained on data under `licences` (the corpora's
    licences as written; None for data of the user's, whose terms this project cannot know: "unknown"). Several
    sources: the most restrictive ("other" names them all)."""
    terms = [DATA_TERMS.get(licence, ("other", licence, None)) if licence else ("unknown", None, None)
             for licence in licences]
    others = [term for term in terms if term[0] == "other"]
    if others:
        return "other", "+".join(dict.fromkeys(term[1] for term in others)), others[0][2]
    for kind in ("unknown", "mpl-2.0"):
        if any(term[0] == kind for term in terms):
            return kind, None, None
    return LICENSE, None, None


def command_line():
    """The exact command that ran, for the model card."""
    module = Path(sys.argv[0]).with_suffix("").as_posix().replace("/", ".")
    module = module[module.index("recipes.") :] if "recipes." in module else module
    return "python -m " + " ".join([module] + [shlex.quote(a) for a in sys.argv[1:]])


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def card_metadata(model_name, task_type, dataset, dataset_name, scores, languages=None, tags=(), licences=(None,)):
    """The Hub's metadata block: `scores` is a list of (split, metric, value), each one `model-index` result.

    `task_type` is a Hub task ("translation", "text-classification"); `dataset` the corpus or file the model was
    trained on, `dataset_name` how the card names it (with the pair, for translation); `licences` the training data's
    (`weights_licence`)."""
    metrics = sorted({metric for _, metric, _ in scores})
    license, license_name, license_link = weights_licence(licences)
    extra = {key: value for key, value in (("license_name", license_name), ("license_link", license_link)) if value}
    return ModelCardData(
        model_name=model_name,
        language=list(languages) if languages else None,
        license=license,
        pipeline_tag=task_type,
        **extra,
        library_name="transformers",
        tags=["hf_vanilla", "vanilla-transformer", task_type, *tags],
        datasets=[dataset],
        metrics=metrics,
        eval_results=[
            EvalResult(task_type=task_type, dataset_type=dataset, dataset_name=dataset_name, dataset_split=split,
                       metric_type=metric, metric_value=round(float(value), 4))
            for split, metric, value in scores
        ],
    )


def page_examples(texts, count=5, max_words=30):
    """A few of the run's validation texts (never test), saved in results.json for the page's examples
    (recipes.serve)."""
    return [text for text in texts if len(text.split()) <= max_words][:count]


def model_description(model, *details, encoder_only=False):
    """The card's "Model" line, for every recipe's card: class, shape, LayerNorm placement, vocabulary and size, with
    the recipe's own `details` (pooling, a starting point) before the size."""
    config = model.config
    layers = (f"{config.encoder_layers} encoder layers" if encoder_only
              else f"{config.encoder_layers}+{config.decoder_layers} layers")
    ffn = getattr(config, "ffn_dim", None) or config.encoder_ffn_dim  # hf_vanilla's name, or Marian's
    placement = "pre" if getattr(config, "norm_first", False) else "post"  # Marian has no norm_first: post-LN
    parts = [f"d_model {config.d_model}", layers, f"{config.num_attention_heads} heads", f"ffn {ffn}",
             f"{placement}-LN",
             f"a vocabulary of {config.vocab_size} byte-level BPE tokens", *details,
             f"{model.num_parameters() / 1e6:.1f}M parameters"]
    return f"`{type(model).__name__}`: " + ", ".join(parts) + "."


def write_model_card(output_dir, title, sections, metadata=None, run_dir=None):
    """`README.md` of a saved model folder: the metadata block (a `ModelCardData`), a title and (heading, markdown)
    sections; and, when the run in `run_dir` (default `output_dir`) was resumed with --resume_with_changes, what
    changed."""
    changes = changes_on_resume(run_dir or output_dir)
    if changes:
        sections = [*sections, ("Resumed with changes", "This run was resumed with settings other than it started "
                                "with (`--resume_with_changes`), so the command above does not reproduce it alone:\n\n"
                                + "\n".join(f"{n}. " + "; ".join(f"`{c}`" for c in resume)
                                            for n, resume in enumerate(changes, 1)))]
    lines = ["---", metadata.to_yaml(), "---", ""] if metadata is not None else []
    lines += [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body.strip(), ""]
    (Path(output_dir) / "README.md").write_text("\n".join(lines))
