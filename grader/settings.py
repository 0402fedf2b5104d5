"""Every setting a grading run has, with its default, written once; and below them the
engine's tunables, the timings and retries no run chooses, in one place too.

The command line builds its options from the settings' fields (their metadata holds the
flag's help), the library call `grader.pipeline.autograde(...)` takes them as keyword
arguments, and `Limits` travels to the workers with each submission. The tunables are
constants that the modules using them import from here (grader.run.cluster,
grader.run.warm_kernels, grader.run.execution).
"""

from dataclasses import dataclass, field, fields


def _setting(default, help_text):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Decided by the coordinator, enforced by the worker that
    runs it, as far as that machine allows."""

    timeout: int = _setting(600, "seconds one submission may take; each exercise gets its "
                                 "share, so a cell that never ends costs only its exercise")
    cell_timeout: int = _setting(60, "seconds one cell may take before it is interrupted")
    memory_mb: int = _setting(4096, "memory one submission's kernel may use, with all it "
                                    "starts")
    disk_mb: int = _setting(512, "size of a kernel's private lab folder and of its /tmp, each")
    max_processes: int = _setting(1024, "processes and threads one kernel may run at once")
    output_mb: int = _setting(4, "output one submission may print, in all its cells "
                                 "together (MB); the rest is dropped with a note")
    # A private root, no network, an own user id, a cgroup: as far as the machine running
    # the kernel allows (decided there, not by the coordinator, which may be another one).
    # Off only on request (--no-sandbox), e.g. to debug a submission.
    confine: bool = _setting(True, "run each kernel in the sandbox")

    @property
    def output_bytes(self):
        return self.output_mb * 10**6

    @classmethod
    def options(cls):
        """(name, default, help) of each numeric limit, for the command line."""
        return [(item.name, item.default, item.metadata["help"]) for item in fields(cls)
                if item.name != "confine"]


# ---------------------------------------------------------------- tunables

# grader.run.warm_kernels. A kernel template that used no CPU for STARTUP_SECONDS is hung;
# one still importing (TensorFlow: seconds, minutes of wall time on a busy machine) is
# waited for, up to STARTUP_WALL_SECONDS.
STARTUP_SECONDS = 180
STARTUP_WALL_SECONDS = 900
SETUP_SECONDS = 60  # a forked kernel's set-up (cgroup, private root, copies of the lab)
REPLY_MARGIN_SECONDS = 15  # the worker's wait for a reply, beyond the template's own limit

# grader.run.execution
RESPONSIVE_SECONDS = 5  # after an interrupt, for the kernel to show it is listening again
KILL_GRACE_SECONDS = 10  # past the time limit, for a cell that ignores its interrupts
RECONNECT_SECONDS = 10  # for a kernel to answer on new sockets, after a frame over the cap

# grader.run.cluster: a submission that FATAL_UNFINISHED_RUNS workers died grading is not
# tried again; one that only waited on dying workers is submitted up to ATTEMPTS times.
FATAL_UNFINISHED_RUNS = 2
ATTEMPTS = 5
CONNECT_SECONDS = 30  # to reach the scheduler, then again for a first worker to join
FORGET_SECONDS = 5  # for the scheduler to forget a batch's support files before workers stop

# grader.publish.publisher. Results waiting to be published, at most: beyond them the
# coordinator takes no more results (nor sends more work) until one is saved, so that a
# cluster grading faster than one publisher writes never piles the class's notebooks up in
# the coordinator's memory.
PUBLISH_BACKLOG = 16
# Gradebook rows written in one transaction (grader.publish.publisher): at most this many,
# and none waits longer than GRADEBOOK_SECONDS; a transaction per student cost more than
# writing its rows.
GRADEBOOK_BATCH = 64
GRADEBOOK_SECONDS = 2.0
