"""Skip or redo: the one mechanism by which every stage tool decides whether its work is done.

A stage (corpus, features, lang, a GMM pass, LM, graph, training, decoding) writes, after its
outputs are complete, a small JSON *record* beside them::

    {"stage": "train-tri", "args": {...},
     "inputs":  {"data/lang/L.fst": {"size": 1234, "mtime_ns": ..., "sha1": "..."}, ...},
     "outputs": {"exp/tri2/final.mdl": {"size": ..., "mtime_ns": ..., "sha1": "..."}, ...},
     "summary": {...}}

On the next run the stage is skipped when the record exists, the arguments are equal, every input
has the same *content* (sha1) and every output is still there, unchanged. Otherwise it is redone
and the reason is logged (``redoing exp/tri2: input data/lang/L.fst changed``).

Content, not mtime, decides: an upstream step that is redone with an identical result (and writes
through :func:`asr_bl.io.write_if_changed`) does not make its downstream stages redo. Hashing is
cheap on re-runs: a file whose size and mtime equal the recorded ones keeps its recorded sha1
(git's index does the same); only a touched file is hashed again.

>>> st = Stage(out_dir / "done.json", "train-tri", args=vars_without_runtime_flags, inputs=[cuts, lang / "L.fst"])
>>> if st.is_done():          # logs "skipping ..." or why it redoes
...     return 0
>>> ...work...
>>> st.finish(outputs=[out_dir / "final.mdl", out_dir / "tree"], summary={"num_pdfs": 2000})
"""
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from asr_bl.io import Pathlike, write_json

logger = logging.getLogger(__name__)

__all__ = ["Stage", "StageStatus", "fingerprint", "read_record"]

_CHUNK = 1 << 20


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: Pathlike, known: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """``{"size", "mtime_ns", "sha1"}`` of a file (a directory: of its files, recursively); None if absent.

    ``known`` is a previous fingerprint of the same path: when size and mtime are unchanged its sha1
    is reused instead of reading the file again.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        h = hashlib.sha1()
        size = 0
        for p in files:
            fp = fingerprint(p)
            assert fp is not None
            h.update(f"{p.relative_to(path)}\0{fp['sha1']}\n".encode())
            size += fp["size"]
        return {"size": size, "files": len(files), "sha1": h.hexdigest()}
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    fp: Dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if known and known.get("size") == fp["size"] and known.get("mtime_ns") == fp["mtime_ns"] and known.get("sha1"):
        fp["sha1"] = known["sha1"]
    else:
        fp["sha1"] = _sha1(path)
    return fp


def _same_content(a: Optional[Mapping[str, Any]], b: Optional[Mapping[str, Any]]) -> bool:
    if a is None or b is None:
        return a is b
    return a.get("sha1") == b.get("sha1") and a.get("size") == b.get("size")


def read_record(path: Pathlike) -> Optional[Dict[str, Any]]:
    """The record at ``path``, or None when it is missing or unreadable (an unreadable one means redo)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError, OSError) as e:
        logger.warning("%s is unreadable (%s): treating the stage as not done", path, e)
        return None


@dataclass
class StageStatus:
    """Whether a stage's recorded result is still valid, and if not, why (one line for the log)."""

    done: bool
    reason: str
    changed_args: List[str] = field(default_factory=list)
    changed_inputs: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.done


def _jsonable(args: Mapping[str, Any]) -> Dict[str, Any]:
    # Round-trip through JSON so that a tuple and the list it was recorded as compare equal.
    return json.loads(json.dumps(dict(args), sort_keys=True, default=str))


class Stage:
    """One stage's record: its arguments, the content of its inputs and of its outputs.

    ``record`` is the JSON file to keep (e.g. ``exp/tri2/done.json``); ``args`` the settings that
    change the result (leave out runtime-only ones: number of jobs, verbosity); ``inputs`` the
    files or directories it reads. Paths are recorded as given, so pass them the same way each run
    (the recipe always passes relative paths from its own directory).
    """

    def __init__(self, record: Pathlike, name: str, args: Mapping[str, Any], inputs: Iterable[Pathlike] = ()):
        self.record = Path(record)
        self.name = name
        self.args = _jsonable(args)
        self.inputs: List[str] = [str(p) for p in inputs]
        self._previous = read_record(self.record)

    @property
    def previous(self) -> Optional[Dict[str, Any]]:
        """The record found at construction (None if there was none)."""
        return self._previous

    def status(self) -> StageStatus:
        prev = self._previous
        if prev is None:
            return StageStatus(False, f"no record {self.record}")
        if prev.get("stage") != self.name:
            return StageStatus(False, f"{self.record} is the record of {prev.get('stage')!r}, not {self.name!r}")
        prev_args = prev.get("args", {})
        changed_args = sorted(k for k in set(self.args) | set(prev_args) if self.args.get(k) != prev_args.get(k))
        if changed_args:
            detail = ", ".join(f"{k}: {prev_args.get(k)!r} -> {self.args.get(k)!r}" for k in changed_args)
            return StageStatus(False, f"arguments changed ({detail})", changed_args=changed_args)
        prev_inputs = prev.get("inputs", {})
        changed = []
        for p in sorted(set(self.inputs) | set(prev_inputs)):
            if p not in self.inputs or p not in prev_inputs:
                changed.append(p)
                continue
            if not _same_content(fingerprint(p, prev_inputs[p]), prev_inputs[p]):
                changed.append(p)
        if changed:
            return StageStatus(False, "input changed: " + ", ".join(changed), changed_inputs=changed)
        for p, fp in prev.get("outputs", {}).items():
            now = fingerprint(p, fp)
            if now is None:
                return StageStatus(False, f"output {p} is missing")
            if not _same_content(now, fp):
                return StageStatus(False, f"output {p} was modified after the stage finished")
        return StageStatus(True, f"done ({self.record} matches arguments, inputs and outputs)")

    def is_done(self, force: bool = False) -> bool:
        """True when the stage can be skipped; logs the decision either way."""
        if force:
            logger.info("%s: redoing (--force)", self.name)
            return False
        st = self.status()
        if st.done:
            logger.info("%s: skipping, %s", self.name, st.reason)
        elif self._previous is None:
            logger.info("%s: running (%s)", self.name, st.reason)
        else:
            logger.info("%s: redoing, %s", self.name, st.reason)
        return st.done

    def finish(self, outputs: Sequence[Pathlike] = (), summary: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Record the stage as done (atomically, last): call only once every output is complete."""
        prev_inputs = (self._previous or {}).get("inputs", {})
        record = {
            "stage": self.name,
            "args": self.args,
            "inputs": {p: fingerprint(p, prev_inputs.get(p)) for p in self.inputs},
            "outputs": {str(p): fingerprint(p) for p in outputs},
            "summary": dict(summary or {}),
        }
        missing = [p for p, fp in record["outputs"].items() if fp is None]
        if missing:
            raise FileNotFoundError(f"{self.name}: outputs missing at finish: {', '.join(missing)}")
        write_json(self.record, record, default=str)
        self._previous = record
        return record
