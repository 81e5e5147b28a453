"""The forward is graph-clean: one graph under torch.compile, exportable with dynamic shapes (torch.export, ONNX),
and a static decoding cache gives the same tokens as the dynamic one."""

import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import VOCAB, scrambled, tiny_config
from torch.export import Dim
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from hf_vanilla import VanillaTransformerForConditionalGeneration, VanillaTransformerForSequenceClassification

# run again against the oldest supported transformers (`make test-oldest`: the core model tests)
pytestmark = pytest.mark.core


def padded(batch_size, length, seed):
    """Right-padded ids and mask: the first row is cut to half its length."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, VOCAB, (batch_size, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, length // 2:] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


def seq2seq_model(**overrides):
    torch.manual_seed(0)
    return scrambled(VanillaTransformerForConditionalGeneration(tiny_config(**overrides)))


def classifier_model():
    torch.manual_seed(0)
    return scrambled(VanillaTransformerForSequenceClassification(tiny_config(num_labels=3)))


class Seq2SeqLogits(torch.nn.Module):
    """The seq2seq forward as exporters see it: tensors in, logits out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                          use_cache=False).logits


class ClassifierLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def seq2seq_example(batch_size, source_length, target_length, seed):
    input_ids, attention_mask = padded(batch_size, source_length, seed)
    generator = torch.Generator().manual_seed(seed)
    decoder_input_ids = torch.randint(4, VOCAB, (batch_size, target_length), generator=generator)
    return input_ids, attention_mask, decoder_input_ids


BATCH, SOURCE, TARGET = Dim("batch", max=32), Dim("source", max=64), Dim("target", max=64)
SEQ2SEQ_SHAPES = {"input_ids": {0: BATCH, 1: SOURCE}, "attention_mask": {0: BATCH, 1: SOURCE},
                  "decoder_input_ids": {0: BATCH, 1: TARGET}}
CLASSIFIER_SHAPES = {"input_ids": {0: BATCH, 1: SOURCE}, "attention_mask": {0: BATCH, 1: SOURCE}}


# ---- one graph, no break ------------------------------------------------------------------------------------------


def assert_one_graph(function, *args):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(function)(*args)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.parametrize("norm_first", [True, False])
def test_padded_training_forward_is_one_graph(norm_first):
    model = seq2seq_model(norm_first=norm_first, dropout=0.1).train()
    input_ids, attention_mask = padded(3, 7, 0)
    labels = torch.randint(4, VOCAB, (3, 5))
    assert_one_graph(lambda *a: model(input_ids=a[0], attention_mask=a[1], labels=a[2]).loss,
                     input_ids, attention_mask, labels)


def test_padded_classifier_training_forward_is_one_graph():
    model = classifier_model().train()
    input_ids, attention_mask = padded(3, 7, 0)
    assert_one_graph(lambda *a: model(input_ids=a[0], attention_mask=a[1], labels=a[2]).loss,
                     input_ids, attention_mask, torch.tensor([0, 2, 1]))


@pytest.mark.parametrize("padded_target", [False, True])
def test_cached_decode_step_is_one_graph(padded_target):
    model = seq2seq_model()
    input_ids, attention_mask = padded(3, 7, 0)
    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    first = torch.ones(3, 1, dtype=torch.long)
    model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=first, cache=cache)

    def step(token, decoder_attention_mask):
        return model(encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=token,
                     decoder_attention_mask=decoder_attention_mask, cache=cache, use_cache=True).logits

    decoder_mask = torch.tensor([[1, 1], [1, 1], [1, 0]]) if padded_target else None
    assert_one_graph(step, torch.full((3, 1), 5), decoder_mask)


# ---- export -------------------------------------------------------------------------------------------------------


def test_export_seq2seq_with_dynamic_shapes_equals_eager():
    model = Seq2SeqLogits(seq2seq_model())
    program = torch.export.export(model, seq2seq_example(2, 6, 5, seed=0), dynamic_shapes=SEQ2SEQ_SHAPES)
    other = seq2seq_example(4, 9, 3, seed=1)  # another batch size and both lengths
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*other), model(*other), atol=1e-5, rtol=0)


def test_export_classifier_with_dynamic_shapes_equals_eager():
    model = ClassifierLogits(classifier_model())
    program = torch.export.export(model, padded(2, 6, 0), dynamic_shapes=CLASSIFIER_SHAPES)
    other = padded(5, 11, 1)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*other), model(*other), atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", ["seq2seq", "classifier"])
