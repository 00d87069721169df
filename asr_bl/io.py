"""Atomic file writes: the one implementation every stage uses.

A reader (a later stage, a resumed run, another worker) must never see half a file: each writer
writes under a temporary name in the destination's own directory and renames onto the final name
only once the content is complete, so an interrupted run leaves either the old file or none.

The temporary name keeps the destination's full suffix (``cuts.jsonl.gz`` ->
``cuts.tmp-<pid>-<n>.jsonl.gz``) because lhotse, soundfile and numpy choose the format from it.

>>> with atomic_path("exp/tri2/final.mdl") as tmp:   # any writer that takes a path
...     model.save(tmp)
>>> with atomic_open("data/lang/words.txt") as f:     # text (or "wb" for bytes)
...     f.write("<eps> 0\\n")
>>> write_json("exp/tri2/done.json", record)
>>> save_torch(checkpoint, "exp/am/checkpoint-3.pt", fsync=True)
"""
import contextlib
import io
import itertools
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator, Union

Pathlike = Union[str, "os.PathLike[str]"]

_counter = itertools.count()

__all__ = [
    "Pathlike",
    "atomic_path",
    "atomic_open",
    "write_text",
    "write_bytes",
    "write_json",
    "save_numpy",
    "save_torch",
    "write_if_changed",
    "temp_name",
]


def temp_name(path: Pathlike) -> Path:
    """A temporary sibling of ``path`` with the same (compound) suffix, unique per process and call."""
    path = Path(path)
    stem, dot, suffix = path.name.partition(".")
    tag = f"tmp-{os.getpid()}-{next(_counter)}"
    name = f"{stem}.{tag}.{suffix}" if dot else f"{stem}.{tag}"
    return path.with_name(name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Pathlike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` when the block ends without error.

    On an exception the temporary file is removed and ``path`` is left as it was. ``fsync=True``
    flushes the content to disk before the rename (checkpoints: a crash right after the rename
    must not leave an empty file under the final name). Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_path: the writer did not create {tmp} (for {path})")
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: Pathlike, mode: str = "w", encoding: str = "utf-8", fsync: bool = False) -> Iterator[IO]:
    """``open()`` for writing (``"w"`` or ``"wb"``) whose result appears under ``path`` only when complete."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w' or 'wb', not {mode!r}")
    with atomic_path(path, fsync=fsync) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text(path: Pathlike, text: str, encoding: str = "utf-8") -> None:
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


def write_bytes(path: Pathlike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: Pathlike, obj: Any, indent: int = 2, **kwargs: Any) -> None:
    """JSON with a trailing newline; extra keyword arguments go to :func:`json.dumps` (e.g. ``default=str``)."""
    write_text(path, json.dumps(obj, indent=indent, **kwargs) + "\n")


def save_numpy(path: Pathlike, array: Any) -> None:
    """``numpy.save`` to exactly ``path`` (numpy appends ``.npy`` to names without it: we do not)."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, array)


def save_torch(obj: Any, path: Pathlike, fsync: bool = True) -> None:
    """``torch.save`` through a temporary file; fsync'd by default (checkpoints).

    The object is serialised in memory first: torch 1.13's zip writer aborts the whole process (a
    C++ exception in a destructor) when the disk fills up under it, whereas Python's file I/O turns
    a full disk into an ordinary ``OSError(ENOSPC)``, the temporary file is removed, and ``path``
    keeps its previous content.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(buffer.getbuffer())


def write_if_changed(path: Pathlike, data: Union[str, bytes], encoding: str = "utf-8") -> bool:
    """Write ``data`` to ``path`` only when the file's content differs; return whether it wrote.

    Upstream steps use it so that redoing them with the same result keeps their outputs' mtimes,
    and no downstream stage sees a changed input.
    """
    path = Path(path)
    new = data.encode(encoding) if isinstance(data, str) else data
    try:
        if path.read_bytes() == new:
            return False
    except FileNotFoundError:
        pass
    write_bytes(path, new)
    return True
