"""Speed of hf_vanilla against HF Marian and torch.nn.Transformer at the same sizes, measured side by side.

    python benchmarks/speed.py                       # small and base dims, fp32, this machine
    python benchmarks/speed.py --dims small --repeats 5 --json results.json
    python benchmarks/speed.py --device cuda --dtype bfloat16
    python benchmarks/speed.py --skip_ctranslate2      # without the CTranslate2 rows
    python benchmarks/speed.py --compile               # also torch.compile'd training, static-cache compiled generate
    python benchmarks/speed.py --cli                   # the translate command line end to end (benchmarks/cli_speed.py)

Shared machines drift, so the three models are measured in one run, in alternation (A B C A B C ...), and the
medians are compared: the ratios hf_vanilla / Marian are what to read, not the absolute numbers. Measured:
training tokens/s (forward, backward, AdamW step on fixed-length batches), greedy and beam-4 generation tokens/s
(a fixed number of new tokens), peak memory of a training step (resident memory of a fresh process on CPU, the
allocator's peak on GPU), the machine's matmul peak, and each model's training FLOP utilisation
(`torch.utils.flop_counter`). It checks that hf_vanilla and Marian did the same amount of work (same token counts).

With ctranslate2 installed (the `[ctranslate2]` extra), the same two models also run in CTranslate2, float32 and int8:
hf_vanilla exported with `ctranslate2_spec` (what `recipes.export` writes), Marian converted by CTranslate2's own
Transformers converter; same source batch, same number of new tokens, in the same rounds, each engine in a fresh
process of its own (thread pools in one process slow each other down). An hf_vanilla post-LN export (Marian's
placement, engine rows only) separates what the pre-LN placement costs in the engine from what the export costs.
"""

import argparse
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from transformers import MarianConfig, MarianMTModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForConditionalGeneration  # noqa: E402
from hf_vanilla.modeling_vanilla_transformer import sinusoidal_position_encoding  # noqa: E402
from hf_vanilla.training.cards import markdown_table  # noqa: E402
from hf_vanilla.training.provenance import ROOT, provenance  # noqa: E402

DIMS = {
    "small": dict(d_model=256, layers=3, heads=4, ffn=1024),
    "base": dict(d_model=512, layers=6, heads=8, ffn=2048),
}
VOCAB, PAD, BOS, EOS = 8000, 0, 1, 2


# ---- the three models, same dims, same vocabulary, tied output layer ------------------------------------------------


def build_vanilla(dims, dropout, norm_first=True):
    config = VanillaTransformerConfig(
        vocab_size=VOCAB, d_model=dims["d_model"], encoder_layers=dims["layers"], decoder_layers=dims["layers"],
        num_attention_heads=dims["heads"], ffn_dim=dims["ffn"], dropout=dropout, max_position_embeddings=512,
        attn_implementation="sdpa", norm_first=norm_first,
    )
    return VanillaTransformerForConditionalGeneration(config)


def build_marian(dims, dropout):
    config = MarianConfig(
        vocab_size=VOCAB, d_model=dims["d_model"], encoder_layers=dims["layers"], decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"], decoder_attention_heads=dims["heads"], encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"], activation_function="relu", dropout=dropout, attention_dropout=0.0,
        activation_dropout=0.0, max_position_embeddings=512, scale_embedding=True, pad_token_id=PAD,
        eos_token_id=EOS, bos_token_id=BOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        attn_implementation="sdpa",
    )
    return MarianMTModel(config)


