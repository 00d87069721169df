"""The decode tools' shared command-line conventions (asr_bl-lm, asr_bl-mkgraph, asr_bl-decode).

Bad input or usage: one line ``asr_bl-<tool>: error: <what, naming the file>; <fix>`` on stderr,
exit code 2, no traceback unless ``--verbose``. Any other failure: exit code 1.
"""
import logging
import sys
import traceback
from typing import Callable

from asr_bl.decode.acoustic import ModelDirError
from asr_bl.decode.graph import GraphError
from asr_bl.decode.inputs import InputError

#: Exceptions that mean "bad input": their message names the file and the fix.
USAGE_ERRORS = (FileNotFoundError, NotADirectoryError, GraphError, ModelDirError, InputError, ValueError)


def run_tool(prog: str, fn: Callable[[], int], verbose: bool) -> int:
    """Run ``fn`` with the conventions above."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return fn()
    except USAGE_ERRORS as e:
        if verbose:
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the tool's failure, reported in one line
        if verbose:
            traceback.print_exc()
        print(f"{prog}: failed: {type(e).__name__}: {e} (rerun with --verbose for the traceback)", file=sys.stderr)
        return 1
