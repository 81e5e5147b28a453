"""Classify texts with a saved classifier: one per line from stdin or --input; label and score to stdout.

    echo "A gripping, beautifully acted film." | python -m recipes.classify --model outputs/classification
"""

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, pipeline

import hf_vanilla  # noqa: F401  (registers the model classes with the Auto classes)
from recipes.common import checked_tokenizer


@dataclass
class ClassifyArguments:
    model: str = field(metadata={"help": "A saved classifier folder (with its tokenizer)."})
    input: str | None = field(default=None, metadata={"help": "A text file, one text a line (default stdin)."})
    batch_size: int = field(default=32, metadata={"help": "Texts classified together."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})


def main(argv=None):
    (args,) = HfArgumentParser(ClassifyArguments, description=__doc__).parse_args_into_dataclasses(args=argv)
    tokenizer = checked_tokenizer(args.model, args.input)
    classifier = pipeline("text-classification", model=args.model, tokenizer=tokenizer, device="cpu",
                          trust_remote_code=args.trust_remote_code, truncation=True)
    stream = open(args.input, encoding="utf-8") if args.input else sys.stdin
    with stream:
        texts = [line.strip() for line in stream if line.strip()]
    for text, result in zip(texts, classifier(texts, batch_size=args.batch_size)):
        print(f"{result['label']}\t{result['score']:.3f}\t{text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
