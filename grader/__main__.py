from grader.cli import main

raise SystemExit(main(exit_at_once=True))
