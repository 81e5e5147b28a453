"""docs/architecture.md's import rules, checked against every import in the code (top-level and inside functions)."""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAVELS = {"torch", "transformers", "packaging"}  # with a saved folder (trust_remote_code copies these files)
CORE = TRAVELS | {"tokenizers", "safetensors", "tqdm", "hf_vanilla"}
TRAINING = CORE | {"datasets", "accelerate", "evaluate", "sacrebleu", "matplotlib", "huggingface_hub", "numpy"}
ALLOWED = {  # module (or folder) -> third-party top-level names it may import; the standard library always
    "hf_vanilla/configuration_vanilla_transformer.py": TRAVELS,
    "hf_vanilla/modeling_vanilla_transformer.py": TRAVELS,
    "hf_vanilla/loading_vanilla_transformer.py": TRAVELS,
    "hf_vanilla/export_ctranslate2.py": CORE | {"numpy", "ctranslate2"},
    "hf_vanilla/training": TRAINING | {"sklearn"},
    "hf_vanilla": CORE,
    "recipes/serve.py": TRAINING | {"gradio", "PIL"},
    "recipes": TRAINING | {"ctranslate2"},
}
NESTED_ONLY = {"ctranslate2", "sklearn"}  # optional engines: imported inside the functions that use them


def imports(path):
    """(top-level name, imported at module level?) for every absolute import in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".")[0], id(node) in top_level, name


def rule_for(relative):
    for key in sorted(ALLOWED, key=len, reverse=True):
        if relative == key or relative.startswith(key + "/"):
            return ALLOWED[key]
    return None


def test_every_import_follows_the_architecture_table():
    problems, checked = [], 0
    for folder in ("hf_vanilla", "recipes"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            allowed = rule_for(relative)
            for top, module_level, full in imports(path):
                checked += 1
                if top in sys.stdlib_module_names:
                    continue
                if top not in allowed:
                    problems.append(f"{relative} imports {full}")
                elif top in NESTED_ONLY and module_level:
                    problems.append(f"{relative} imports {full} at module level (an optional engine: import it "
                                    f"inside the function that uses it)")
                if top == "recipes":
                    problems.append(f"{relative} imports another recipe ({full})")
                if relative.startswith("hf_vanilla/") and full.startswith("hf_vanilla.training") and \
                        not relative.startswith("hf_vanilla/training"):
                    problems.append(f"{relative}: the core imports the training side ({full})")
    assert checked > 100
    assert problems == [], "\n".join(problems)


def test_the_files_that_travel_import_each_other_relatively():
    for name in ("configuration", "modeling", "loading"):
        path = REPO / "hf_vanilla" / f"{name}_vanilla_transformer.py"
        assert not [full for _, _, full in imports(path) if full.startswith("hf_vanilla")], path


def test_every_module_is_listed_where_a_newcomer_looks():
    """The training package's docstring and docs/architecture.md's parts name every module of the package (a new
    one cannot be added silently)."""
    import re

    package = REPO / "hf_vanilla" / "training"
    listed = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    parts = (REPO / "docs" / "architecture.md").read_text()
    for path in sorted(package.iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("__") or not (path.suffix == ".py" or (path / "__init__.py").is_file()):
            continue
        assert re.search(rf"\b{name}\b", listed), f"hf_vanilla/training/__init__.py does not list {name}"
        assert re.search(rf"\b{name}(\.py|/)", parts), f"docs/architecture.md's parts do not list {name}"
