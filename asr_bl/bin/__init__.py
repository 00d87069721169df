"""The console scripts' shared convention (every ``asr_bl/bin/<tool>.py`` uses it).

* ``get_parser()`` builds the tool's parser; ``main(argv=None) -> int`` is the entry point and
  calls :func:`run_tool`.
* Bad input or usage: one line ``asr_bl-<tool>: error: <file>: <what is wrong>; <how to fix>`` on
  stderr and exit code 2 (raise :class:`UsageError`); argparse's own usage errors exit 2 too.
  Other failures: the same one line and exit code 1; the traceback only with ``--verbose``.
* One name per flag across tools: ``--force`` (redo finished work), ``--num-jobs`` (worker
  processes, default :data:`DEFAULT_NUM_JOBS`), ``--verbose`` (debug logging, tracebacks).
* Logging (the tools' "skipping ..." / "redoing ...: <reason>" lines among them) goes to stdout,
  where the recipe's logs collect it; errors go to stderr.
"""
import argparse
import logging
import os
import sys
import traceback
from typing import Callable, List, Optional, Tuple, Type

__all__ = ["DEFAULT_NUM_JOBS", "UsageError", "add_force", "add_num_jobs", "add_verbose", "run_tool",
           "setup_logging"]

DEFAULT_NUM_JOBS = min(2, os.cpu_count() or 1)
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UsageError(Exception):
    """Bad input or usage (a missing file, a wrong option value): the tool exits with code 2."""


def add_force(parser: argparse.ArgumentParser, what: str = "its outputs are complete and up to date") -> None:
    parser.add_argument("--force", action="store_true", help=f"redo the work even if {what}")


def add_num_jobs(parser: argparse.ArgumentParser, default: int = DEFAULT_NUM_JOBS,
                 what: str = "worker processes") -> None:
    parser.add_argument("--num-jobs", type=_positive_int, default=default, help=f"{what} (default: %(default)s)")


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="debug logging; tracebacks on errors")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time of each record (a tool run in-process, e.g.
    by a test that captures stdout, must not leave a handler bound to a closed stream); marks the
    handler this module installs, so that a second ``main()`` in one process replaces it."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """INFO (DEBUG with ``verbose``) from ``asr_bl.*`` to the current stdout, once; warnings (ours and other
    libraries') to stderr."""
    logger = logging.getLogger("asr_bl")
    for h in list(logger.handlers):
        if isinstance(h, _StdoutHandler):
            logger.removeHandler(h)
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    handler.addFilter(lambda record: record.levelno < logging.WARNING)  # warnings: the root's stderr handler
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    if not root.handlers:  # (in-process callers such as pytest bring their own)
        errors = logging.StreamHandler(sys.stderr)
        errors.setLevel(logging.WARNING)  # asr_bl's INFO lines propagate here too: print them once, above
        errors.setFormatter(logging.Formatter(_LOG_FORMAT))
        root.addHandler(errors)


def run_tool(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
             argv: Optional[List[str]] = None,
             usage_errors: Tuple[Type[BaseException], ...] = ()) -> int:
    """Parse ``argv``, set up logging, run ``body(args)`` and map errors to the exit codes above.

    ``usage_errors``: a package's own bad-input exception types (e.g. a graph dir missing a file),
    reported like :class:`UsageError` with exit code 2.
    """
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    setup_logging(verbose)
    try:
        return int(body(args))
    except (UsageError, *usage_errors) as e:
        return _fail(parser.prog, e, 2, verbose)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place a tool turns a failure into exit code 1
        return _fail(parser.prog, e, 1, verbose)


def _fail(prog: str, error: BaseException, code: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    message = str(error) or type(error).__name__
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
