"""What a saved folder must hold before transformers reads it: the loading policy of the model classes.

`VanillaTransformerPreTrainedModel.from_pretrained` calls `check_before_loading`: weights come from safetensors only
(unpickling a `.bin` can run code), and a damaged folder is refused with a message naming the file, instead of
loading garbage or falling back to other settings. Standard library only; `save_pretrained` copies this file with
the modeling code (it is imported relatively), so `trust_remote_code` loading applies the same checks.
"""

import json
import math
import os
import struct

# safetensors dtype codes of floating-point tensors: every weight of this model is one
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def check_before_loading(pretrained_model_name_or_path, kwargs):
    """Check `from_pretrained`'s folder and arguments, and make it load safetensors only (updates `kwargs`)."""
    if kwargs.get("use_safetensors") is False:
        raise ValueError("use_safetensors=False is not supported: hf_vanilla loads safetensors weights only, "
                         "because unpickling a .bin file can run code.")
    kwargs["use_safetensors"] = True
    if pretrained_model_name_or_path is not None:
        config = kwargs.get("config")
        check_model_folder(pretrained_model_name_or_path, need_config=config is None or isinstance(config, str))


# a new classification head is what fine-tuning from a translation or pre-trained folder starts with (as HF's heads)
_NEW_HEADS = ("classifier.",)
# weights of another part of this family: a classifier loaded from a seq2seq folder leaves its decoder aside
_OTHER_PARTS = ("model.decoder.", "decoder.", "lm_head.", "final_logits_bias", "classifier.")


def check_loading_info(class_name, info, path):
    """Refuse a load that transformers would complete with weights initialised at random (missing from the folder),
    or that holds tensors no part of this model family has; `info` is `from_pretrained`'s loading info. A missing
    classification head (a new classifier on a pre-trained encoder) and the weights of a part the class has not (a
    classifier's view of a seq2seq folder) are fine."""
    missing = [key for key in info.get("missing_keys") or () if not key.startswith(_NEW_HEADS)]
    unexpected = [key for key in info.get("unexpected_keys") or () if not key.startswith(_OTHER_PARTS)]
    mismatched = [key[0] if isinstance(key, (tuple, list)) else key for key in info.get("mismatched_keys") or ()]
    mismatched = [key for key in mismatched if not key.startswith(_NEW_HEADS)]

    def named(keys):
        return ", ".join(sorted(keys)[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

    problems = ([f"{len(missing)} weights are missing ({named(missing)}) and would be initialised at random"]
                if missing else [])
    if unexpected:
        problems.append(f"it holds {len(unexpected)} tensors this model does not have ({named(unexpected)})")
    problems += [f"{len(mismatched)} weights have other shapes ({named(mismatched)})"] if mismatched else []
    if problems:
        hint = (" It holds a classifier (an encoder without the decoder): load it with "
                "AutoModelForSequenceClassification." if any(k.startswith(("decoder.", "model.decoder."))
                                                             for k in missing) else
                " The weights file is damaged or comes from another model: save the model again or use an intact copy.")
        raise ValueError(f"{class_name} cannot be loaded completely from {path}: " + "; ".join(problems) + "." + hint)


def safetensors_problem(path):
    """Why a safetensors file cannot be intact, or None when it looks whole: not safetensors at all, truncated, or a
    tensor stored as something other than floating point (a changed dtype would load as garbage values).

    The format is an 8-byte header length, a JSON header giving each tensor's dtype and byte range, then the data."""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(8))
            if header_length > size:
                raise ValueError
            header = json.loads(handle.read(header_length))
        tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
        data_end = max((entry["data_offsets"][1] for entry in tensors.values()), default=0)
        dtypes = {name: entry["dtype"] for name, entry in tensors.items()}
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return f"{path} is not a readable safetensors file (damaged header, {size} bytes)"
    if size != 8 + header_length + data_end:
        return f"{path} is truncated or damaged: {size} bytes where its header describes {8 + header_length + data_end}"
    for name, dtype in sorted(dtypes.items()):
        if dtype not in _FLOAT_DTYPES:
            return (f"{path} stores the tensor {name!r} as {dtype}, but every weight of this model is floating point "
                    f"({', '.join(sorted(_FLOAT_DTYPES))}): the file was damaged or written by other code")
    return None


def _looks_local(path):
    parent = os.path.dirname(path.rstrip("/"))
    return os.path.isabs(path) or path.startswith((".", "~")) or bool(parent and os.path.isdir(parent))


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): the folder is damaged; save the model again or "
                         f"restore the file.") from error
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error.strerror}): {what}.") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object: the folder is damaged.")
    return data


