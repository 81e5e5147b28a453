"""Checkpoint averaging (the paper's final models average the last 5 checkpoints) and finding checkpoints."""

import re
from pathlib import Path

import torch
from safetensors.torch import load_file

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def weights_bytes(model):
    """The bytes the model's parameters take as saved (what a checkpoint's weights, or one Adam moment, need)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def list_checkpoints(output_dir):
    """The `checkpoint-<step>` folders under `output_dir`, oldest first."""
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(folders, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def average_checkpoints(folders):
    """The element-wise mean of the `model.safetensors` weights in `folders` (computed in float64)."""
    folders = list(folders)
    if not folders:
        raise ValueError("No checkpoints to average.")
    total = None
    for folder in folders:
        path = Path(folder) / "model.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: every checkpoint to average needs its safetensors file.")
        weights = load_file(str(path))
        if total is None:
            total = {name: tensor.to(torch.float64) for name, tensor in weights.items()}
            dtypes = {name: tensor.dtype for name, tensor in weights.items()}
        elif weights.keys() != total.keys():
            raise ValueError(f"{path} holds other parameters than {folders[0]}: they are not the same model.")
        else:
            for name, tensor in weights.items():
                total[name] += tensor.to(torch.float64)
    return {name: (tensor / len(folders)).to(dtypes[name]) for name, tensor in total.items()}