class TorchTransformer(nn.Module):
    """torch.nn.Transformer with scaled embeddings, the sinusoidal encoding and a tied output layer (no KV cache)."""

    def __init__(self, dims, dropout):
        super().__init__()
        d = dims["d_model"]
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.register_buffer("pe", sinusoidal_position_encoding(512, d), persistent=False)
        self.transformer = nn.Transformer(d, dims["heads"], dims["layers"], dims["layers"], dims["ffn"], dropout,
                                          batch_first=True, norm_first=True)
        self.scale = math.sqrt(d)

    def _embed(self, ids):
        return self.embed(ids) * self.scale + self.pe[: ids.shape[1]]

    def forward(self, input_ids, decoder_input_ids):
        mask = nn.Transformer.generate_square_subsequent_mask(decoder_input_ids.shape[1], device=input_ids.device)
        hidden = self.transformer(self._embed(input_ids), self._embed(decoder_input_ids), tgt_mask=mask,
                                  tgt_is_causal=True)
        return hidden @ self.embed.weight.T  # tied pre-softmax layer

    @torch.no_grad()
    def greedy(self, input_ids, new_tokens):
        memory = self.transformer.encoder(self._embed(input_ids))
        out = torch.full((input_ids.shape[0], 1), BOS, device=input_ids.device)
        for _ in range(new_tokens):  # nn.Transformer has no cache: the decoder reruns over the whole prefix
            mask = nn.Transformer.generate_square_subsequent_mask(out.shape[1], device=input_ids.device)
            hidden = self.transformer.decoder(self._embed(out), memory, tgt_mask=mask, tgt_is_causal=True)
            out = torch.cat([out, (hidden[:, -1] @ self.embed.weight.T).argmax(-1, keepdim=True)], dim=1)
        return out


BUILDERS = {"hf_vanilla": build_vanilla, "marian": build_marian, "torch": TorchTransformer}
COMPILED = " compiled"  # suffix of the --compile rows: the same model, torch.compile'd
POST_LN = "hf_vanilla post-LN"  # an engine row only: hf_vanilla with Marian's placement (norm_first=False)


def build_models(dims, args, device):
    models = {name: build(dims, 0.1).to(device) for name, build in BUILDERS.items()}
    if args.compile:
        for name in ("hf_vanilla", "marian"):
            models[name + COMPILED] = BUILDERS[name](dims, 0.1).to(device)
            models[name + COMPILED].load_state_dict(models[name].state_dict())
            models[name + COMPILED].compile()  # in place: training compiles the forward and backward
    return models


# ---- measurements -------------------------------------------------------------------------------------------------


