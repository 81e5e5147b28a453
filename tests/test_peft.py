"""LoRA with PEFT on the names the README gives: it adapts every layer, trains, merges into a plain model, and that
model saves and reloads as a normal folder."""

import ast
import re
from pathlib import Path

import pytest
import torch
from conftest import VOCAB, tiny_config

from hf_vanilla import VanillaTransformerForConditionalGeneration

peft = pytest.importorskip("peft", reason="the [lora] extra (peft) is not installed")

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_target_modules():
    match = re.search(r"LoraConfig\(target_modules=(\[[^\]]*\])", README.read_text())
    assert match, "the README no longer names the LoRA target modules"
    return ast.literal_eval(match.group(1))


def test_lora_on_the_readme_modules_trains_merges_and_reloads(tmp_path):
    targets = readme_target_modules()
    assert targets == ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    torch.manual_seed(0)
    model = VanillaTransformerForConditionalGeneration(tiny_config())
    adapted = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                         task_type="SEQ_2_SEQ_LM"))
    config = model.config
    layers = config.encoder_layers * (4 + 2) + config.decoder_layers * (8 + 2)  # attentions' 4 linears, FFN's 2
    wrapped = [name for name, module in adapted.named_modules() if isinstance(module, peft.tuners.lora.Linear)]
    assert len(wrapped) == layers, wrapped
    assert all("lora_" in name for name, p in adapted.named_parameters() if p.requires_grad)

    ids = torch.randint(4, VOCAB, (8, 6), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids.flip(1)}
    optimizer = torch.optim.Adam([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    adapted.train()
    first = adapted(**batch).loss.item()
    for _ in range(30):
        optimizer.zero_grad()
        adapted(**batch).loss.backward()
        optimizer.step()
    adapted.eval()
    with torch.no_grad():
        trained = adapted(**batch)
    assert trained.loss.item() < first - 0.5  # the adapters learned

    merged = adapted.merge_and_unload()
    assert isinstance(merged, VanillaTransformerForConditionalGeneration)
    assert not [name for name, _ in merged.named_parameters() if "lora_" in name]
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, trained.logits, atol=1e-4, rtol=1e-4)
    merged.save_pretrained(tmp_path)
    reloaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, trained.logits, atol=1e-4, rtol=1e-4)
