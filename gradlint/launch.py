"""The `gradlint` command's entry point: Ctrl-C while the command line is still loading
(click, libcst, the rules) ends the run the way an interrupt always does, exit 130 and one
line, rather than a traceback from whichever import it landed in."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # as gradlint.cli, which cannot be imported before the handler is up


def main() -> None:
    try:
        from gradlint.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("gradlint: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    run()
