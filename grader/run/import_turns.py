"""Turns for the kernel templates of one machine to import their modules (TensorFlow: 3.4
CPU s each).

A batch's workers start their templates at the same moment. On a 2-core machine the two
imports then share the cores with each other and with the start of the workers, the
coordinator and the page renderers, and the first template is ready only about when both
are. Taken in turns, as many at a time as the machine has cores less one (the rest of the
start keeps that one), the first template is ready in about the time one import takes and
the batch's first result comes that much sooner; the CPU spent is the same.

A turn is an flock(2) lock on one of the files `turn-N` in a folder of the grader's cache,
private to its user: a template killed while importing gives its turn back as its process
ends. A template that waits longer than WAIT_SECONDS for a turn (another batch's templates
importing, a hung import) imports without one; one whose folder cannot be used imports at
once. Nothing depends on the turns but how soon a template is ready.

The import itself runs with Python's cyclic garbage collector off (import_preloaded): about
a sixth of TensorFlow's import was spent in collections of a heap that only grows.
"""

import contextlib
import fcntl
import gc
import os
import stat
import sys
import time

FOLDER = "template-import-turns"
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05


def turns_here(cores=None):
    """(folder, count) of this machine's turns for this user: the folder made private
    (mode 700) in the grader's cache; None when there is no cache (GRADER_CACHE_DIR=off)
    or the folder is not this user's alone."""
    folder = private_cache_folder(FOLDER)
    if folder is None:
        return None
    cores = cores or len(os.sched_getaffinity(0))
    return str(folder), max(1, cores - 1)


def private_cache_folder(name):
    """The folder `name` of the grader's cache, made mode 700 if missing (a Path); None when
    there is no cache, or it is not this user's alone: a link, or made by another user, or
    one that others may enter (the kept templates' sockets, the turns live there)."""
    from grader.course.generated import cache_root  # not at import: a worker's start

    try:
        cache = cache_root()
    except (RuntimeError, KeyError):  # no home folder to be found (Path.home)
        return None
    if cache is None:
        return None
    folder = cache / name
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.lstat(folder)
    except OSError:
        return None
    if (not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid()
            or status.st_mode & 0o077):
        return None
    return folder


def import_preloaded(modules):
    """Import `modules` (names) with the cyclic garbage collector off, then freeze what they
    made and turn the collector back on.

    Off: an import of TensorFlow allocates millions of objects that live as long as the
    template, and each allocation threshold crossed ran a collection over them, finding
    nothing to free (measured: 2.75 -> 2.33 s for this lab's modules). Frozen (moved to the
    collector's permanent generation): a kernel forked from the template never walks them
    in its own collections, so it neither spends the time nor writes to the pages it shares
    with the template. Every kernel starts with the collector on, as a fresh Python does."""
    gc.disable()
    try:
        for module in modules:
            __import__(module)
    finally:
        gc.freeze()
        gc.enable()


def hook_preloaded_into_kernel():
    """Do in a kernel forked from the template what its preloaded modules do as they are
    imported into a running IPython kernel, and could not do in the template, where none
    runs: ipywidgets registers its comm targets (without them no widget, an interactive
    figure's included, reaches a page). Called once the kernel's IPython is set up."""
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None:
        widgets.register_comm_target()


@contextlib.contextmanager
def import_turn(turns, wait=WAIT_SECONDS):
    """Hold a turn of `turns` ((folder, count), or None: none) for the block; without
    one when none comes within `wait` seconds."""
    held = _taken(*turns, wait) if turns else None
    try:
        yield held is not None
    finally:
        if held is not None:
            os.close(held)


def _taken(folder, count, wait):
    """A descriptor holding the lock of a free turn, or None."""
    files = []
    try:
        for number in range(count):
            files.append(os.open(os.path.join(folder, f"turn-{number}"),
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
        deadline = time.monotonic() + wait
        while True:
            for descriptor in files:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                files.remove(descriptor)  # kept open: the turn is held while it is
                return descriptor
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_SECONDS)
    except OSError:  # the folder gone, no locks on this file system: no turn
        return None
    finally:
        for descriptor in files:
            os.close(descriptor)
