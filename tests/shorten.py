"""A minimal Shorten (v2) *encoder* for test fixtures: real shorten-compressed SPHERE files.

No encoder is available here (Debian's ``shorten`` is non-free, sox and ffmpeg only decode it), so the
tests write their own streams, from the format as Robinson's report (CUED/F-INFENG/TR.156) describes
it: the magic ``ajkg``, version 2, a header of ``ulong`` fields (file type, channels, block size, LPC
order, number of means, skip bytes), then per block and channel one command coded ``uvar(2)``
(DIFF1/DIFF2 here, whichever codes the block in fewer bits), the Rice parameter ``uvar(3)`` and the
residuals ``var(k)``; a shorter last block is announced by BLOCKSIZE; QUIT ends the stream. Bits are
packed most significant first. The result is embedded in a NIST SPHERE header with
``sample_coding -s26 pcm,embedded-shorten-v2.00``, as LDC ships Switchboard-1.

Checked against an independent decoder: ``ffmpeg -f shn`` decodes a stream written with a WAV header
in ``verbatim`` to the same samples (tests/test_data_ldc_dict.py runs that check where ffmpeg is installed).
"""
from pathlib import Path
from typing import List

import numpy as np

FN_DIFF1, FN_DIFF2, FN_QUIT, FN_BLOCKSIZE, FN_VERBATIM = 1, 2, 4, 5, 9
TYPE_S16LH = 5  # signed 16-bit, little-endian


class _BitWriter:
    def __init__(self) -> None:
        self.bits: List[int] = []

    def put(self, value: int, n: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def uvar(self, value: int, k: int) -> None:
        self.bits.extend([0] * (value >> k))
        self.bits.append(1)
        if k:
            self.put(value & ((1 << k) - 1), k)

    def ulong(self, value: int) -> None:
        k = max(1, value.bit_length())
        self.uvar(k, 2)
        self.uvar(value, k)

    def var(self, value: int, k: int) -> None:
        self.uvar(2 * value if value >= 0 else -2 * value - 1, k)

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        out = bytearray()
        for i in range(0, len(bits), 8):
            byte = 0
            for b in bits[i:i + 8]:
                byte = (byte << 1) | b
            out.append(byte)
        return bytes(out)


def _rice_cost(residuals: np.ndarray, k: int) -> int:
    folded = np.where(residuals >= 0, 2 * residuals, -2 * residuals - 1)
    return int(np.sum((folded >> k) + 1 + k))


def shorten_encode(samples: np.ndarray, blocksize: int = 256, verbatim: bytes = b"") -> bytes:
    """Shorten v2 stream of int16 ``samples`` (frames x channels); ``verbatim`` bytes (e.g. a WAV
    header, which stand-alone ``.shn`` decoders want) go into a VERBATIM block before the audio."""
    samples = np.asarray(samples, dtype=np.int64)
    if samples.ndim == 1:
        samples = samples[:, None]
    frames, channels = samples.shape
    w = _BitWriter()
    for value in (TYPE_S16LH, channels, blocksize, 0, 4, 0):  # type, nchan, blocksize, maxnlpc, nmean, nskip
        w.ulong(value)
    if verbatim:
        w.uvar(FN_VERBATIM, 2)
        w.uvar(len(verbatim), 5)
        for byte in verbatim:
            w.uvar(byte, 8)
    history = [np.zeros(2, dtype=np.int64) for _ in range(channels)]
    current = blocksize
    for start in range(0, frames, blocksize):
        n = min(blocksize, frames - start)
        if n != current:
            w.uvar(FN_BLOCKSIZE, 2)
            w.ulong(n)
            current = n
        for c in range(channels):
            x = np.concatenate([history[c], samples[start:start + n, c]])
            options = {FN_DIFF1: x[2:] - x[1:-1], FN_DIFF2: x[2:] - 2 * x[1:-1] + x[:-2]}
            best = None
            for fn, res in options.items():
                for k in range(1, 16):
                    cost = _rice_cost(res, k)
                    if best is None or cost < best[0]:
                        best = (cost, fn, k, res)
            _, fn, k, res = best
            w.uvar(fn, 2)
            w.uvar(k - 1, 3)
            for r in res:
                w.var(int(r), k)
            history[c] = x[-2:]
    w.uvar(FN_QUIT, 2)
    return b"ajkg" + bytes([2]) + w.to_bytes()


def write_shorten_sph(path: Path, samples: np.ndarray, sample_rate: int = 8000) -> None:
    """A shorten-compressed NIST SPHERE file of int16 ``samples`` (frames x channels)."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    payload = shorten_encode(samples)
    fields = [
        f"sample_count -i {samples.shape[0]}",
        f"channel_count -i {samples.shape[1]}",
        f"sample_rate -i {sample_rate}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_sig_bits -i 16",
        "sample_coding -s26 pcm,embedded-shorten-v2.00",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b" " * (1024 - len(header)) + payload)
