"""NIST SPHERE files: header parsing, decoding without sph2pipe, and Lhotse recordings for them.

LDC distributes Switchboard, Fisher and Hub5'00 audio as SPHERE files, Switchboard-1 and Hub5'00
shorten-compressed. Two decoders (:func:`resolve_sphere_decoder`):

* ``sph2pipe`` (used when on PATH): recordings point at the ``.sph`` files and lhotse reads every
  cut through an ``sph2pipe -t START:END`` subprocess, as Kaldi does;
* ``desphere`` (the registry package, pure Python; ``desphere-native`` makes it ~50x faster): every
  ``.sph`` is decoded *once* into a FLAC file in an audio cache directory and the recording points
  at that (:func:`cache_sphere_as_flac`, :func:`sphere_recordings`). Decoding once is the robust
  choice: lhotse would otherwise decode the whole conversation again for each of its ~100 cuts,
  and later stages then read plain FLAC with seeks, on any machine, without either decoder. The
  cost is disk: FLAC of 8 kHz telephone speech is about half the size of 16-bit PCM.

This module can also stand in for ``sph2pipe`` on the command line (``python -m
asr_bl.data.sphere -f wav -p [-c N] [-t START:END] FILE``), writing WAV to stdout the way lhotse
invokes it: uncompressed files through soundfile, compressed ones through desphere when installed.
It imports only the standard library, numpy and soundfile (desphere lazily), so a wrapper script
named ``sph2pipe`` can run this file directly (``python /path/to/asr_bl/data/sphere.py "$@"``).
"""
import argparse
import io
import logging
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from asr_bl.io import atomic_path

logger = logging.getLogger(__name__)

#: The ``sphere_decoder`` choices: ``auto`` = sph2pipe when on PATH, else desphere.
SPHERE_DECODERS = ("auto", "sph2pipe", "desphere")

SPH2PIPE_FIX = (
    "install sph2pipe and put it on PATH (e.g. `lhotse install-sph2pipe`, Kaldi's "
    "tools/extras/install_sph2pipe.sh, or your distribution's package)"
)
DESPHERE_FIX = "pip install desphere==0.1.1 (and desphere-native for speed)"


class SphereDecoderError(RuntimeError):
    """No SPHERE decoder (sph2pipe, desphere) is available, or the one asked for is missing."""


