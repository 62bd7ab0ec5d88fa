# The one way every host tool's command line ends: its status, or one line on stderr.
#
#   class ReleaseError(cli.ToolError): ...
#   if __name__ == "__main__":
#       sys.exit(cli.run("release", main))
#
# A ToolError raised anywhere below main() prints `NAME: message` on stderr and exits with the
# error's status (1 unless its class says otherwise); Ctrl-C exits 130, as a shell reports it,
# without a traceback. Errors of the libraries a tool uses (boards, nginx, OSError ...) are turned
# into a ToolError where the tool calls them, so that this is the only place that prints them.

import argparse
import sys


class ToolError(Exception):
    """A failure a tool explains in one line: `NAME: message` on stderr, exit status `status`."""

    status = 1


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors end like the tool's other errors: the usage, then
    `NAME: message`, exit status 1 (argparse's own is `PROG: error: message`, status 2)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise ToolError(message)


def run(name, main, argv=None):
    """main(argv) -> its exit status; a ToolError -> `name: message` on stderr and its status."""
    try:
        return main(argv)
    except ToolError as exc:
        print("%s: %s" % (name, exc), file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
