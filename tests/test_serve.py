"""The web page (`recipes.serve`, Gradio) driven in a real headless browser: Debian's Chromium under Playwright.

Needs the `[web]` extra, playwright and /usr/bin/chromium (`.ci/run` installs Debian's chromium and sets
HF_VANILLA_REQUIRE_BROWSER=1, so that there a missing browser fails instead of skipping).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from hf_vanilla import VanillaTransformerConfig, VanillaTransformerForSequenceClassification
from hf_vanilla.training.tokenizer import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# what a closed network needs: no background connections, no first-run or component updates
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = os.environ.get("HF_VANILLA_SCREENSHOT")  # where to keep the page's picture (README's, for one)


def _requirements():
    missing = [name for name in ("gradio", "playwright") if not _importable(name)]
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing and os.environ.get("HF_VANILLA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the browser test needs {', '.join(missing)} (HF_VANILLA_REQUIRE_BROWSER=1)")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def _importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m recipes.serve --model FOLDER` in a subprocess, up when its page answers."""

    def __init__(self, folder, tmp_path, *flags):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(tmp_path / f"serve-{self.port}.log", "w+")
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "recipes.serve", "--model", str(folder), "--port",
                                         str(self.port), *flags], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.output()}")
            try:
                urllib.request.urlopen(self.url, timeout=5)
                return
            except OSError:
                time.sleep(1)
        raise AssertionError(f"the server did not answer within 180 s: {self.output()}")

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def browser():
    _requirements()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny translation model trained by the recipe on the toy pairs."""
    from conftest import write_translation_csv

    root = tmp_path_factory.mktemp("served")
    data = write_translation_csv(root / "pairs.csv")
    out = root / "model"
    result = subprocess.run([sys.executable, "-m", "recipes.train_translation", "--train_file", str(data),
                             "--source_column", "en", "--target_column", "fr", "--output_dir", str(out), "--preset",
                             "tiny", "--vocab_size", "300", "--max_steps", "60", "--learning_rate", "3e-3",
                             "--warmup_steps", "20", "--save_steps", "30", "--eval_strategy", "no",
                             "--max_eval_samples", "10", "--max_predict_samples", "10", "--average_last_n", "1"],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("engine", ["transformers", "ctranslate2"])
def test_translate_in_the_browser(engine, browser, trained, tmp_path):
    """The same page from the transformers model and from its CTranslate2 export (`--engine ctranslate2`)."""
    folder = trained
    if engine == "ctranslate2":
        pytest.importorskip("ctranslate2", reason="the [ctranslate2] extra is not installed")
        folder = tmp_path / "ct2"
        export = subprocess.run([sys.executable, "-m", "recipes.export", "--model", str(trained), "--format",
                                 "ctranslate2", "--output_dir", str(folder)], cwd=REPO, capture_output=True, text=True,
                                timeout=300)
        assert export.returncode == 0, export.stderr[-3000:]
    sentence = "the big cat sees a dog."
    expected = subprocess.run([sys.executable, "-m", "recipes.translate", "--model", str(folder), "--num_beams",
                               "2", "--engine", engine], cwd=REPO, input=sentence + "\n", capture_output=True,
                              text=True, timeout=300)
    assert expected.returncode == 0, expected.stderr[-3000:]
    server = Server(folder, tmp_path, "--engine", engine)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 1100})
        page.goto(server.url, wait_until="domcontentloaded")
        page.locator("#num_beams input[type=number]").fill("2")
        page.locator("#num_beams input[type=number]").press("Enter")
        page.locator("#source textarea").fill(sentence)
        page.locator("#translate").click()
        page.wait_for_function("document.querySelector('#target textarea').value.length > 0", timeout=120000)
        translation = page.locator("#target textarea").input_value()
        assert translation == expected.stdout.strip()  # the page gives what the command line gives
        page.locator("#heatmap img").wait_for(timeout=60000)
        page.screenshot(path=str(tmp_path / "translate.png"), full_page=True)
        if SCREENSHOT and engine == "transformers":
            shutil.copy(tmp_path / "translate.png", SCREENSHOT)
        # bad input gets a message in the page, and the page keeps working
        page.locator("#source textarea").fill("   ")
        page.locator("#translate").click()
        page.get_by_text("Type a sentence first.").first.wait_for(timeout=30000)
        # examples from the run's own validation data, one click from the text box
        example = json.loads((folder / "results.json").read_text())["examples"][0]  # the export carries them
        page.get_by_text(example).first.click()
        page.wait_for_function(f"document.querySelector('#source textarea').value === {json.dumps(example)}",
                               timeout=30000)
        assert_api(server.url, "/translate", ["Translation", "Cross-attention", "Note"])
        assert f"({engine}) on http" in server.output()
    finally:
        server.stop()


def assert_api(url, endpoint, outputs):
    """The page's API (what gradio_client calls): one named endpoint, its outputs named by their labels."""
    from gradio_client import Client

    api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    assert list(api["named_endpoints"]) == [endpoint] and not api["unnamed_endpoints"], api
    assert [r["label"] for r in api["named_endpoints"][endpoint]["returns"]] == outputs, api


def test_classify_in_the_browser(browser, tmp_path):
    tokenizer = train_bpe_tokenizer(["a fine film", "a dull film"] * 20, vocab_size=300)
    config = VanillaTransformerConfig.from_preset("tiny", vocab_size=len(tokenizer), max_position_embeddings=32,
                                                  num_labels=2, id2label={0: "negative", 1: "positive"},
                                                  label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    folder = tmp_path / "classifier"
    VanillaTransformerForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    server = Server(folder, tmp_path)
    try:
        page = browser.new_page()
        page.goto(server.url, wait_until="domcontentloaded")
        page.locator("#source textarea").fill("a fine film")
        page.locator("#classify").click()
        scores = page.locator("#scores")
        scores.get_by_text("positive").first.wait_for(timeout=60000)
        assert "negative" in scores.inner_text()
        assert_api(server.url, "/classify", ["Labels"])
    finally:
        server.stop()


def test_serve_refuses_a_folder_it_cannot_use(tmp_path):
    _requirements()
    result = subprocess.run([sys.executable, "-m", "recipes.serve", "--model", str(tmp_path / "nope")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "error: --model: No model folder at" in result.stderr


def test_the_page_names_the_runs_languages_and_reads_damaged_facts_as_none(tmp_path):
    pytest.importorskip("gradio", reason="the [web] extra is not installed")
    from recipes.serve import run_facts

    (tmp_path / "results.json").write_text(json.dumps({"languages": ["en", "fr"], "examples": ["Select the cells."]}))
    assert run_facts(tmp_path) == (["en", "fr"], ["Select the cells."])
    (tmp_path / "results.json").write_text("{damaged")
    assert run_facts(tmp_path) == (None, [])