def read_sphere_header(path: Union[str, Path]) -> Dict[str, Union[int, float, str]]:
    """The fields of a SPHERE header (``sample_rate``, ``channel_count``, ``sample_coding``, ...).

    Raises ``ValueError`` naming the file if it is not a SPHERE file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        first = f.read(16)
        if not first.startswith(b"NIST_1A"):
            raise ValueError(f"{path} is not a NIST SPHERE file (no 'NIST_1A' magic)")
        try:
            header_size = int(first[8:16].strip())
        except ValueError as e:
            raise ValueError(f"{path}: malformed SPHERE header size {first[8:16]!r}") from e
        f.seek(0)
        header = f.read(header_size).decode("ascii", errors="replace")
    fields: Dict[str, Union[int, float, str]] = {}
    for line in header.splitlines()[2:]:
        line = line.strip()
        if line == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        key, kind, value = parts
        if kind == "-i":
            fields[key] = int(value)
        elif kind == "-r":
            fields[key] = float(value)
        else:
            fields[key] = value
    fields["header_size"] = header_size
    return fields


def is_compressed(header: Dict[str, Union[int, float, str]]) -> bool:
    """Whether the SPHERE data is compressed (shorten, wavpack, ...): sph2pipe or desphere decodes those."""
    coding = str(header.get("sample_coding", "pcm"))
    return any(c in coding for c in ("shorten", "wavpack", "shortpack"))


def desphere_available() -> bool:
    """Whether the ``desphere`` package (shorten decoding in Python) is importable."""
    try:
        import desphere  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_sphere_decoder(choice: str = "auto") -> str:
    """``"sph2pipe"`` or ``"desphere"`` for ``choice`` (one of :data:`SPHERE_DECODERS`).

    ``auto`` takes sph2pipe when it is on PATH, else desphere when installed; raises
    :class:`SphereDecoderError` naming both fixes when neither is there, or the fix for a named one that is missing.
    """
    if choice not in SPHERE_DECODERS:
        raise ValueError(f"sphere decoder must be one of {SPHERE_DECODERS}, got {choice!r}")
    have_sph2pipe = shutil.which("sph2pipe") is not None
    if choice == "sph2pipe" and not have_sph2pipe:
        raise SphereDecoderError(f"sphere decoder 'sph2pipe' asked for but not on PATH. Fix: {SPH2PIPE_FIX}.")
    if choice == "desphere" and not desphere_available():
        raise SphereDecoderError(f"sphere decoder 'desphere' asked for but not installed. Fix: {DESPHERE_FIX}.")
    if choice != "auto":
        return choice
    if have_sph2pipe:
        return "sph2pipe"
    if desphere_available():
        return "desphere"
    raise SphereDecoderError(
        "SPHERE audio needs a decoder: neither 'sph2pipe' is on PATH nor the 'desphere' package "
        f"installed. Fix: {DESPHERE_FIX}, or {SPH2PIPE_FIX}."
    )


def decode_sphere(path: Union[str, Path]):
    """All samples of a SPHERE file, ``(int16 array frames x channels, sample rate)``, via desphere
    (PCM, mu-law and shorten-compressed files alike). Errors name the file."""
    import numpy as np
    import soundfile as sf
    from desphere import DesphereError, transcode_bytes

    path = Path(path)
    try:
        wav = transcode_bytes(path.read_bytes())
    except DesphereError as e:
        raise ValueError(f"{path}: desphere cannot decode it: {e}") from e
    data, rate = sf.read(io.BytesIO(wav), dtype="int16", always_2d=True)
    return np.ascontiguousarray(data), int(rate)


def _flac_matches(flac: Path, header: Dict[str, Union[int, float, str]]) -> bool:
    import soundfile as sf

    try:
        info = sf.info(str(flac))
    except RuntimeError:
        return False
    return (info.frames == header.get("sample_count") and info.channels == header.get("channel_count")
            and info.samplerate == header.get("sample_rate"))


def cache_sphere_as_flac(path: Union[str, Path], cache_dir: Union[str, Path]) -> Path:
    """Decode ``path`` (desphere) into ``cache_dir/<stem>.flac``, atomically; return the FLAC path.

    A FLAC already there whose frames, channels and rate match the SPHERE header is kept (a re-run
    decodes nothing). The stem is the recording id, so stems must be unique per cache directory.
    """
    import soundfile as sf

    path, cache_dir = Path(path), Path(cache_dir)
    flac = cache_dir / f"{path.stem}.flac"
    header = read_sphere_header(path)
    if flac.is_file() and _flac_matches(flac, header):
        return flac
    data, rate = decode_sphere(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(flac) as tmp:
        sf.write(str(tmp), data, rate, format="FLAC", subtype="PCM_16")
    return flac


def _desphere_recording(args: Tuple[Path, Path]):
    from lhotse import Recording

    sph, cache_dir = args
    return Recording.from_file(cache_sphere_as_flac(sph, cache_dir), recording_id=sph.stem)


def sphere_recordings(
    paths: Sequence[Path], decoder: str = "auto", cache_dir: Optional[Union[str, Path]] = None,
    num_jobs: int = 1, desc: str = "recordings",
):
    """A lhotse ``RecordingSet`` of SPHERE files (ids = file stems) with the given decoder.

    ``sph2pipe``: the recordings point at the ``.sph`` files (probed by ``num_jobs`` threads, each
    an sph2pipe subprocess). ``desphere``: each file is decoded once into ``cache_dir`` (required)
    by ``num_jobs`` processes and the recordings point at the FLAC files.
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from lhotse import Recording, RecordingSet
    from tqdm.auto import tqdm

    decoder = resolve_sphere_decoder(decoder)
    paths = [Path(p) for p in paths]
    jobs = max(1, min(num_jobs, len(paths)))
    if decoder == "sph2pipe":
        with ThreadPoolExecutor(jobs) as pool:
            recordings = list(tqdm(pool.map(Recording.from_file, paths), total=len(paths), desc=desc))
        return RecordingSet.from_recordings(recordings)
    if cache_dir is None:
        raise ValueError("sphere_recordings: the desphere decoder needs a cache_dir for the decoded FLAC files")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"SPHERE files with the same name in different directories: {dup[:3]} (ids must be unique)")
    work = [(p, Path(cache_dir)) for p in paths]
    logger.info("decoding %d SPHERE files with desphere into %s (%d jobs)", len(paths), cache_dir, jobs)
    if jobs == 1:
        recordings = [_desphere_recording(w) for w in tqdm(work, desc=desc)]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            recordings = list(tqdm(pool.map(_desphere_recording, work), total=len(work), desc=desc))
    return RecordingSet.from_recordings(recordings)