def check_model_folder(path, model_type="vanilla_transformer", need_config=True):
    """Raise a clear error unless `path` is a saved model folder that transformers can load safely.

    Checks that the folder exists; that config.json (and generation_config.json, when present) is readable JSON, of
    `model_type` when given; and that the weights are whole floating-point safetensors files. Pickle weights
    (`pytorch_model.bin`) are refused. A path that does not look local (a hub id such as "org/name") is left to
    transformers.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        if _looks_local(path):
            raise FileNotFoundError(f"No model folder at {path}: give a folder written by save_pretrained (the output "
                                    f"folder of a training run).")
        return
    config_file = os.path.join(path, "config.json")
    if need_config:
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"{path} has no config.json, so it is not a saved model folder: give a folder "
                                    f"written by save_pretrained.")
        config = _read_json(config_file, "restore it from a copy")
        if model_type and config.get("model_type") != model_type:
            raise ValueError(f"{config_file} describes a {config.get('model_type')!r} model, not a {model_type!r} one: "
                             f"load it with its own class or AutoModel, or give a {model_type} folder.")
    generation_file = os.path.join(path, "generation_config.json")
    if os.path.exists(generation_file):  # decoding settings: unreadable must not mean "greedy, silently"
        settings = _read_json(generation_file, "fix its permissions, or delete it to decode with the default settings")
        vocab_size = _read_json(config_file, "restore it from a copy").get("vocab_size") \
            if os.path.isfile(config_file) else None
        check_generation_settings(settings, generation_file, vocab_size)
    for name in _weight_files(path):
        weights = os.path.join(path, name)
        if not os.path.isfile(weights):
            pickled = sorted(f for f in os.listdir(path) if f.endswith(_PICKLE_SUFFIXES))
            raise FileNotFoundError(
                f"{path} has no {name}" + (f", only pickle weights ({', '.join(pickled)}), which hf_vanilla "
                                           "does not load because unpickling can run code; convert them with "
                                           "safetensors in a trusted environment" if pickled else "") + ".")
        problem = safetensors_problem(weights)
        if problem:
            raise ValueError(problem + ": save the model again or use an intact copy.")


# the values a generation_config.json may hold (transformers itself checks few: num_beams -1 or "four" load, then fail
# deep inside generate): integers with their least value, numbers with their range, token ids within the vocabulary
_GENERATION_INTEGERS = {"num_beams": 1, "num_beam_groups": 1, "num_return_sequences": 1, "max_length": 1,
                        "max_new_tokens": 1, "min_length": 0, "min_new_tokens": 0, "no_repeat_ngram_size": 0,
                        "top_k": 0}
_GENERATION_NUMBERS = {"length_penalty": (-math.inf, math.inf, "a finite number"),
                       "temperature": (0.0, math.inf, "a number above 0"),
                       "top_p": (0.0, 1.0, "a number above 0, at most 1"),
                       "repetition_penalty": (0.0, math.inf, "a number above 0"),
                       "diversity_penalty": (0.0, math.inf, "a number of 0 or more")}
_GENERATION_TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "forced_bos_token_id",
                      "forced_eos_token_id")


def generation_problems(settings, vocab_size=None):
    """What is wrong with the values of a generation_config.json (a dict), one line per setting; [] if nothing."""
    def number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    problems = []
    for key, least in _GENERATION_INTEGERS.items():
        value = settings.get(key)
        if value is not None and not (number(value) and value == int(value) and value >= least):
            problems.append(f"{key} {value!r}: must be a whole number, at least {least}")
    for key, (low, high, what) in _GENERATION_NUMBERS.items():
        value = settings.get(key)
        if value is not None and not (number(value) and math.isfinite(value) and
                                      (low < value <= high if key != "diversity_penalty" else value >= 0)):
            problems.append(f"{key} {value!r}: must be {what}")
    for key in _GENERATION_TOKENS:
        value = settings.get(key)
        for token in (value if isinstance(value, list) else [] if value is None else [value]):
            if not (number(token) and token == int(token) and 0 <= token < (vocab_size or math.inf)):
                problems.append(f"{key} {value!r}: must be a token id" +
                                (f" from 0 to {vocab_size - 1} (the vocabulary)" if vocab_size else " of 0 or more"))
                break
    early = settings.get("early_stopping")
    if early is not None and not isinstance(early, bool) and early != "never":
        problems.append(f"early_stopping {early!r}: must be true, false or \"never\"")
    beams, returned = settings.get("num_beams"), settings.get("num_return_sequences")
    if not problems and beams and returned and returned > beams:
        problems.append(f"num_return_sequences {returned} is more than num_beams {beams}")
    return problems


def check_generation_settings(settings, path, vocab_size=None):
    problems = generation_problems(settings, vocab_size)
    if problems:
        raise ValueError(f"{path} holds settings generate cannot use: " + "; ".join(problems)
                         + ". Fix them, or delete the file to decode with the default settings.")


def _weight_files(path):
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        return sorted(set(_read_json(index, "restore it from a copy")["weight_map"].values()))
    return ["model.safetensors"]
