"""Prepare and cache a corpus, then print its split sizes and three examples per split.

    python -m recipes.prepare_data --corpus libreoffice-help --pair en-fr
    python -m recipes.prepare_data --corpus rotten-tomatoes
    python -m recipes.prepare_data --train_file reviews.csv --text_column review --label_column stars \
        --task classification
"""

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from hf_vanilla.training.arguments import DataArguments, parse_arguments, report
from hf_vanilla.training.corpora import CORPORA, CorpusError


@dataclass
class PrepareArguments:
    task: str | None = field(
        default=None, metadata={"help": "translation or classification; needed only for your own files."}
    )


def main(argv=None):
    parser = HfArgumentParser((DataArguments, PrepareArguments), description=__doc__)
    data_args, args = parse_arguments(parser, argv)
    if data_args.corpus is None and data_args.train_file is None and data_args.dataset_name is None:
        parser.error(f"give --corpus ({', '.join(CORPORA)}), --train_file or --dataset_name")
    task = CORPORA[data_args.corpus].task if data_args.corpus else args.task
    if task not in ("translation", "classification"):
        parser.error("give --task translation or --task classification with your own data")
    try:
        dataset_dict = data_args.load(task)
    except (CorpusError, ValueError, FileNotFoundError) as error:
        return report(error)

    name = data_args.corpus or data_args.dataset_name or data_args.train_file
    print(f"\n{name}{' ' + data_args.pair if data_args.pair else ''}: "
          + ", ".join(f"{split} {len(rows)}" for split, rows in dataset_dict.items()))
    for split, rows in dataset_dict.items():
        print(f"\n{split}:")
        label_names = getattr(rows.features.get("label"), "names", None)
        for row in rows.select(range(min(3, len(rows)))):
            if task == "translation":
                print(f"  {row['source']}\n    -> {row['target']}")
            else:
                print(f"  [{label_names[row['label']] if label_names else row['label']}] {row['text'][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
