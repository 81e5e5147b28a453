"""Sharded data parallelism (FSDP2, torch's `fully_shard`) where Accelerate does not do it: several CPU processes.

Accelerate's FSDP runs on GPUs only; given an FSDP config on CPU processes it quietly runs plain data parallelism.
The model is ready for FSDP2 as it is: each layer class in `_no_split_modules` becomes one shard unit, the root
holds the (tied) embeddings. Each process keeps 1/N of every parameter, gradient and Adam moment; a layer's full
weights exist only while it runs. Saving gathers the full weights (a collective: every process calls it) into a
plain model on the main process, so checkpoints and the final folder are ordinary `save_pretrained` folders.
"""

from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor


def shard(model):
    """Shard `model` in place over every process of the run: each `_no_split_modules` layer, then the root."""
    units = set(model._no_split_modules or [])
    for module in model.modules():
        if type(module).__name__ in units:
            fully_shard(module)
    fully_shard(model)
    return model


def is_sharded(model):
    return any(isinstance(parameter, DTensor) for parameter in model.parameters())


def local_fraction(model):
    """The share of the model's parameter values this process holds (1.0 unsharded; about 1/N over N processes)."""
    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())
    return local / sum(p.numel() for p in model.parameters())


def unsharded_copy(model, main_process):
    """The full weights in a plain (unsharded) model of the same class and config, on the main process (None on the
    others). Every process must call it: the weights are gathered from all of them."""
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not main_process:
        return None
    plain_class = next(c for c in type(model).__mro__ if not c.__name__.startswith("FSDP"))
    plain = plain_class(model.config)
    plain.load_state_dict(state)
    plain.generation_config = model.generation_config
    return plain
