"""What every command-line recipe does with its arguments and errors (core install only)."""

import sys


def parse_arguments(parser, argv):
    """HfArgumentParser's dataclasses, with the arguments' own validation errors reported as usage errors."""
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        parser.error(str(error))


def report(error, argument=None):
    """Print a library error the way a command line reports usage errors, naming the flag at fault (the error's
    `argument`, else `argument`); return exit status 2."""
    flag = getattr(error, "argument", None) or argument
    print(f"error: {'--' + flag + ': ' if flag else ''}{error}", file=sys.stderr)
    return 2
