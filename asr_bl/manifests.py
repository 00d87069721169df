"""The corpus parts and the manifest file names: the one definition every stage uses.

Every corpus (the embedded ``synth`` one and the LDC ``swbd`` one) is split into the same four
parts, and every stage names its lhotse manifests the same way::

    <dir>/{corpus}_recordings_{part}.jsonl.gz      stage 0 (asr_bl-make-corpus, asr_bl-prepare)
    <dir>/{corpus}_supervisions_{part}.jsonl.gz    stage 0
    <dir>/{corpus}_cuts_{part}.jsonl.gz            stage 1 (asr_bl-features) and the alignments

Writers go through :func:`write_manifest`: it writes gzip with a fixed header time, so a manifest
rebuilt with the same content is byte-identical, and leaves an unchanged file untouched (its mtime
too), so that no later stage sees a changed input.
"""
import gzip
from pathlib import Path
from typing import Any, Tuple

from asr_bl.io import Pathlike, temp_name, write_if_changed

__all__ = ["PARTS", "TRAIN_PART", "KINDS", "manifest_name", "manifest_path", "manifest_paths",
           "part_of", "write_manifest"]

PARTS: Tuple[str, ...] = ("train", "dev", "test_swb", "test_ch")
"""Switchboard's training set, Kaldi's 4000-utterance dev set, Hub5'00's Switchboard and CallHome halves."""

TRAIN_PART = "train"
KINDS: Tuple[str, ...] = ("recordings", "supervisions", "cuts")
_SUFFIX = ".jsonl.gz"


def manifest_name(corpus: str, kind: str, part: str) -> str:
    """``{corpus}_{kind}_{part}.jsonl.gz``; ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"manifest kind must be one of {KINDS}, not {kind!r}")
    return f"{corpus}_{kind}_{part}{_SUFFIX}"


def manifest_path(directory: Pathlike, corpus: str, kind: str, part: str) -> Path:
    return Path(directory) / manifest_name(corpus, kind, part)


def manifest_paths(directory: Pathlike, corpus: str, part: str) -> Tuple[Path, Path]:
    """The stage-0 pair ``(recordings, supervisions)`` of one part."""
    return (manifest_path(directory, corpus, "recordings", part),
            manifest_path(directory, corpus, "supervisions", part))


def part_of(path: Pathlike, corpus: str, kind: str) -> str:
    """The part in a manifest file name (``synth_cuts_train.jsonl.gz`` -> ``train``); ValueError otherwise."""
    name = Path(path).name
    head = f"{corpus}_{kind}_"
    if not (name.startswith(head) and name.endswith(_SUFFIX)):
        raise ValueError(f"{path}: not a {head}<part>{_SUFFIX} manifest")
    return name[len(head): -len(_SUFFIX)]


def write_manifest(manifest: Any, path: Pathlike) -> bool:
    """Write a lhotse manifest (anything with ``to_file``) to ``path`` as deterministic gzip JSONL.

    Returns whether the file was (re)written: an existing file with the same content is kept as it
    is. ``path`` must end in ``.jsonl.gz``.
    """
    path = Path(path)
    if not path.name.endswith(_SUFFIX):
        raise ValueError(f"{path}: manifests are written as {_SUFFIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(Path(str(path)[: -len(".gz")]))  # lhotse picks the format from the name: plain JSONL
    try:
        manifest.to_file(tmp)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return write_if_changed(path, gzip.compress(data, compresslevel=6, mtime=0))
