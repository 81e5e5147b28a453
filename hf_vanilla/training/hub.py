"""Pushing a run's final folder to the Hugging Face Hub: the chosen (or averaged) model, its tokenizer and card.

Trainer's own `push_to_hub` pushes checkpoints as they are saved and needs the Hub from the first step; the recipes
instead push once, at the end, what they chose and wrote: the output folder without its checkpoints.
"""

import sys
from pathlib import Path

from huggingface_hub import HfApi

# what stays behind: checkpoints, staging folders, the run's own bookkeeping
IGNORED = ["checkpoint-*", "checkpoint-*/**", ".*", ".*/**", "run_settings.json", "runs/**"]


def hub_repo_id(output_dir, hub_model_id=None):
    """The repository to push to: `hub_model_id`, else the output folder's name (as Trainer does)."""
    return hub_model_id or Path(output_dir).resolve().name


def push_final_folder(output_dir, repo_id, token=None, private=None, commit_message="hf_vanilla: final model"):
    """Create the repository if needed and upload the final folder; returns the commit's URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(folder_path=str(output_dir), repo_id=repo_id, repo_type="model",
                             commit_message=commit_message, ignore_patterns=IGNORED)


def take_push_request(training_args):
    """The recipe's push settings, taken out of Trainer's arguments (so Trainer neither needs the Hub at start nor
    pushes checkpoints): a dict for `push_if_requested`, or None without `--push_to_hub`."""
    if not getattr(training_args, "push_to_hub", False):
        return None
    training_args.push_to_hub = False
    return {"repo_id": hub_repo_id(training_args.output_dir, training_args.hub_model_id),
            "token": training_args.hub_token, "private": training_args.hub_private_repo}


def push_if_requested(request, output_dir):
    """Push the final folder when asked; exit status 0, or 1 (the model stays saved locally) when the Hub fails."""
    if request is None:
        return 0
    try:
        url = push_final_folder(output_dir, request["repo_id"], request["token"], request["private"])
    except Exception as error:  # network, authentication, permissions: the Hub client raises many types
        print(f"\nerror: pushing {output_dir} to the Hub as {request['repo_id']} failed ({type(error).__name__}: "
              f"{error}); the model is saved locally: push it later with `hf upload {request['repo_id']} "
              f"{output_dir}`", file=sys.stderr)
        return 1
    print(f"pushed to the Hub: {url}")
    return 0