def batch(batch_size, length, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # ids below VOCAB - 1: CTranslate2's Marian converter drops the last id (see _SyntheticVocabulary)
    source = torch.randint(4, VOCAB - 1, (batch_size, length), generator=generator).to(device)
    target = torch.randint(4, VOCAB - 1, (batch_size, length), generator=generator).to(device)
    return source, target


def loss_of(name, model, source, target):
    decoder_input = torch.cat([torch.full_like(target[:, :1], BOS), target[:, :-1]], dim=1)
    if name == "torch":
        logits = model(source, decoder_input)
    else:
        logits = model(input_ids=source, decoder_input_ids=decoder_input).logits
    return nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB), target.reshape(-1))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_steps(name, model, optimizer, source, target, steps, device, autocast):
    model.train()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        with autocast():
            loss = loss_of(name, model, source, target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - start


def compiled_generation():
    """generate's own compilation: a static cache and a compiled decode step (CUDA graphs on a GPU), on any device."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True)
    config._compile_all_devices = True  # transformers compiles on accelerators only unless told
    return {"cache_implementation": "static", "compile_config": config}


def generate(name, model, source, new_tokens, beams, autocast):
    model.eval()
    with torch.no_grad(), autocast():
        if name == "torch":
            out = model.greedy(source, new_tokens)
        else:
            out = model.generate(input_ids=source, attention_mask=torch.ones_like(source), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, num_beams=beams, do_sample=False, use_cache=True,
                                 **(compiled_generation() if name.endswith(COMPILED) else {}))
    return out[:, 1:].numel()  # generated tokens, the start token aside


def matmul_peak(device, dtype, size=2048, repeats=10):
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops(name, model, source, target, autocast):
    counter = FlopCounterMode(display=False)
    with counter, autocast():
        loss_of(name, model, source, target).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
LOSS_KERNELS = {"aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::nll_loss_forward",
                "aten::nll_loss_backward"}


def _kernel_seconds(run):
    """Seconds that `run` spends in matrix products, and in the benchmark's own loss and optimiser step."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        run()
    events = profiler.key_averages()
    products = sum(e.self_cpu_time_total for e in events if e.key in MATRIX_PRODUCTS) / 1e6
    harness = sum(e.self_cpu_time_total for e in events if e.key in LOSS_KERNELS) / 1e6
    harness += sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step#")) / 1e6
    return products, harness


def _seconds_inside(model, run):
    """Wall-clock seconds of `run` spent inside the model (its forward, or the encoder that `generate` calls itself)."""
    inside, depth, started = [0.0], [0], []

    def enter(*args):
        depth[0] += 1
        if depth[0] == 1:
            started.append(time.perf_counter())

    def leave(*args):
        depth[0] -= 1
        if depth[0] == 0:
            inside[0] += time.perf_counter() - started.pop()

    modules = [model, model.get_encoder()]
    hooks = [hook for m in modules for hook in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return inside[0]


def time_floor(model, optimizer, source, target, gen_source, args, device, autocast):
    """hf_vanilla's seconds per measured unit (one training step, one generate call) that no change inside the
    model can remove.

    That is the time in matrix products (both models multiply the same matrices: identical FLOPs) plus the time
    outside the model (the loss and AdamW of the training loop; `generate`'s own loop). Every other second (norms,
    dropout, attention softmax, residuals, Python) is the model's own; Marian's time over this floor is what a model
    whose own seconds were all zero would reach, an upper bound on any same-work speed-up.
    """
    samples = {"train": [], "greedy": [], "beam4": []}
    for _ in range(args.repeats):  # the median of as many samples as the speeds have
        products, harness = _kernel_seconds(
            lambda: train_steps("hf_vanilla", model, optimizer, source, target, 1, device, autocast))
        samples["train"].append(products + harness)
        for mode, beams in (("greedy", 1), ("beam4", 4)):
            run = functools.partial(generate, "hf_vanilla", model, gen_source, args.new_tokens, beams, autocast)
            products, _ = _kernel_seconds(run)
            start = time.perf_counter()
            inside = _seconds_inside(model, run)
            samples[mode].append(products + (time.perf_counter() - start - inside))
    return {mode: statistics.median(values) for mode, values in samples.items()}


def peak_memory_probe(name, dims_name, batch_size, length, device, dtype):
    """Run one model's training steps in a fresh process and return its peak memory growth in MiB."""
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", name, "--dims", dims_name, "--batch_size",
               str(batch_size), "--length", str(length), "--device", device.type, "--dtype", str(dtype)[6:]]
    # glibc keeps freed blocks below its (self-raising) mmap threshold and reuses them at random, which made the
    # resident high-water mark vary by +-10% between runs; with a fixed low threshold every tensor is mapped on
    # allocation and unmapped on free, so the mark is the peak of live memory (repeats agree to 0.1 MiB)
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return float(result.stdout.strip().splitlines()[-1])


def probe(args):
    """The body of a memory probe: build, one warm-up step, then the peak of three more, relative to the start."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = BUILDERS[args.probe](DIMS[args.dims], 0.1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    source, target = batch(args.batch_size, args.length, device)
    autocast = autocast_for(device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_steps(args.probe, model, optimizer, source, target, 3, device, autocast)
        print((torch.cuda.max_memory_allocated() - base) / 2**20)
    else:  # Linux: reset the resident-memory high-water mark after a warm-up step, then read it after three more
        train_steps(args.probe, model, optimizer, source, target, 1, device, autocast)
        Path("/proc/self/clear_refs").write_text("5")
        base = _status_kib("VmRSS")
        train_steps(args.probe, model, optimizer, source, target, 3, device, autocast)
        print((_status_kib("VmHWM") - base) / 1024)


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def autocast_for(device, dtype):
    if dtype == torch.float32:
        return lambda: torch.autocast(device.type, enabled=False)
    return lambda: torch.autocast(device.type, dtype=dtype)


# ---- CTranslate2: the engine users serve translation models with --------------------------------------------------

ENGINE_QUANTIZATIONS = ("float32", "int8")


class _SyntheticVocabulary:
    """What CTranslate2's Marian converter reads from a tokenizer, for a model with random weights and no text. The
    converter drops the last id, where HF Marian keeps its `<pad>` (its engine starts from a zero embedding instead):
    so the last id is named `<pad>` and the benchmark's ids stay below it."""

    eos_token, unk_token, bos_token = "</s>", "<unk>", "<s>"

    def get_vocab(self):
        return {token: i for i, token in enumerate(["<blank>"] + synthetic_tokens()[1:-1] + ["<pad>"])}


def synthetic_tokens():
    return ["<pad>", "<s>", "</s>", "<unk>"] + [f"t{i}" for i in range(4, VOCAB)]


# thread layouts tried: one worker with every thread on each matrix product, or one worker per core with the batch
# split between them (CTranslate2's inter_threads; the products of a 16-sentence batch are too small to share well)
ENGINE_LAYOUTS = {"1x2": {"inter_threads": 1, "intra_threads": 2, "max_batch_size": 0},
                  "2x1": {"inter_threads": 2, "intra_threads": 1, "max_batch_size": 8}}


def engine_spec_makers(models):
    """{name: a function that builds a fresh CTranslate2 spec}: hf_vanilla models (names starting with it) by our
    exporter, "marian" by CTranslate2's own converter (a spec is quantized in place, so each use builds its own)."""
    from ctranslate2.converters.transformers import MarianMTLoader

    from hf_vanilla.export_ctranslate2 import ctranslate2_spec

    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "decoder_start_token": "<s>"}
    makers = {name: functools.partial(ctranslate2_spec, models[name], synthetic_tokens(), special)
              for name in models if name.startswith("hf_vanilla")}
    makers["marian"] = lambda: MarianMTLoader()(models["marian"], _SyntheticVocabulary())
    return makers


