"""Runnable jobs: `python -m recipes.<name>`."""
