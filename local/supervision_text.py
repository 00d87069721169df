#!/usr/bin/env python3
"""Write the transcripts of a cuts manifest, one supervision per line (e.g. the LM's held-out dev text).

Usage: local/supervision_text.py CUTS.jsonl.gz OUT.txt
Written (atomically) only when its content changed, so a re-run leaves it untouched.
"""
import sys

from lhotse import load_manifest_lazy

from asr_bl.io import write_if_changed


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lines = [s.text.strip() for cut in load_manifest_lazy(sys.argv[1]) for s in cut.supervisions if s.text.strip()]
    if not lines:
        print(f"{sys.argv[0]}: error: {sys.argv[1]}: no transcripts", file=sys.stderr)
        return 2
    write_if_changed(sys.argv[2], "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
