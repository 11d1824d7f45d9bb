"""`sublim`: one command with three subcommands, run (one trial), sweep (Ray Tune) and report."""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

from sublim.core.mitigations import MitigationError

SUBCOMMANDS = {
    "run": ("sublim.cli.run", "run one trial in this process (no Ray): the debugging loop"),
    "sweep": ("sublim.cli.sweep", "run a Ray Tune sweep of seeds x arms from a YAML spec"),
    "report": ("sublim.cli.report", "statistics, figures and a report from a results folder"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with the options of `command` only: `sublim report` never imports torch."""
    parser = argparse.ArgumentParser(prog="sublim", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--version", action="version", version=f"sublim {metadata.version('sublim')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,sweep,report}")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    try:
        parser = build_parser(command)
    except MitigationError as error:  # an installed plugin that cannot be used: one line, before any work
        print(f"sublim {command}: error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return module.main(args)
    except (*module.USER_ERRORS, MitigationError) as error:  # bad input: one line, non-zero exit, nothing touched
        parser.exit(2, f"sublim {args.command}: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"sublim {args.command}: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