def test_onnx_export_runs_in_onnxruntime_and_equals_eager(head, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [export] extra is not installed")
    if head == "seq2seq":
        model, example, shapes = Seq2SeqLogits(seq2seq_model()), seq2seq_example(2, 6, 5, seed=0), SEQ2SEQ_SHAPES
        others = [seq2seq_example(4, 9, 3, seed=1), seq2seq_example(1, 4, 7, seed=2)]
    else:
        model, example, shapes = ClassifierLogits(classifier_model()), padded(2, 6, 0), CLASSIFIER_SHAPES
        others = [padded(4, 9, 1), padded(1, 3, 2)]
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, example, dynamic_shapes=shapes, dynamo=True).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == list(shapes)  # attention_mask is an input: not dropped even though it is all ones somewhere
    for other in others:
        result = session.run(None, {name: tensor.numpy() for name, tensor in zip(names, other)})[0]
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(result), model(*other), atol=1e-4, rtol=0)


# ---- static cache ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources():
    """Six right-padded reversal inputs of different lengths."""
    from toy_tasks import _PadOnly, reversal_examples

    return _PadOnly().pad(reversal_examples(6, seed=99, min_length=2, max_length=8))


@pytest.mark.parametrize("beams", [1, 4])
def test_static_cache_gives_the_dynamic_cache_tokens(beams, reversal_model, sources):
    settings = dict(max_new_tokens=10, num_beams=beams, length_penalty=0.6, do_sample=False)
    dynamic = reversal_model.generate(**sources, **settings)
    static = reversal_model.generate(**sources, cache_implementation="static", **settings)
    assert torch.equal(dynamic, static)
    assert len(set(dynamic[:, 1:].flatten().tolist())) > 6  # input-dependent output, not one repeated token


def test_static_cache_with_a_compiled_forward_gives_the_same_tokens(sources):
    """generate's own compilation of the decode step (compile_config, allowed on CPU here), fullgraph."""
    from transformers import CompileConfig

    model = seq2seq_model()
    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend="inductor", mode="default")
    compile_config._compile_all_devices = True  # transformers compiles on accelerators only unless told
    torch._dynamo.reset()
    for beams in (1, 4):
        settings = dict(max_new_tokens=8, num_beams=beams, do_sample=False)
        dynamic = model.generate(**sources, **settings)
        static = model.generate(**sources, cache_implementation="static", compile_config=compile_config, **settings)
        assert torch.equal(static, dynamic)
    assert hasattr(model, "_compiled_call"), "generate did not compile the forward"


def test_a_static_cache_takes_the_decoder_mask_generate_grows_and_refuses_a_longer_one():
    """A left-padded decoder prompt with its mask: the static cache gives the dynamic cache's tokens (the mask grows
    by one each step, up to the cache's slots); a mask as long as the slots is taken, a longer one refused naming the
    slots (found by the mutation pass: the static branch of the mask check went unchecked)."""
    from transformers.cache_utils import StaticCache

    model = seq2seq_model()
    input_ids, attention_mask = padded(2, 6, seed=3)
    start = torch.tensor([[1, 7, 9], [0, 1, 7]])  # the second prompt is left-padded
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    settings = dict(decoder_input_ids=start, decoder_attention_mask=mask, max_new_tokens=6, num_beams=1,
                    do_sample=False)
    dynamic = model.generate(input_ids, attention_mask=attention_mask, **settings)
    static = model.generate(input_ids, attention_mask=attention_mask, cache_implementation="static", **settings)
    assert torch.equal(dynamic, static)
    one_layer = seq2seq_model(decoder_layers=1)  # the slots are read from the cache's first layer, which always exists
    assert torch.equal(one_layer.generate(input_ids, attention_mask=attention_mask, **settings),
                       one_layer.generate(input_ids, attention_mask=attention_mask, cache_implementation="static",
                                          **settings))

    def step(slots, mask_length):
        cache = EncoderDecoderCache(StaticCache(config=model.config, max_cache_len=slots), DynamicCache())
        with torch.no_grad():
            return model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start,
                         decoder_attention_mask=torch.ones(2, mask_length, dtype=torch.long), past_key_values=cache,
                         use_cache=True).logits

    torch.testing.assert_close(step(3, 3), model(input_ids=input_ids, attention_mask=attention_mask,
                                                 decoder_input_ids=start).logits)
    with pytest.raises(ValueError, match=r"decoder_attention_mask has shape \(2, 4\) but must be \(batch_size, "
                                         r"sequence_length\) = \(2, <= 3\)"):
        step(3, 4)


