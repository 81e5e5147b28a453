"""A wall-clock budget for training: stop in time on any machine, with the schedule planned for the steps that fit.

A fixed step count keeps no time promise on machines of different speed. With a budget, the first steps are timed,
the number of steps that fit is estimated from them, and the warm-up is shortened to a quarter of that when the
requested one would not finish; training stops (with a checkpoint) when the budget is spent, and the recipe then
averages, evaluates and saves as usual. The budget is the run's total: each checkpoint records the training time
spent so far (Trainer keeps it in trainer_state.json), and a resumed run gets only what is left.
"""

import logging
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

logger = logging.getLogger(__name__)

# the plan is made from the speed of the steps after the first MEASURED_STEPS (which include start-up costs and, with
# length-grouped batches, the longest batch), measured over MEASURED_SHARE of the budget
MEASURED_STEPS = 10
MEASURED_SHARE = 0.03
WARMUP_SHARE = 0.25  # at most this share of the steps that fit is spent warming up


class InverseSqrtSchedule:
    """The paper's schedule as a multiplier of the peak lr: step / warmup, then sqrt(warmup / step).

    A callable object (not a function), so `LambdaLR.state_dict` saves its warm-up with the checkpoint and a
    resumed run goes on with the planned one."""

    def __init__(self, warmup_steps):
        self.warmup_steps = max(1, int(warmup_steps))

    def __call__(self, step):
        if step < self.warmup_steps:
            return step / self.warmup_steps
        return (self.warmup_steps / max(step, 1)) ** 0.5


class TimeBudget(TrainerCallback, ExportableState):
    """Stops training once `minutes` of training have passed in all (saving a checkpoint at that step), and after the
    first steps shortens the warm-up of `schedule` (an InverseSqrtSchedule, or None) to fit the steps the budget
    allows. `spent_before` is the training time of the run before a resume, read from the checkpoint's state."""

    def __init__(self, minutes, schedule=None, progress=None):
        if not (isinstance(minutes, (int, float)) and minutes > 0 and minutes == minutes):
            raise ValueError(f"max_train_minutes must be a positive number, got {minutes!r}.")
        self.seconds, self.schedule = minutes * 60.0, schedule
        self.start = self.first_step = self.timed_from = None  # timed_from: (time, step) where the speed is measured
        self.expected_steps = None
        self.spent_before = 0.0
        self.progress = progress  # Trainer's ProgressCallback: its bar shows the steps that fit and the time left

    def spent(self):
        """Seconds of this run's training so far, before and since a resume."""
        return self.spent_before + (time.monotonic() - self.start if self.start is not None else 0.0)

    def state(self) -> dict:  # saved by Trainer in each checkpoint's trainer_state.json
        return {"args": {"minutes": self.seconds / 60.0}, "attributes": {"spent_before": self.spent()}}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.first_step = time.monotonic(), state.global_step
        saved = (state.stateful_callbacks or {}).get(type(self).__name__)
        if saved and state.global_step:  # a resumed run: the budget is what the run had left
            saved = saved[0] if isinstance(saved, list) else saved
            self.spent_before = float(saved.get("attributes", {}).get("spent_before", 0.0))
            logger.warning("time budget: %.1f of %.1f minutes were spent before this resume; %.1f left",
                           self.spent_before / 60, self.seconds / 60, max(0.0, self.seconds - self.spent_before) / 60)
            self.expected_steps = state.global_step  # the warm-up was planned (and saved) before the resume
            if self.spent_before >= self.seconds:  # nothing left: Trainer stops at the end of the first step
                control.should_training_stop = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        elapsed = self.spent_before + now - self.start
        if self.timed_from is None and state.global_step - self.first_step >= MEASURED_STEPS:
            self.timed_from = (now, state.global_step)
        elif self.expected_steps is None and self.timed_from and now - self.timed_from[0] >= MEASURED_SHARE * \
                self.seconds:
            self.expected_steps = self._steps_that_fit(now, state.global_step, elapsed)
            self._plan_warmup()
            logger.info("time budget: about %d steps fit in %.1f minutes", self.expected_steps, self.seconds / 60)
            self._show(state, elapsed, total=self.expected_steps)
        elif state.global_step % 10 == 0:  # after the plan, the bar's total follows the machine's speed that day
            planned = self.expected_steps is not None and self.timed_from is not None
            self._show(state, elapsed, total=self._steps_that_fit(now, state.global_step, elapsed) if planned else None)
        if elapsed >= self.seconds:
            logger.info("time budget of %.1f minutes spent at step %d: stopping", self.seconds / 60,
                        state.global_step)
            control.should_save = True
            control.should_training_stop = True
        return control

    def _steps_that_fit(self, now, step, elapsed):
        """`step` plus what the speed since timing began (saves included) fits in the time left. Planned once for the
        warm-up (a schedule changed mid-run would change the run), then re-estimated for the bar only."""
        rate = (step - self.timed_from[1]) / max(now - self.timed_from[0], 1e-9)  # steps per second
        return step + int(rate * max(0.0, self.seconds - elapsed))

    def _show(self, state, elapsed, total=None):
        """The progress bar counts to the steps that fit (not to --max_steps) and shows the minutes left."""
        bar = getattr(self.progress, "training_bar", None)
        if bar is None:
            return
        if total:
            bar.total = max(total, state.global_step)
        bar.set_postfix_str(f"{max(0.0, self.seconds - elapsed) / 60:.1f} min left of the budget", refresh=False)

    def _plan_warmup(self):
        if self.schedule is None:
            return
        warmup = min(self.schedule.warmup_steps, max(1, int(WARMUP_SHARE * self.expected_steps)))
        if warmup < self.schedule.warmup_steps:
            logger.warning("time budget: about %d steps fit; warm-up shortened from %d to %d steps",
                           self.expected_steps, self.schedule.warmup_steps, warmup)
        self.schedule.warmup_steps = warmup