def export_engines(models, folder):
    """CTranslate2 folders for hf_vanilla (our exporter) and Marian (CTranslate2's converter), per quantization."""
    folders = {}
    for name, make in engine_spec_makers(models).items():
        for quantization in ENGINE_QUANTIZATIONS:
            path = Path(folder) / f"{name}-{quantization}"
            spec = make()
            spec.validate()
            spec.optimize(quantization=quantization)
            path.mkdir(parents=True)
            spec.save(str(path))
            folders[f"{name} ct2 {quantization}"] = path
    return folders


def same_engine_marian(name):
    """The Marian engine row measured under the same quantization and layout as `name` ("<model> ct2 <q> <layout>")."""
    return "marian ct2 " + name.split(" ct2 ", 1)[1]


def engine_generate(engine, source_tokens, new_tokens, beams, max_batch_size=0):
    """Exactly `new_tokens` per sentence, like `generate(min_new_tokens=max_new_tokens=...)`; returns the count."""
    results = engine.translate_batch(source_tokens, beam_size=beams, min_decoding_length=new_tokens,
                                     max_decoding_length=new_tokens, max_batch_size=max_batch_size)
    return sum(len(result.hypotheses[0]) for result in results)


def measure_engine(folder, layout, gen_source, new_tokens, device):
    """One round of one engine in a fresh process: translators' thread pools (and torch's) in one process slow each
    other down (a float32 engine ran 30% slower beside the others than alone), so each runs alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--engine_probe", str(folder), "--engine_layout", layout,
               "--device", device.type, "--new_tokens", str(new_tokens)]
    result = subprocess.run(command, input=json.dumps(gen_source.tolist()), capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def engine_probe(args):
    """The body of an engine round: load, then for greedy and beam 4 a warm-up call and the median of three."""
    import ctranslate2

    layout = dict(ENGINE_LAYOUTS[args.engine_layout])
    max_batch_size = layout.pop("max_batch_size")
    engine = ctranslate2.Translator(args.engine_probe, device=args.device, **layout)
    tokens = synthetic_tokens()
    source = [[tokens[i] for i in row] for row in json.loads(sys.stdin.read())]
    found = {}
    for mode, beams in (("greedy", 1), ("beam4", 4)):
        engine_generate(engine, source, args.new_tokens, beams, max_batch_size)  # warm-up: allocations, caches
        seconds = []
        for _ in range(3):  # the engine's own median: a round in a fresh process is otherwise noisy
            start = time.perf_counter()
            generated = engine_generate(engine, source, args.new_tokens, beams, max_batch_size)
            seconds.append(time.perf_counter() - start)
        found[mode] = {"tokens": generated, "seconds": statistics.median(seconds)}
    print(json.dumps(found))


def measure(dims_name, args, device, dtype):
    dims = DIMS[dims_name]
    autocast = autocast_for(device, dtype)
    torch.manual_seed(0)
    models = build_models(dims, args, device)
    engines, engine_results = {}, {}
    if not args.skip_ctranslate2:  # exported from the very weights measured below
        import tempfile

        # also hf_vanilla post-LN (engine rows only): Marian's placement, the one difference left between the two
        # exports (pre-LN adds a final LayerNorm per stack), to tell the placement's cost from the export's
        exported = {name: models[name].cpu() for name in ("hf_vanilla", "marian")}
        exported[POST_LN] = build_vanilla(dims, 0.1, norm_first=False)
        folders = export_engines(exported, tempfile.mkdtemp(prefix="speed-ct2-"))
        models = {name: model.to(device) for name, model in models.items()}
        engines = {f"{name} {layout}": (folder, layout)
                   for name, folder in folders.items() for layout in ENGINE_LAYOUTS}
        engine_results = {name: {"greedy": [], "beam4": []} for name in engines}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    source, target = batch(args.batch_size, args.length, device)
    gen_source, _ = batch(args.gen_batch_size, args.length, device, seed=1)
    results = {name: {"train": [], "greedy": [], "beam4": []} for name in models}
    work = {name: {} for name in models}

    for name, model in models.items():  # warm-up: allocator, kernels, lazy init
        train_steps(name, model, optimizers[name], source, target, 1, device, autocast)
        generate(name, model, gen_source[:2], 2, 1, autocast)
        if name.endswith(COMPILED):  # compile for the measured shapes here, not inside the timed calls
            for beams in (1, 4):
                generate(name, model, gen_source, args.new_tokens, beams, autocast)
    for _ in range(args.repeats):
        for name, model in models.items():  # in alternation, so drift hits every model alike
            seconds = train_steps(name, model, optimizers[name], source, target, args.train_steps, device, autocast)
            tokens = args.train_steps * source.numel() * 2
            results[name]["train"].append(tokens / seconds)
            work[name]["train_tokens"] = tokens
            for mode, beams in (("greedy", 1), ("beam4", 4)):
                if name == "torch" and beams > 1:
                    continue  # nn.Transformer comes without a beam search
                start = time.perf_counter()
                generated = generate(name, model, gen_source, args.new_tokens, beams, autocast)
                sync(device)
                results[name][mode].append(generated / (time.perf_counter() - start))
                work[name][f"{mode}_tokens"] = generated
        for name, (folder, layout) in engines.items():
            for mode, found in measure_engine(folder, layout, gen_source, args.new_tokens, device).items():
                engine_results[name][mode].append(found["tokens"] / found["seconds"])
                assert found["tokens"] == work["marian"][f"{mode}_tokens"], f"{name}: not the same work"

    for name in work:
        if name != "torch":
            assert work[name] == work["marian"], f"unequal work: {name} {work[name]} vs marian {work['marian']}"
    peak = matmul_peak(device, dtype)
    table = {}
    for name, model in models.items():
        step_seconds = args.train_steps * source.numel() * 2 / statistics.median(results[name]["train"])
        # one step's forward and backward; a compiled model does the same products as its eager twin
        flops = training_flops(name.removesuffix(COMPILED), models[name.removesuffix(COMPILED)], source, target,
                               autocast)
        table[name] = {
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "train_tokens_per_s": statistics.median(results[name]["train"]),
            "greedy_tokens_per_s": statistics.median(results[name]["greedy"]),
            "beam4_tokens_per_s": statistics.median(results[name]["beam4"]) if results[name]["beam4"] else None,
            "train_step_tflops": flops / 1e12,
            "train_flop_utilisation": flops / (step_seconds / args.train_steps) / peak,
            "peak_train_memory_mib": None if args.skip_memory or name.endswith(COMPILED) else peak_memory_probe(
                name, dims_name, args.batch_size, args.length, device, dtype),
            "samples": results[name],
        }
    if device.type == "cpu":  # on a GPU the profiler's CPU times are kernel launches, not the products themselves
        floor = time_floor(models["hf_vanilla"], optimizers["hf_vanilla"], source, target, gen_source, args, device,
                           autocast)
        tokens = {"train": source.numel() * 2, "greedy": work["marian"]["greedy_tokens"],
                  "beam4": work["marian"]["beam4_tokens"]}  # per training step, per generate call
        table["hf_vanilla"]["floor_seconds"] = floor
        table["hf_vanilla"]["speedup_bound"] = {
            mode: tokens[mode] / table["marian"][f"{mode}_tokens_per_s"] / floor[mode] for mode in floor}
    engines_table = {name: {f"{mode}_tokens_per_s": statistics.median(values) for mode, values in modes.items()}
                     for name, modes in engine_results.items()}
    return {"dims": dims, "matmul_peak_gflops": peak / 1e9, "models": table, "work": work, "engines": engines_table}


def ratio(table, key, ours="hf_vanilla", theirs="marian"):
    ours, theirs = table[ours][key], table[theirs][key]
    return ours / theirs if ours and theirs else None


def print_engines(dims_name, result):
    """CTranslate2 rows: tokens/s, and ratios against HF Marian's generate and against Marian in the same engine."""
    marian = result["models"]["marian"]
    for name, row in result["engines"].items():
        same_engine = result["engines"][same_engine_marian(name)]
        speeds = {mode: row[f"{mode}_tokens_per_s"] for mode in ("greedy", "beam4")}
        print(f"{dims_name:6} {name:28} " + "  ".join(
            f"{mode} {speed:6.0f} tok/s = {speed / marian[f'{mode}_tokens_per_s']:.2f}x HF Marian, "
            f"{speed / same_engine[f'{mode}_tokens_per_s']:.2f}x Marian in CT2" for mode, speed in speeds.items()))


