"""The instructor's wing: release the lab to students and grade their submissions.

The grader treats the lab as data: it reads the source notebook and copies the release
files, and never imports the lab's helper modules into its own process.
"""

import sys

# jsonschema imports rfc3987_syntax, when installed (JupyterLab brings it), only to check
# strings of the "iri" format, and that module compiles a Lark grammar as it is imported:
# 1.5 s of the start of every grader process here (the command, each Dask worker), for a
# format no schema the grader validates uses (nbformat's, nbgrader's). Marked missing in
# the grader's own processes only: a kernel forked from the template takes the mark out
# (unskip_imports), so a student's code sees the packages as installed.
SKIPPED_IMPORTS = ("rfc3987_syntax",)
for _name in SKIPPED_IMPORTS:
    sys.modules.setdefault(_name, None)


def unskip_imports():
    """Take out the marks of SKIPPED_IMPORTS as missing: import them for real from now on."""
    for name in SKIPPED_IMPORTS:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
