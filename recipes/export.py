"""Export a trained translation model to a fast inference engine.

    python -m recipes.export --model outputs/translation --format ctranslate2 --output_dir outputs/translation-ct2
    python -m recipes.export --model outputs/translation --format ctranslate2 --output_dir ct2-int8 --quantization int8
    echo "Select the cells." | python -m recipes.translate --engine ctranslate2 --model outputs/translation-ct2

The CTranslate2 folder holds the engine's model, the tokenizer and the decoding settings (beam size, length penalty):
it is all a user needs to translate. Needs the `[ctranslate2]` extra (ctranslate2).
"""

import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from hf_vanilla.cli import parse_arguments, report
from hf_vanilla.export_ctranslate2 import QUANTIZATIONS, export_ctranslate2
from hf_vanilla.files import NoSpaceError, OutputFolderRefused


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "A saved translation model folder (with its tokenizer)."})
    output_dir: str = field(metadata={"help": "Where the exported model goes (a new or empty folder)."})
    format: str = field(default="ctranslate2", metadata={"help": "The engine: ctranslate2."})
    quantization: str | None = field(
        default=None, metadata={"help": f"Weight type in the engine: {', '.join(QUANTIZATIONS)} (default: as saved)."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an earlier export in --output_dir "
                                                                        "(a folder holding anything else is refused)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})

    def __post_init__(self):
        if self.format != "ctranslate2":
            raise ValueError(f"--format {self.format!r} is not supported: the engine is ctranslate2.")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise ValueError(f"--quantization {self.quantization!r} is not one of {', '.join(QUANTIZATIONS)}.")


def main(argv=None):
    (args,) = parse_arguments(HfArgumentParser(ExportArguments, description=__doc__), argv)
    try:
        folder = export_ctranslate2(args.model, args.output_dir, quantization=args.quantization,
                                    overwrite=args.overwrite_output_dir, trust_remote_code=args.trust_remote_code)
    except OutputFolderRefused as error:
        return report(error)
    except NoSpaceError as error:  # nothing was left half-written
        print(f"error: --output_dir: {error}.", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as error:
        print(f"error: --model: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"error: --format ctranslate2: {error}", file=sys.stderr)
        return 2
    print(f"CTranslate2 model ({args.quantization or 'weights as saved'}) written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
