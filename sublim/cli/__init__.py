"""`sublim`: one command with three subcommands, run (one trial), sweep (Ray Tune) and report."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from importlib import metadata
from typing import NoReturn

from sublim.core.suggest import did_you_mean

from sublim.core.files import os_error_line
from sublim.core.mitigations import MitigationError
from sublim.core.text import one_line

SUBCOMMANDS = {
    "run": ("sublim.cli.run", "run one trial in this process (no Ray): the debugging loop"),
    "sweep": ("sublim.cli.sweep", "run a Ray Tune sweep of seeds x arms from a YAML spec"),
    "report": ("sublim.cli.report", "statistics, figures and a report from a results folder"),
}
EXAMPLES = """examples:
  sublim run --seed 0                     one trial, no mitigation, in a few seconds to a minute
  sublim sweep smoke --dry-run            a shipped spec's grid and predicted time, nothing run
  sublim sweep smoke                      a small sweep with Ray Tune, then the command to report on it
  sublim report results/smoke             statistics, figures and a report of a results folder
  sublim COMMAND --help                   a command's options, with examples"""


class Parser(argparse.ArgumentParser):
    """A usage error is one line, naming a close option or choice when there is one (`--help` has the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self.suggestion(message)}; see {self.prog} --help\n")

    def suggestion(self, message: str) -> str:
        choice = re.search(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
        if choice:
            return did_you_mean(choice[1], re.findall(r"[^', ]+", choice[2]))
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        options = [option for action in self._actions for option in action.option_strings]
        words = unknown[1].split() if unknown else []
        return next((hint for word in words if word.startswith("-")
                     for hint in [did_you_mean(word.split("=")[0], options)] if hint), "")


def build_parser(command: str | None) -> tuple[Parser, Parser | None]:
    """The parser, with the options of `command` only (`sublim report` never imports torch), and that command's."""
    parser = Parser(prog="sublim", description=__doc__.split(":", 1)[1].strip(), epilog=EXAMPLES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sublim {metadata.version('sublim')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,sweep,report}")
    chosen = None
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == command:
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            importlib.import_module(module).add_arguments(sub)
            chosen = sub
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser, command = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
    except MitigationError as error:  # an installed plugin that cannot be used: one line, before any work
        print(f"sublim: error: {error}", file=sys.stderr)
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # told by the command's parser, which knows its options
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return module.main(args)
    except (*module.USER_ERRORS, MitigationError) as error:  # bad input: one line, non-zero exit, nothing touched
        parser.exit(2, f"sublim {args.command}: error: {one_line(error)}\n")
    except OSError as error:  # a path that cannot be used (name too long, read-only, ...): written files are whole
        parser.exit(2, f"sublim {args.command}: error: {os_error_line(error)}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"sublim {args.command}: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
