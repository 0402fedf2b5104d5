"""Time the HTML cleaner on hostile input: bleach (what we used) against ours (nh3 behind a
linear pass that bounds nesting, grader.run.sanitize), and the rebuild of a notebook of
many tiny Markdown cells.

Usage, from the repository root:

    .venv/bin/python bench/bench_sanitiser.py [--bleach-up-to 12000] [--timeout 120]

The hostile input is nested formatting tags each with its own attribute
(`<b title="t0"><b title="t1">...`), which HTML parsers keep in a list they search on every
new tag (html5lib under bleach and html5ever under nh3 alike): 3,000 tags, 12,000 tags, and
as many as fill 4 MB (a submission's whole output budget). bleach runs in a child process
killed after --timeout seconds, and only up to --bleach-up-to tags (it takes about a minute
for 12,000).
"""

import argparse
import multiprocessing
import time

TAG_COUNTS = (3_000, 12_000)
FOUR_MB = 4 * 1024**2
MARKDOWN_CELLS = 20_000


def nested_tags(count):
    return "".join(f'<b title="t{index}">' for index in range(count)) + "x"


def four_mb_of_nested_tags():
    tag = len('<b title="t000000">')
    return nested_tags(FOUR_MB // tag)[:FOUR_MB]


def with_bleach(html):
    import bleach

    from grader.run.sanitize import ALLOWED_TAGS
    return bleach.clean(html, tags=ALLOWED_TAGS, attributes={"*": ["class", "title"]},
                        strip=True)


def with_ours(html):
    from grader.run.sanitize import clean
    return clean(html)


def seconds(clean, html, timeout):
    """How long `clean(html)` takes in a child process, or None past `timeout`."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(clean, ("warm up",))
        started = time.monotonic()
        pending = pool.apply_async(clean, (html,))
        try:
            pending.get(timeout)
        except multiprocessing.TimeoutError:
            pool.terminate()
            return None
        return time.monotonic() - started


def markdown_cells_seconds():
    from grader.run.rebuild import rebuilt_notebook
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": f"*note* {i}"}
                          for i in range(MARKDOWN_CELLS)], "metadata": {}}
    started = time.monotonic()
    rebuilt_notebook(notebook)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bleach-up-to", type=int, default=12_000)
    parser.add_argument("--timeout", type=float, default=120)
    options = parser.parse_args()
    inputs = [(f"{count:,} nested tags", nested_tags(count)) for count in TAG_COUNTS]
    inputs.append(("4 MB of nested tags", four_mb_of_nested_tags()))
    for label, html in inputs:
        tags = html.count("<b ")
        for name, clean in (("bleach", with_bleach), ("ours", with_ours)):
            if name == "bleach" and tags > options.bleach_up_to:
                print(f"{label} ({len(html):,} bytes), {name}: not run")
                continue
            took = seconds(clean, html, options.timeout)
            shown = f"{took:.2f} s" if took is not None else f"over {options.timeout:g} s"
            print(f"{label} ({len(html):,} bytes), {name}: {shown}", flush=True)
    print(f"{MARKDOWN_CELLS:,} tiny Markdown cells rebuilt (ours): "
          f"{markdown_cells_seconds():.2f} s")


if __name__ == "__main__":
    main()
