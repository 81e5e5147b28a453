"""The training side of hf_vanilla (the `[train]` extra): everything between a corpus and a saved model.

    corpora/      built-in corpora from registry packages, and the user's own files -> DatasetDicts
    tokenizer     the shared byte-level BPE vocabulary
    arguments     the command-line arguments the recipes share (HfArgumentParser dataclasses)
    policies      what every recipe does the same way: one run per output folder, stop on Ctrl-C/SIGTERM with a
                  checkpoint, stop on a NaN loss, the paper's peak learning rate, the main process first
    recipe        the template every Trainer recipe runs through (parse, check, claim, build, train, publish)
    sharding      FSDP2 (torch's fully_shard) where Accelerate does not shard: several CPU processes
    trainer       Trainer's side of those policies (atomic checkpoints, resumable batch order, token budgets)
    translation   tokenising pairs, evaluating BLEU, choosing last vs averaged checkpoints, writing the final folder
    batching      batch orders that depend on (seed, epoch) only, and token-budget batches
    budget        --max_train_minutes: the time budget (the run's total) and the schedule it plans
    pretraining   unlabelled English text and BART's text infilling (the collator)
    hub           --push_to_hub: the final folder, once, at the end
    provenance    the commit, command, machine and date of a published result
    checkpoints   finding and averaging checkpoints
    metrics, plots, cards   sacreBLEU/chrF/accuracy/F1, training curves and heatmaps, model cards (with licences)

Nothing in the model package (configuration, modeling, loading) imports from here.
"""
