"""The main job: train English -> French on the LibreOffice help pages on a CPU in about 15 minutes.

    python -m recipes.demo [--output_dir outputs/demo]

It runs `recipes.train_translation` (Seq2SeqTrainer, the paper's recipe) with a budget that fits a 2-core CPU:
the `small` preset (256 wide, 3+3 layers), 850 steps of 64 sentences, checkpoints every 100 steps with the last 3
averaged, and a 500-sentence test sample scored with beam 4. Then it translates five sentences and says how to
translate your own.
"""

import argparse
import subprocess
import sys
import time

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import hf_vanilla  # noqa: F401
from hf_vanilla.inference import translate

SENTENCES = [
    "Select the cells.",
    "Click OK to close the dialog.",
    "Opens a dialog where you can add, edit, and remove icons.",
    "Choose Format - Cells.",
    "Enter the text in the cell.",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--max_steps", type=int, default=850)
    args = parser.parse_args(argv)

    start = time.time()
    # the translation recipe in its own process: what it prints (and its resume hint) is its own command line
    status = subprocess.call([
        sys.executable, "-m", "recipes.train_translation",
        "--corpus", "libreoffice-help", "--pair", "en-fr", "--preset", "small", "--output_dir", args.output_dir,
        "--overwrite_output_dir", "--max_steps", str(args.max_steps), "--warmup_steps", "300",
        "--save_steps", "100", "--average_last_n", "3", "--eval_steps", str(args.max_steps // 2),
        "--max_eval_samples", "200", "--max_predict_samples", "500", "--logging_steps", "50",
    ])
    if status:
        return status
    model = AutoModelForSeq2SeqLM.from_pretrained(args.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(args.output_dir)
    print("\nfive translations (beam 4):")
    for source, target in zip(SENTENCES, translate(model, tokenizer, SENTENCES)):
        print(f"  {source}\n    -> {target}")
    print(f"\ndone in {(time.time() - start) / 60:.1f} minutes. The model, its tokenizer and its card (README.md) are "
          f"in {args.output_dir}.\nTranslate your own sentences, one per line:\n"
          f"  echo \"Save the document.\" | .venv/bin/python -m recipes.translate --model {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
