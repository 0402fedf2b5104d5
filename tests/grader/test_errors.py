"""One error contract: every error that is ours to explain is a GraderError, which the
command line prints on one line, exiting non-zero; the others are listed as internal."""

import importlib
import pkgutil

import pytest

import grader
from grader import cli
from grader.errors import GraderError

# Exceptions that never reach the command line, and why: each becomes a student's row, a
# sandbox level, or is handled where it is raised.
INTERNAL = {
    "grader.intake.notebook_file.NotGradable": "a submission's `invalid` row",
    "grader.judge.text.Unreadable": "data the capture cannot have made: an error verdict",
    # lab_rules.py, the students' file, as grader.labs.c2_w2.rules loads it
    "grader.labs.c2_w2.lab_rules.Unreadable": "the lab's rules' word for the same",
    "grader.pipeline.BatchInterrupted": "Ctrl-C: the command line's one line and exit 130",
    "grader.publish.page_process.PageTimeout": "a feedback page too slow: the student's note",
    "grader.run.cgroup_groups.CgroupError": "cgroups missing: a lower sandbox level, said",
    "grader.run.execution.KernelUnresponsive": "a kernel that stopped answering: a timeout",
    "grader.run.isolation.KernelSetupError": "a kernel that could not be confined: its row",
    "grader.run.kernel_uids.NoFreeRange": "no free user ids: that kernel's set-up fails",
    "grader.run.syscalls.PolicyError": "no system call policy: the kernel's set-up fails",
}


def _subclasses(cls):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _grader_exceptions():
    for module in pkgutil.walk_packages(grader.__path__, "grader."):
        if module.name != "grader.__main__":  # it runs the command line
            importlib.import_module(module.name)
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in _subclasses(BaseException)
            if cls.__module__.split(".")[0] == "grader"}


EXCEPTIONS = _grader_exceptions()
OURS_TO_EXPLAIN = sorted(name for name, cls in EXCEPTIONS.items() if issubclass(cls, GraderError))


def test_every_exception_of_the_grader_is_a_grader_error_or_listed_as_internal():
    loose = sorted(name for name, cls in EXCEPTIONS.items()
                   if not issubclass(cls, GraderError) and name not in INTERNAL)
    assert not loose, f"derive these from grader.errors.GraderError or list them: {loose}"
    assert not set(INTERNAL) - set(EXCEPTIONS), "INTERNAL names an exception that is gone"


def test_the_errors_that_are_ours_to_explain_include_the_release_check():
    assert "grader.course.release.ReleaseCheckError" in OURS_TO_EXPLAIN
    assert len(OURS_TO_EXPLAIN) >= 12


@pytest.mark.parametrize("name", OURS_TO_EXPLAIN)
def test_a_grader_error_under_the_command_line_is_one_line_and_a_failure(name, monkeypatch,
                                                                        capsys):
    def fail(args, lab):
        raise EXCEPTIONS[name]("the release check failed:\n  a hidden line is visible")

    monkeypatch.setattr(cli, "_report", fail)
    assert cli.main(["report", "out"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ("error: the release check failed: a hidden line is visible\n")
    assert captured.out == ""
