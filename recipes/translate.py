"""Translate sentences with a saved model: one per line from stdin or --input, translations to stdout as they come.

    echo "Select the cells." | python -m recipes.translate --model outputs/translation
    python -m recipes.translate --model outputs/translation --input sentences.txt --num_beams 4
    python -m recipes.translate --model outputs/translation --plot_attention attention.png < sentences.txt
    python -m recipes.translate --engine ctranslate2 --model outputs/translation-ct2 < sentences.txt

Works on any folder `save_pretrained` wrote (hf_vanilla, Marian, ...): beam size and length penalty come from the
folder's generation config, and where it sets none, from the paper (hf_vanilla.inference's defaults; --help shows
them).

Lines are read and translated in batches of --batch_size, each batch printed as soon as it is done and in the input's
order, so the first translations appear within seconds and stopping loses at most the batches in flight. With
--engine ctranslate2 one worker per core translates a batch each (--workers and --threads override the layout).
Blank lines are skipped. A line that is not UTF-8 is reported on stderr with its number and skipped (--errors strict
stops there instead); a line longer than the model takes is translated truncated, and reported.
"""

import sys
from collections import deque
from dataclasses import dataclass, field

from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, HfArgumentParser

import hf_vanilla  # noqa: F401  (registers the model classes with the Auto classes)
from hf_vanilla.cli import parse_arguments, report
from hf_vanilla.inference import (
    DEFAULT_LENGTH_PENALTY,
    DEFAULT_NUM_BEAMS,
    cross_attention,
    decoding_settings,
    load_tokenizer,
    read_lines,
    translate,
)
from hf_vanilla.loading_vanilla_transformer import check_model_folder


