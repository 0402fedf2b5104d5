"""Each exercise's share of a submission's time, so that a cell that never ends costs only
its own exercise, whatever the limits.

The notebook is cut into one segment per exercise: the cells up to and including its test
cell, then its capture. Segment k must be done by start + k/n of the submission's time
(n exercises); time one segment leaves unused goes to the next. Within a segment each cell
gets at most the per-cell timeout and never more than what is left before the segment's
end minus its capture's reserve, so the capture always runs. A cell for which no time is
left is not run (the notebook says so). The cells after the last test cell share what is
left of the whole.
"""

import time

MIN_CELL_SECONDS = 0.5  # a cell that cannot get this much is left out
MIN_CAPTURE_SECONDS = 2.0


class TimeBudget:
    def __init__(self, *, timeout, cell_timeout, exercises, clock=time.monotonic):
        self.timeout = float(timeout)
        self.cell_timeout = float(cell_timeout)
        self.exercises = max(1, int(exercises))
        self.clock = clock
        self.start = clock()
        share = self.timeout / self.exercises
        self.capture_reserve = min(self.cell_timeout, max(MIN_CAPTURE_SECONDS, share / 4))

    def restart(self):
        """Count from now (the kernel is ready)."""
        self.start = self.clock()

    def segment_end(self, segment):
        """When segment `segment` (0-based; `exercises` is the tail) must be done."""
        if segment >= self.exercises:
            return self.start + self.timeout
        return self.start + self.timeout * (segment + 1) / self.exercises

    def cell_seconds(self, segment):
        """The timeout of the next cell of `segment`, or None if it must be left out."""
        reserve = self.capture_reserve if segment < self.exercises else 0.0
        left = self.segment_end(segment) - reserve - self.clock()
        if left < MIN_CELL_SECONDS:
            return None
        return min(self.cell_timeout, left)

    def capture_seconds(self, segment):
        """The timeout of the capture ending `segment`: at least its reserve."""
        left = self.segment_end(segment) - self.clock()
        return min(self.cell_timeout, max(self.capture_reserve, left))