# ---- inputs_embeds --------------------------------------------------------------------------------------------------


def test_inputs_embeds_are_what_get_input_embeddings_gives():
    """As in BART and Marian: get_input_embeddings()(ids) is what the stacks consume (scale included)."""
    model = seq2seq_model()
    input_ids, attention_mask, decoder_input_ids = seq2seq_example(3, 7, 5, seed=0)
    embed = model.get_input_embeddings()
    from_ids = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    from_embeds = model(inputs_embeds=embed(input_ids), attention_mask=attention_mask,
                        decoder_inputs_embeds=embed(decoder_input_ids)).logits
    torch.testing.assert_close(from_embeds, from_ids, atol=1e-6, rtol=0)
    classifier = classifier_model()
    torch.testing.assert_close(
        classifier(inputs_embeds=classifier.get_input_embeddings()(input_ids), attention_mask=attention_mask).logits,
        classifier(input_ids=input_ids, attention_mask=attention_mask).logits, atol=1e-6, rtol=0)


OLD_RELEASE = "b08ad6a"  # main before the scale moved into the embedding module


def test_folders_saved_before_the_change_load_with_the_same_outputs(tmp_path):
    """A folder saved by the code of OLD_RELEASE (taken from git history) loads today and gives the same logits."""
    old = tmp_path / "old"
    (old / "hf_vanilla").mkdir(parents=True)
    for name in ("__init__.py", "configuration_vanilla_transformer.py", "modeling_vanilla_transformer.py"):
        show = subprocess.run(["git", "show", f"{OLD_RELEASE}:hf_vanilla/{name}"], capture_output=True, text=True)
        if show.returncode != 0:
            pytest.skip(f"git history with {OLD_RELEASE} is not available here: {show.stderr.strip()}")
        (old / "hf_vanilla" / name).write_text(show.stdout, encoding="utf-8")
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(old)!r})
        from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration
        torch.manual_seed(0)
        config = VanillaTransformerConfig.from_preset("tiny", vocab_size={VOCAB}, max_position_embeddings=64)
        model = VanillaTransformerForConditionalGeneration(config).eval()
        model.save_pretrained({str(tmp_path / "folder")!r})
        ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]]); mask = (ids != 0).long()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.tensor([[1, 5], [1, 6]])).logits
        torch.save({{"ids": ids, "mask": mask, "logits": logits}}, {str(tmp_path / "reference.pt")!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    reference = torch.load(tmp_path / "reference.pt", weights_only=True)
    model = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path / "folder").eval()
    with torch.no_grad():
        logits = model(input_ids=reference["ids"], attention_mask=reference["mask"],
                       decoder_input_ids=torch.tensor([[1, 5], [1, 6]])).logits
    torch.testing.assert_close(logits, reference["logits"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("exporter", ["torch.export", "onnx"])
def test_the_model_as_loaded_exports_with_no_wrapper(exporter, tmp_path):
    """torch.export / torch.onnx.export(dynamo=True) on AutoModelForSeq2SeqLM.from_pretrained's model, default config
    (use_cache on): equal to eager. It used to fail with "Found EncoderDecoderCache in output"."""
    from transformers import AutoModelForSeq2SeqLM

    seq2seq_model().save_pretrained(tmp_path / "saved")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "saved").eval()
    assert model.config.use_cache
    input_ids, attention_mask, decoder_input_ids = seq2seq_example(2, 6, 5, seed=0)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}
    with torch.no_grad():
        expected = model(**inputs).logits
    if exporter == "torch.export":
        program = torch.export.export(model, (), kwargs=inputs, dynamic_shapes=SEQ2SEQ_SHAPES)
        other = dict(zip(inputs, seq2seq_example(3, 8, 4, seed=1)))
        with torch.no_grad():
            torch.testing.assert_close(program.module()(**inputs).logits, expected, atol=1e-5, rtol=0)
            torch.testing.assert_close(program.module()(**other).logits, model(**other).logits, atol=1e-5, rtol=0)
        return
    onnxruntime = pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")
    pytest.importorskip("onnxscript", reason="the [export] extra is not installed")
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (), kwargs=inputs, dynamic_shapes=SEQ2SEQ_SHAPES, dynamo=True).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result = session.run(None, {i.name: inputs[i.name].numpy() for i in session.get_inputs()})[0]
    torch.testing.assert_close(torch.from_numpy(result), expected, atol=1e-4, rtol=0)