@dataclass
class TranslateArguments:
    model: str = field(metadata={"help": "A saved model folder (with its tokenizer), or for --engine ctranslate2 a "
                                         "folder written by recipes.export."})
    engine: str = field(default="transformers", metadata={"help": "transformers (model.generate) or ctranslate2."})
    input: str | None = field(default=None, metadata={"help": "A text file, one sentence a line (default stdin)."})
    num_beams: int | None = field(
        default=None, metadata={"help": f"Beam size (default: the folder's, else {DEFAULT_NUM_BEAMS})."})
    length_penalty: float | None = field(
        default=None, metadata={"help": f"Default: the folder's, else {DEFAULT_LENGTH_PENALTY}."})
    batch_size: int = field(default=32, metadata={"help": "Sentences translated (and printed) together."})
    errors: str = field(default="skip", metadata={"help": "A line that is not UTF-8: skip (report it, go on) or "
                                                          "strict (stop there, exit 1)."})
    plot_attention: str | None = field(
        default=None, metadata={"help": "Draw the first sentence's cross-attention (last layer, mean of heads) "
                                        "as a heatmap in this PNG file."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow the folder's own modeling code."})
    workers: int | None = field(default=None, metadata={
        "help": "--engine ctranslate2: batches translated at once (CTranslate2's inter_threads; default: one a core)."})
    threads: int | None = field(default=None, metadata={
        "help": "--engine ctranslate2: threads per worker (intra_threads; default the cores over the workers)."})

    def __post_init__(self):
        if self.engine not in ("transformers", "ctranslate2"):
            raise ValueError(f"--engine {self.engine!r}: choose transformers or ctranslate2.")
        if self.errors not in ("skip", "strict"):
            raise ValueError(f"--errors {self.errors!r}: choose skip or strict.")
        if self.batch_size < 1 or (self.num_beams is not None and self.num_beams < 1):
            raise ValueError("--batch_size and --num_beams must be at least 1.")
        for name in ("workers", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.engine != "ctranslate2" and (self.workers or self.threads):
            raise ValueError("--workers and --threads are for --engine ctranslate2.")


def attention_heatmap(engine, sentence, path, num_beams):
    """Translate `sentence`, then draw the cross-attention each output token paid to the source (either engine)."""
    from hf_vanilla.training.plots import plot_attention

    _, weights, source, target = engine.cross_attention(sentence, num_beams)
    plot_attention(weights, source, target, path, title="cross-attention (last layer, mean of heads)")


class TransformersEngine:
    """model.generate on a saved folder, with the folder's decoding settings (the paper's where it has none). One
    batch at a time: torch already spreads each one over the cores."""

    in_flight = 1

    def __init__(self, args):
        check_model_folder(args.model, model_type=None)
        self.tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
        self.settings = decoding_settings(args.model)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).eval()
        self.max_tokens = self.model.config.max_position_embeddings - 1

    def cross_attention(self, text, num_beams=None, length_penalty=None):
        return cross_attention(self.model, self.tokenizer, text, num_beams, length_penalty)

    def submit(self, texts, num_beams, length_penalty):
        translations = translate(self.model, self.tokenizer, texts, len(texts), num_beams or self.settings["num_beams"],
                                 length_penalty=length_penalty if length_penalty is not None else
                                 self.settings["length_penalty"])
        return lambda: translations


class CTranslate2Engine:
    """The exported folder on CTranslate2, one worker per core by default (engine_layout): while the oldest batch is
    printed, the next ones translate on the other workers."""

    def __init__(self, args):
        from hf_vanilla.export_ctranslate2 import CTranslate2Translator

        self.translator = CTranslate2Translator(args.model, trust_remote_code=args.trust_remote_code,
                                                inter_threads=args.workers, intra_threads=args.threads)
        self.tokenizer, self.max_tokens = self.translator.tokenizer, self.translator.max_positions - 1
        self.in_flight = self.translator.workers + 1  # one more than the workers, so that none waits for work

    def cross_attention(self, text, num_beams=None, length_penalty=None):
        return self.translator.cross_attention(text, num_beams, length_penalty)

    def submit(self, texts, num_beams, length_penalty):
        return self.translator.submit(texts, num_beams, length_penalty)


def main(argv=None):
    parser = HfArgumentParser(TranslateArguments, description=__doc__)
    (args,) = parse_arguments(parser, argv)
    try:
        stream = open(args.input, "rb") if args.input else sys.stdin.buffer
    except OSError as error:
        return report(f"cannot read {args.input} ({error.strerror}): give a text file with one sentence a line",
                      "input")
    try:
        engine = (CTranslate2Engine if args.engine == "ctranslate2" else TransformersEngine)(args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        return report(error, "model")
    with stream:
        failed, translated, first = stream_translations(engine, stream, args)
    if not translated and not failed:
        print("error: no sentences to translate (empty input)", file=sys.stderr)
        return 2
    if args.plot_attention and first is not None:
        attention_heatmap(engine, first, args.plot_attention, args.num_beams)
        print(f"attention of the first sentence drawn in {args.plot_attention}", file=sys.stderr)
    return 1 if failed else 0


def stream_translations(engine, stream, args):
    """Translate and print batch by batch, in the input's order, with up to `engine.in_flight` batches translating
    at once; (lines that failed, lines translated, the first sentence). With --input, a progress bar on stderr counts
    the file's lines."""
    failed, translated, first = 0, 0, None
    total = None
    if args.input:
        with open(args.input, "rb") as lines:
            total = sum(1 for _ in lines)
    progress = tqdm(total=total, unit="line", desc="translating", file=sys.stderr, disable=total is None)
    pending = deque()  # (number of texts, a function that waits for their translations), oldest first

    def print_done(keep):
        nonlocal translated
        while len(pending) > keep:
            count, wait = pending.popleft()
            for line in wait():
                print(line)
            sys.stdout.flush()
            translated += count

    for batch, problems in read_lines(stream, args.batch_size, engine.tokenizer, engine.max_tokens):
        progress.update(len(batch) + len(problems))
        for problem in problems:
            print(f"line {problem.number}: {problem.message}", file=sys.stderr, flush=True)
            if problem.skipped:
                failed += 1
                if args.errors == "strict":
                    print_done(0)  # the lines before the bad one
                    return failed, translated, first
        texts = [text for _, text in batch]
        if texts:
            first = first if first is not None else texts[0]
            pending.append((len(texts), engine.submit(texts, args.num_beams, args.length_penalty)))
            print_done(engine.in_flight - 1)
    print_done(0)
    return failed, translated, first


if __name__ == "__main__":
    sys.exit(main())
