"""Classify texts with a saved classifier: one per line from stdin or --input; label and score to stdout.

    echo "A gripping, beautifully acted film." | python -m recipes.classify --model outputs/classification

Lines are read and classified in batches of --batch_size, each batch printed as soon as it is done. Blank lines are
skipped; a line that is not UTF-8 is reported on stderr with its number and skipped (--errors strict stops there);
a line longer than the model takes is classified truncated, and reported.
"""

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, pipeline

import hf_vanilla  # noqa: F401  (registers the model classes with the Auto classes)
from hf_vanilla.cli import parse_arguments, report
from hf_vanilla.inference import load_tokenizer, read_lines
from hf_vanilla.loading_vanilla_transformer import check_model_folder


@dataclass
class ClassifyArguments:
    model: str = field(metadata={"help": "A saved classifier folder (with its tokenizer)."})
    input: str | None = field(default=None, metadata={"help": "A text file, one text a line (default stdin)."})
    batch_size: int = field(default=32, metadata={"help": "Texts classified (and printed) together."})
    errors: str = field(default="skip", metadata={"help": "A line that is not UTF-8: skip (report it, go on) or "
                                                          "strict (stop there, exit 1)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})

    def __post_init__(self):
        if self.errors not in ("skip", "strict"):
            raise ValueError(f"--errors {self.errors!r}: choose skip or strict.")
        if self.batch_size < 1:
            raise ValueError("--batch_size must be at least 1.")


def main(argv=None):
    (args,) = parse_arguments(HfArgumentParser(ClassifyArguments, description=__doc__), argv)
    try:
        stream = open(args.input, "rb") if args.input else sys.stdin.buffer
    except OSError as error:
        return report(f"cannot read {args.input} ({error.strerror}): give a text file with one text a line", "input")
    try:
        check_model_folder(args.model, model_type=None)
        tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
        classifier = pipeline("text-classification", model=args.model, tokenizer=tokenizer, device="cpu",
                              trust_remote_code=args.trust_remote_code, truncation=True)
    except (FileNotFoundError, ValueError) as error:
        return report(error, "model")
    failed = 0
    max_tokens = classifier.model.config.max_position_embeddings
    with stream:
        for batch, problems in read_lines(stream, args.batch_size, tokenizer, max_tokens):
            for problem in problems:
                print(f"line {problem.number}: {problem.message}", file=sys.stderr, flush=True)
                failed += problem.skipped
                if failed and args.errors == "strict":
                    return 1
            texts = [text for _, text in batch]
            for text, result in zip(texts, classifier(texts, batch_size=args.batch_size) if texts else []):
                print(f"{result['label']}\t{result['score']:.3f}\t{text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