def check_sph2pipe(sph_paths: List[Path]) -> None:
    """Raise a clear error if ``.sph`` audio is to be read and ``sph2pipe`` is not on PATH."""
    if sph_paths and shutil.which("sph2pipe") is None:
        example = sph_paths[0]
        raise RuntimeError(
            f"found {len(sph_paths)} SPHERE files (e.g. {example}) but no 'sph2pipe' on PATH; "
            f"lhotse reads .sph audio through it. Fix: {SPH2PIPE_FIX}."
        )


def sphere_to_wav_bytes(
    path: Union[str, Path], start: float = 0.0, end: Optional[float] = None, channel: Optional[int] = None
) -> bytes:
    """Decode a SPHERE file (optionally a time range / one 1-based channel) to WAV bytes: uncompressed
    ones through soundfile, compressed ones through desphere (a clear error when it is missing)."""
    import soundfile as sf

    header = read_sphere_header(path)
    if is_compressed(header):
        if not desphere_available():
            raise RuntimeError(
                f"{path} is {header.get('sample_coding')}-compressed; sph2pipe or desphere decodes it. "
                f"Fix: {DESPHERE_FIX}, or {SPH2PIPE_FIX}."
            )
        data, rate = decode_sphere(path)
    else:
        data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    first = int(round(start * rate))
    last = data.shape[0] if end is None else min(data.shape[0], int(round(end * rate)))
    data = data[first:last]
    if channel is not None:
        data = data[:, channel - 1 : channel]
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def main(argv: Optional[List[str]] = None) -> int:
    """sph2pipe-compatible command line (WAV to stdout)."""
    parser = argparse.ArgumentParser(
        description="Decode a NIST SPHERE file to WAV on stdout (a stand-in for sph2pipe's "
        "'-f wav -p [-c N] [-t START:END]'; compressed files need the desphere package)."
    )
    parser.add_argument("-f", dest="format", default="wav", choices=["wav"], help="output format (wav only)")
    parser.add_argument("-p", action="store_true", help="16-bit PCM output (always the case here)")
    parser.add_argument("-c", dest="channel", type=int, default=None, help="1-based channel to extract")
    parser.add_argument("-t", dest="times", default=None, help="START:END in seconds (END optional)")
    parser.add_argument("path", type=Path, help="the .sph file")
    args = parser.parse_args(argv)
    start, end = 0.0, None
    if args.times:
        start_text, _, end_text = args.times.partition(":")
        start = float(start_text) if start_text else 0.0
        end = float(end_text) if end_text else None
    try:
        data = sphere_to_wav_bytes(args.path, start, end, args.channel)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
