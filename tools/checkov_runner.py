"""checkov's own command line, imported before it is told what to scan.

Runs under checkov's virtualenv, started by `tools.validate.CheckovScan`
before the Pulumi program runs: importing checkov takes about 3 s of its
4.5 s, and on two cores that import overlaps the program instead of
following it. It then reads one line from stdin, a JSON list of checkov's
command-line arguments, and runs checkov exactly as the `checkov` script
would with those arguments. An empty stdin (the caller died before it had
anything to scan) exits 0 without scanning.

Stdlib and checkov only: this file never imports the project.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings

from checkov.main import Checkov

# checkov sets the root logger to DEBUG and keeps every debug line in memory, for the log upload of its
# `--support` flag, which this project never uses: on 400 manifests that is 1 s of a 2.5 s scan. Its console
# handler stays at LOG_LEVEL, set by the caller.
logging.getLogger().setLevel(logging.WARNING)


def main() -> int:
    """Wait for the arguments, then run checkov with them; checkov's exit status."""
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    argv: list[str] = json.loads(line)
    with warnings.catch_warnings():  # as checkov's own `checkov` script does
        warnings.simplefilter("ignore", category=SyntaxWarning)
        return int(Checkov(argv).run() or 0)


if __name__ == "__main__":
    sys.exit(main())
