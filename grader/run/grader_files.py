"""Where the grader's own files lie among the directories a confined kernel sees.

The kernel's root holds the Python prefixes read-only, so however the grader is installed
its files may be there: a regular install (`pip install .`) puts the package, hidden tests
and capture included, in site-packages beside its metadata; an editable one (`pip install
-e .`) puts a finder module and a .pth file naming the checkout. Each of those found under
a directory the kernel sees is covered in its root (grader.run.isolation.confine): an
empty read-only tmpfs over a directory, /dev/null over a file. So they are not merely
unimportable but unreadable.
"""

import os
import site
import sys
from pathlib import Path

import grader

DISTRIBUTION = "c2w2-grader"  # pyproject.toml's [project] name
PACKAGE_DIR = str(Path(grader.__file__).resolve().parent)


def _normalized(name):
    """`name` with its dots and dashes as underscores, each kept (`__editable__.x` has
    three underscores, as the finder's name has)."""
    return name.lower().replace("-", "_").replace(".", "_")


def is_install_metadata(name, distribution=DISTRIBUTION):
    """Whether the file or folder `name` of a site directory belongs to `distribution`'s
    install: its .dist-info or .egg-info, an editable install's finder (and its cached
    byte code) and .pth, an old-style .egg-link."""
    project = _normalized(distribution)
    base = _normalized(name)
    return (base.startswith(f"{project}_") and name.endswith((".dist-info", ".egg-info"))
            or base.startswith(f"__editable___{project}_")
            or base == f"{project}_egg_link")


def grader_files(search_dirs, package_dir=PACKAGE_DIR, distribution=DISTRIBUTION):
    """The real paths, sorted, of the grader's package and install files: `package_dir`
    itself and, in each of `search_dirs` (site directories, sys.path's entries) and their
    __pycache__, any folder that is the package and any install metadata of
    `distribution`."""
    package = os.path.realpath(package_dir)
    found = {package}
    for directory in search_dirs:
        for folder in (directory, os.path.join(directory, "__pycache__")):
            for entry in _entries(folder):
                path = os.path.join(folder, entry)
                if is_install_metadata(entry, distribution) or \
                        os.path.realpath(path) == package:
                    found.add(os.path.realpath(path))
    return sorted(found)


def _entries(folder):
    try:
        return os.listdir(folder)
    except OSError:  # not a directory, or gone
        return []


def search_dirs():
    """Where this Python finds packages and their metadata: its site directories and
    sys.path's entries, as they are now (before the template drops the grader's)."""
    found = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    return list(dict.fromkeys(path for path in found if path and os.path.isdir(path)))


def forget_the_grader(grader_root):
    """Leave the kernel (this process, as it becomes one) no way to import the grader:
    neither its folder on the path nor the finder an editable install (`pip install -e .`)
    puts before it."""
    sys.path[:] = [path for path in sys.path if path not in ("", "/", grader_root)]
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if not _from_editable_install(finder)]
    sys.path_hooks[:] = [hook for hook in sys.path_hooks if not _from_editable_install(hook)]
    sys.path_importer_cache.clear()


def _from_editable_install(hook):
    module = getattr(hook, "__module__", "") or getattr(type(hook), "__module__", "")
    return module.startswith("__editable__")


def python_paths():
    """Where this Python's files are: the confined kernel sees these read-only."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    paths |= {os.path.realpath(path) for path in paths}
    return sorted(path for path in paths if os.path.isdir(path))
