"""Test fixture: a toy corpus for the GMM-HMM tests, short sentences spoken by flite voices.

Real speech (from the flite synthesiser installed by tools/setup_env.sh), 8 kHz mono, one
utterance per recording, a CMUdict lexicon in the contracts' format (lower-case words, ARPAbet
phones without stress). Seconds to build; deterministic for the same sentences and voices.

Built on :mod:`asr_bl.corpus` where it can be: the lexicon is :func:`asr_bl.corpus.text.load_cmudict`
written by :func:`~asr_bl.corpus.text.write_lexicon`, the resampling to 8 kHz is
:func:`asr_bl.corpus.channel.resample`. The voices are flite's own, unmodified (the corpus'
:func:`~asr_bl.corpus.engines.flite_synthesize` randomises pitch and rate per speaker, which these
tests do not want), and the utterances are single-channel (the corpus builds conversations).
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence, Tuple

from asr_bl.corpus.channel import TELEPHONE_RATE, resample
from asr_bl.corpus.text import load_cmudict, write_lexicon
from asr_bl.io import atomic_path

#: Sentences of the toy corpus (our own; common words, all in CMUdict).
TOY_SENTENCES: Tuple[str, ...] = (
    "the cat sat on the mat",
    "a dog ran to the park",
    "she sells sea shells",
    "we will meet at noon",
    "the sun is very hot today",
    "please call me back later",
    "my brother likes green apples",
    "they went home after work",
    "it is raining in the city",
    "he reads a book every night",
    "the bus was late again",
    "can you help me with this",
    "i think that is right",
    "we need more time to finish",
    "the kids play in the yard",
    "turn left at the next light",
    "she bought a new red car",
    "the coffee is too strong",
    "open the window please",
    "they talked for an hour",
)

#: flite voices used (two different speakers).
TOY_VOICES: Tuple[str, ...] = ("slt", "kal")


def make_toy_corpus(
    out_dir: Path,
    sentences: Sequence[str] = TOY_SENTENCES,
    voices: Sequence[str] = TOY_VOICES,
) -> Tuple[object, Path]:
    """Synthesise every sentence with every voice into ``out_dir``.

    Returns ``(cuts, lexicon_path)``: a lhotse CutSet (one cut per utterance with its
    supervision's text and speaker) and the written ``lexicon.txt``.
    """
    import soundfile as sf
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    flite = shutil.which("flite")
    if flite is None:
        raise RuntimeError("flite is not installed; run tools/setup_env.sh (it installs Debian's flite)")
    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    recs, sups = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for v in voices:
            for i, text in enumerate(sentences):
                uid = f"toy-{v}-{i:03d}"
                path = out_dir / "wav" / f"{uid}.wav"
                if not path.is_file():
                    raw = os.path.join(tmp, "x.wav")
                    subprocess.run([flite, "-voice", v, "-t", text, "-o", raw], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    x, sr = sf.read(raw, dtype="float32")
                    x = resample(x, sr, TELEPHONE_RATE)
                    with atomic_path(path) as tmp_wav:
                        sf.write(str(tmp_wav), x, TELEPHONE_RATE)
                rec = Recording.from_file(path, recording_id=uid)
                recs.append(rec)
                sups.append(SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=rec.duration,
                                               channel=0, text=text, speaker=v))
    cuts = CutSet.from_manifests(RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups))
    lex_path = out_dir / "lexicon.txt"
    write_lexicon((w for s in sentences for w in s.split()), load_cmudict(), str(lex_path))
    return cuts.to_eager(), lex_path