def _dims_label(dims_name, dims):
    return f"{dims_name} ({dims['d_model']}/{dims['layers']}+{dims['layers']}/{dims['heads']}/{dims['ffn']})"


def models_table(report):
    """The model rows (training, greedy and beam-4 generate, memory, FLOP utilisation), and hf_vanilla / Marian."""
    labels = {"hf_vanilla": "hf_vanilla", "marian": "HF Marian", "torch": "torch.nn.Transformer"}
    rows = []
    for dims_name, result in report["dims"].items():
        for name, row in result["models"].items():
            greedy = f"{row['greedy_tokens_per_s']:,.0f}" + (" (no cache)" if name == "torch" else "")
            rows.append([_dims_label(dims_name, result["dims"]), labels.get(name, name),
                         f"{row['train_tokens_per_s']:,.0f}", greedy,
                         f"{row['beam4_tokens_per_s']:,.0f}" if row["beam4_tokens_per_s"] else "-",
                         f"{row['peak_train_memory_mib']:,.0f}" if row["peak_train_memory_mib"] else "-",
                         f"{row['train_flop_utilisation']:.0%}"])
        ratios = result["ratios_vs_marian"]  # computed once, by main, in the column order above
        rows.append([dims_name, "hf_vanilla / HF Marian", *(f"{value:.2f}x" if value else "-" for value in
                                                            ratios.values()),
                     f"matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s"])
        bound = result["models"]["hf_vanilla"].get("speedup_bound")
        if bound:  # Marian's time over hf_vanilla's matrix products + loss, optimiser and generate loop
            rows.append([dims_name, "bound: hf_vanilla / HF Marian if all else were free",
                         *(f"{bound[mode]:.2f}x" for mode in ("train", "greedy", "beam4")), "-", "-"])
    return markdown_table(["dims", "model", "train tok/s", "greedy tok/s", "beam-4 tok/s", "peak train MiB",
                           "train FLOP utilisation"], rows)


