"""NIST SPHERE files: header parsing (for clear errors) and a fallback reader for uncompressed ones.

LDC distributes Switchboard, Fisher and Hub5'00 audio as SPHERE files, most of them
shorten-compressed, which only ``sph2pipe`` decodes; lhotse reads every ``.sph`` through it. When
``sph2pipe`` is missing, :func:`check_sph2pipe` names the fix. For *uncompressed* SPHERE files (PCM,
as written by libsndfile) this module can also stand in for ``sph2pipe`` on the command line
(``python -m asr_bl.data.sphere -f wav -p [-c N] [-t START:END] FILE``), writing WAV to stdout the
way lhotse invokes it; compressed files get a clear error naming ``sph2pipe``. The module imports
only the standard library and soundfile, so a wrapper script named ``sph2pipe`` can run this file
directly (``python /path/to/asr_bl/data/sphere.py "$@"``) without importing the package.
"""
import argparse
import io
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Union

SPH2PIPE_FIX = (
    "install sph2pipe and put it on PATH (e.g. `lhotse install-sph2pipe`, Kaldi's "
    "tools/extras/install_sph2pipe.sh, or your distribution's package)"
)


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
    """Whether the SPHERE data is compressed (shorten, wavpack, ...): only sph2pipe reads those."""
    coding = str(header.get("sample_coding", "pcm"))
    return any(c in coding for c in ("shorten", "wavpack", "shortpack"))


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
    """Decode an uncompressed SPHERE file (optionally a time range / one 1-based channel) to WAV bytes."""
    import soundfile as sf

    header = read_sphere_header(path)
    if is_compressed(header):
        raise RuntimeError(
            f"{path} is {header.get('sample_coding')}-compressed; only sph2pipe decodes it. "
            f"Fix: {SPH2PIPE_FIX}."
        )
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
    """sph2pipe-compatible command line for uncompressed SPHERE files (WAV to stdout)."""
    parser = argparse.ArgumentParser(
        description="Decode an uncompressed NIST SPHERE file to WAV on stdout (a stand-in for "
        "sph2pipe's '-f wav -p [-c N] [-t START:END]' for PCM files; compressed files need sph2pipe)."
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
