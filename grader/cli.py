"""`python -m grader`: a thin command line over the grader's plain functions."""

import argparse
import sys

from grader.course import NbgraderError
from grader.release import ReleaseExistsError, release


def _release(args):
    notebook = release(out=args.out, force=args.force)
    print(f"Released the student version: {notebook}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    release_parser = commands.add_parser(
        "release", help="write the student version of the lab (solutions and hidden tests removed)")
    release_parser.add_argument("--out", required=True, help="folder to write it to")
    release_parser.add_argument("--force", action="store_true",
                                help="replace an existing notebook in --out")
    release_parser.set_defaults(run=_release)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ReleaseExistsError, NbgraderError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
