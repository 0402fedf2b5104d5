"""The grader's log: what went wrong on the grader's side, with tracebacks, for instructors.

    OUT/grader.log    every grader-side traceback of every batch graded into OUT

On the terminal, warnings and errors show as one line each; their tracebacks only with
`-v` (`-q` leaves errors only). A student never sees any of it: tracebacks of ours go here,
a sentence goes into the student's row.
"""

import contextlib
import logging
from pathlib import Path

LOG_FILE = "grader.log"
LOGGER = "grader"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Terminal(logging.Formatter):
    """One line per message; the traceback too when verbose."""

    def __init__(self, verbose):
        super().__init__("%(levelname)s: %(message)s")
        self.verbose = verbose

    def format(self, record):
        if self.verbose:
            return super().format(record)
        shown = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(shown)


def configure(verbosity=0, stream=None):
    """Log the grader's messages to the terminal: -1 quiet (errors), 0 warnings, 1 info with
    tracebacks, 2 debug."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    for handler in [h for h in logger.handlers if getattr(h, "_grader_terminal", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler._grader_terminal = True
    handler.setLevel({-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        verbosity, logging.DEBUG if verbosity > 1 else logging.ERROR))
    handler.setFormatter(_Terminal(verbose=verbosity > 0))
    logger.addHandler(handler)
    logger.propagate = False


@contextlib.contextmanager
def batch_log(out):
    """Append everything the grader logs meanwhile to OUT/grader.log."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    path = Path(out) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8", errors="replace")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
