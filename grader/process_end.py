"""How the command line's process ends once a command has answered: at once, without the
interpreter's teardown of every module, which ran the cyclic collector over the whole heap
again and again (0.3 s after a check, 0.7-1.0 s after a batch: bench/README.md)."""

import atexit
import contextlib
import os
import sys
import threading


def alone():
    """Whether no thread but the main one and daemons is left (one at work is waited for
    by the ordinary end, which is then kept)."""
    main_thread = threading.main_thread()
    return all(thread.daemon for thread in threading.enumerate() if thread is not main_thread)


def exit_now(code):
    """End the process with `code` without the interpreter's teardown of every module. The
    atexit functions run and the streams are flushed first; the command left no thread at
    work (its kernels and workers are gone, its files written and closed)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