def engines_table(report):
    """CTranslate2 rows: tokens/s, ratio to HF Marian's generate and to Marian in the same engine and layout, with
    the >= 0.95x (no penalty from the export) verdict."""
    rows = []
    for dims_name, result in report["dims"].items():
        marian = result["models"]["marian"]
        for name, row in result["engines"].items():
            if not name.startswith("hf_vanilla"):
                continue
            same = result["engines"][same_engine_marian(name)]
            cells = []
            for mode in ("greedy", "beam4"):
                speed = row[f"{mode}_tokens_per_s"]
                versus = speed / same[f"{mode}_tokens_per_s"]
                cells.append(f"{speed:,.0f} ({speed / marian[f'{mode}_tokens_per_s']:.2f}x / {versus:.2f}x"
                             + ("" if versus >= 0.95 else ", **under 0.95x**") + ")")
            rows.append([dims_name, name, *cells])
    return markdown_table(["dims", "engine", "greedy tok/s (vs HF Marian generate / vs Marian in CT2)",
                           "beam-4 tok/s (same)"], rows)


def main():
    if "--cli" in sys.argv[1:]:  # the command line end to end: its own script, its own flags
        import cli_speed

        return cli_speed.main([a for a in sys.argv[1:] if a != "--cli"])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", choices=list(DIMS) + ["all"], default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch_size", type=int, default=32, help="training batch (sentences)")
    parser.add_argument("--length", type=int, default=32, help="source and target length (tokens)")
    parser.add_argument("--train_steps", type=int, default=4, help="training steps per measurement")
    parser.add_argument("--gen_batch_size", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--skip_ctranslate2", action="store_true", help="no CTranslate2 rows")
    parser.add_argument("--compile", action="store_true",
                        help="also torch.compile'd training and static-cache compiled generation (hf_vanilla, Marian)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "speed.json"),
                        help="Where the results go, with their provenance (the README's tables read the default).")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--engine_probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--engine_layout", default="1x2", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args)
    if args.engine_probe:
        return engine_probe(args)

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch " \
              f"{torch.__version__}, {args.dtype}, {device.type}"
    if device.type == "cuda":
        machine += f" ({torch.cuda.get_device_name()})"
    where = Path(args.json).resolve()
    settings = {**vars(args), "json": str(where.relative_to(ROOT) if where.is_relative_to(ROOT) else where)}
    report = {"provenance": provenance(), "machine": machine, "settings": settings, "dims": {}}
    start = time.perf_counter()
    for dims_name in (DIMS if args.dims == "all" else [args.dims]):
        print(f"measuring {dims_name} dims ...", file=sys.stderr, flush=True)
        report["dims"][dims_name] = measure(dims_name, args, device, dtype)

    print(f"\n{machine}")
    header = f"{'dims':6} {'model':11} {'train tok/s':>12} {'greedy tok/s':>13} {'beam4 tok/s':>12} " \
             f"{'peak MiB':>9} {'train FLOP util':>16}"
    print(header + "\n" + "-" * len(header))
    for dims_name, result in report["dims"].items():
        for name, row in result["models"].items():
            print(f"{dims_name:6} {name:11} {row['train_tokens_per_s']:12.0f} {row['greedy_tokens_per_s']:13.0f} "
                  f"{row['beam4_tokens_per_s'] or float('nan'):12.0f} "
                  f"{row['peak_train_memory_mib'] or float('nan'):9.0f} {row['train_flop_utilisation']:15.0%}")
        table = result["models"]
        result["ratios_vs_marian"] = {key: ratio(table, key) for key in (
            "train_tokens_per_s", "greedy_tokens_per_s", "beam4_tokens_per_s", "peak_train_memory_mib")}
        print(f"{dims_name:6} {'ratio':11} " + "  ".join(
            f"{key.replace('_tokens_per_s', '').replace('peak_train_memory_mib', 'memory')} "
            f"{value:.2f}x" for key, value in result["ratios_vs_marian"].items() if value) +
            f"  (matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s)")
        if "hf_vanilla" + COMPILED in table:
            for theirs in ("marian", "marian" + COMPILED):
                result[f"ratios_compiled_vs_{theirs.replace(' ', '_')}"] = found = {
                    key: ratio(table, key, "hf_vanilla" + COMPILED, theirs)
                    for key in ("train_tokens_per_s", "greedy_tokens_per_s", "beam4_tokens_per_s")}
                print(f"{dims_name:6} {'compiled':11} " + "  ".join(
                    f"{key.replace('_tokens_per_s', '')} {value:.2f}x" for key, value in found.items()) +
                    f"  (hf_vanilla compiled / {theirs})")
        bound = table["hf_vanilla"].get("speedup_bound")
        if bound:
            print(f"{dims_name:6} {'bound':11} " + "  ".join(f"{mode} {value:.2f}x" for mode, value in bound.items())
                  + "  (Marian's time / hf_vanilla's matrix products + loss, optimiser and generate loop)")
        print_engines(dims_name, result)
    report["minutes"] = (time.perf_counter() - start) / 60
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
