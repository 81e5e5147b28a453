"""Training curves and attention heatmaps (matplotlib, no screen needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(log_history, path, metric="eval_bleu"):
    """Loss, learning rate and `metric` over steps, from `Trainer.state.log_history`-style records."""
    series = {"loss": [], "learning_rate": [], metric: []}
    for record in log_history:
        for key in series:
            if key in record and "step" in record:
                series[key].append((record["step"], record[key]))
    titles = {"loss": "training loss", "learning_rate": "learning rate", metric: metric.replace("eval_", "validation ")}
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for axis, (key, points) in zip(axes, series.items()):
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None)
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes)
        axis.set_title(titles[key])
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_attention(weights, source_tokens, target_tokens, path, title="cross-attention"):
    """A heatmap of one attention matrix (target tokens down, source tokens across)."""
    figure, axis = plt.subplots(figsize=(max(4, 0.45 * len(source_tokens) + 2), max(3, 0.4 * len(target_tokens) + 1.5)))
    image = axis.imshow(weights, cmap="viridis", aspect="auto", vmin=0)
    axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(len(target_tokens)), target_tokens, fontsize=8)
    axis.set_xlabel("source")
    axis.set_ylabel("output")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
