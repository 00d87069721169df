"""Text-to-speech engines for the synthetic corpus: espeak-ng (PyPI), flite and festival (Debian).

Each engine turns a batch of sentences spoken by one :class:`Voice` into float32 waveforms at the
engine's own sampling rate; resampling to telephone band happens later (:mod:`asr_bl.corpus.channel`).

Why these choices:

* espeak-ng comes from the ``espeakng-loader`` wheel, so it is always there. It is driven through
  ctypes in synchronous mode. libespeak-ng keeps global state and is not thread safe, so each
  *process* owns one initialised library (parallelism is by processes). Voices are randomised with
  espeak "variant" files (pitch, formants, roughness, ...) written into a mirror of the data
  directory owned by the build (one data directory with more than a few hundred voices silently
  collapses them to one; a build's mirror holds only its own voices and keeps builds apart).
* flite starts in milliseconds, so it runs once per utterance (``-o`` needs a seekable file).
* festival starts in ~0.3 s, so one process synthesises all sentences of a conversation side.

All engines are deterministic: the same text and voice give the same samples.
"""
import ctypes
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

from asr_bl.io import write_text

logger = logging.getLogger(__name__)

# Base voices per engine. flite's awb_time is a limited-domain (time of day) voice: excluded.
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
# Cost per utterance in CPU seconds, measured on this project's 2-core build machine; used only to
# keep the slow voices a small share of the speakers so the default build stays within minutes.
VOICE_COST_S = {
    "espeak": 0.005,
    "flite:kal": 0.016,
    "flite:kal16": 0.010,
    "flite:awb": 0.06,
    "flite:rms": 0.06,
    "flite:slt": 0.06,
    "festival:kal_diphone": 0.012,
    "festival:ked_diphone": 0.014,
    "festival:cmu_us_slt_arctic_hts": 0.13,
}
FEMALE_BASE_VOICES = {"slt", "cmu_us_slt_arctic_hts"}


@dataclass
class Voice:
    """One synthetic speaker: an engine, a base voice and its randomised parameters.

    ``warp`` is a resampling factor applied after synthesis (>1 raises pitch and formants and
    shortens the audio, like a shorter vocal tract); it gives every engine, even those without
    pitch controls, a speaker-specific timbre. ``espeak_variant`` holds the lines of an espeak-ng
    variant file (only for the espeak engine).
    """

    voice_id: str
    engine: str
    base_voice: str
    gender: str
    pitch_hz: float
    rate: float  # speaking-rate factor: >1 is faster
    warp: float
    espeak_variant: List[str] = field(default_factory=list)

    @property
    def engine_voice(self) -> str:
        """``engine:base_voice``, the key of :data:`VOICE_COST_S`."""
        return self.engine if self.engine == "espeak" else f"{self.engine}:{self.base_voice}"

    def to_dict(self) -> Dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: Dict) -> "Voice":
        return Voice(**d)


class EngineMissingError(RuntimeError):
    """A requested TTS engine is not installed."""


def available_engines() -> Dict[str, List[str]]:
    """Map each usable engine to its usable base voices (empty engines are left out)."""
    found: Dict[str, List[str]] = {}
    if _espeak_paths() is not None:
        found["espeak"] = ["en-us"]
    flite = shutil.which("flite")
    if flite:
        try:
            out = subprocess.run([flite, "-lv"], capture_output=True, text=True, timeout=30).stdout
            listed = set(out.replace("Voices available:", "").split())
            voices = [v for v in FLITE_VOICES if v in listed]
            if voices:
                found["flite"] = voices
        except (OSError, subprocess.SubprocessError) as e:
            logger.warning("flite is on PATH but 'flite -lv' failed (%s); not using flite", e)
    if shutil.which("festival"):
        voices = [v for v in FESTIVAL_VOICES if _festival_voice_installed(v)]
        if voices:
            found["festival"] = voices
    return found


def _festival_voice_installed(name: str) -> bool:
    for root in ("/usr/share/festival/voices", "/usr/local/share/festival/voices"):
        if os.path.isdir(root):
            for lang in os.listdir(root):
                if os.path.isdir(os.path.join(root, lang, name)):
                    return True
    return False


def _espeak_paths() -> Optional[Tuple[str, str]]:
    try:
        import espeakng_loader
    except ImportError:
        return None
    lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    if os.path.exists(lib) and os.path.isdir(data):
        return str(lib), str(data)
    return None


# ----------------------------------------------------------------------------------- espeak-ng
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_ESPEAK_RATE, _ESPEAK_VOLUME = 1, 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
# espeak-ng's output is loud enough to clip on some voices; synthesising at half volume avoids
# the clipping before we resample.
_ESPEAK_VOLUME_PERCENT = 50


class EspeakSynthesizer:
    """libespeak-ng through ctypes, reading our voice variants from a mirrored data directory.

    libespeak-ng keeps static state (e.g. its pitch-flutter phase) that survives
    ``espeak_Terminate`` and makes a sentence's samples depend on everything synthesised before
    it in the process. So each :meth:`synthesize` call loads the library afresh and unloads it
    afterwards (~10 ms): a batch's audio then depends only on the voice and the batch's texts, not
    on which process ran it or what it ran before. Use one instance per process at a time.

    ``data_dir`` is a mirror of espeak's data made by :func:`prepare_espeak_data` (several
    processes may share it: a voice's variant file depends only on the voice).
    """

    def __init__(self, data_dir: str) -> None:
        paths = _espeak_paths()
        if paths is None:
            raise EngineMissingError(
                "espeak-ng is missing: install the pinned 'espeakng-loader' (pip install -r requirements.txt)"
            )
        self._lib_path, _ = paths
        self._data_dir = prepare_espeak_data(data_dir)
        self._variant_dir = os.path.join(self._data_dir, "voices", "!v")
        self.sampling_rate = 0  # known after the first load
        self._chunks: List[np.ndarray] = []

        def _collect(wav, num_samples, events):  # called by libespeak-ng during espeak_Synth
            if num_samples > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
            return 0

        self._callback = _SYNTH_CALLBACK(_collect)  # keep a reference: C holds the pointer
        self._libc = ctypes.CDLL(None)  # the process's C library, whose rand() espeak uses

    def _load(self) -> ctypes.CDLL:
        lib = ctypes.CDLL(self._lib_path, mode=ctypes.RTLD_LOCAL)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_dir.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EngineMissingError(f"espeak_Initialize failed ({rate}) with data dir {self._data_dir}")
        self.sampling_rate = int(rate)
        lib.espeak_SetSynthCallback(self._callback)
        return lib

    @staticmethod
    def _unload(lib: ctypes.CDLL) -> None:
        import _ctypes

        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    def synthesize(self, texts: List[str], voice: Voice) -> List[np.ndarray]:
        """Speak ``texts`` with ``voice``; float32 waveforms at :attr:`sampling_rate`."""
        variant = re.sub(r"[^A-Za-z0-9_-]", "_", voice.voice_id)
        path = os.path.join(self._variant_dir, variant)
        # Atomic: a process sharing the directory never reads half a file.
        write_text(path, "\n".join(voice.espeak_variant) + "\n")
        lib = self._load()
        try:
            err = lib.espeak_SetVoiceByName(f"{voice.base_voice}+{variant}".encode())
            if err != 0:
                raise RuntimeError(f"espeak-ng could not load voice {voice.base_voice}+{variant} (error {err})")
            lib.espeak_SetParameter(_ESPEAK_RATE, int(round(165 * voice.rate)), 0)
            lib.espeak_SetParameter(_ESPEAK_VOLUME, _ESPEAK_VOLUME_PERCENT, 0)
            waves = []
            for text in texts:
                self._chunks = []
                # Breath and roughness noise come from libc's rand() (seeded from the clock by
                # espeak_Initialize) and espeak's own generator: seed both from the text.
                text_seed = zlib.crc32(text.encode("utf-8"))
                self._libc.srand(ctypes.c_uint(text_seed))
                lib.espeak_ng_SetRandSeed(ctypes.c_long(text_seed))
                data = text.encode("utf-8") + b"\0"
                err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
                if err != 0:
                    raise RuntimeError(f"espeak_Synth failed (error {err}) on {text!r}")
                samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
                waves.append(samples.astype(np.float32) / 32768.0)
        finally:
            self._unload(lib)
        return waves


def prepare_espeak_data(dst: str) -> str:
    """Mirror espeak's data directory at ``dst`` (symlinks) with a writable ``voices/!v`` for our
    variant files; reuses an existing mirror. Safe when several processes race to create it."""
    if os.path.isdir(os.path.join(dst, "voices", "!v")):
        return dst
    paths = _espeak_paths()
    if paths is None:
        raise EngineMissingError(
            "espeak-ng is missing: install the pinned 'espeakng-loader' (pip install -r requirements.txt)"
        )
    src = paths[1]
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".espeak-data-", dir=parent)
    for name in os.listdir(src):
        if name != "voices":
            os.symlink(os.path.join(src, name), os.path.join(tmp, name))
    voices = os.path.join(tmp, "voices")
    os.makedirs(voices)
    for name in os.listdir(os.path.join(src, "voices")):
        if name != "!v":
            os.symlink(os.path.join(src, "voices", name), os.path.join(voices, name))
    os.makedirs(os.path.join(voices, "!v"))
    try:
        os.rename(tmp, dst)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(os.path.join(dst, "voices", "!v")):
            raise
    return dst


# -------------------------------------------------------------------------------------- flite
def flite_synthesize(texts: List[str], voice: Voice, tmp_dir: str) -> Tuple[List[np.ndarray], int]:
    """Speak ``texts`` with flite, one process per sentence; returns (waveforms, sampling rate)."""
    flite = shutil.which("flite")
    if flite is None:
        raise EngineMissingError("flite is missing: install it with 'apt-get install flite' (Debian main)")
    waves, rate = [], 0
    path = os.path.join(tmp_dir, "flite.wav")
    for text in texts:
        cmd = [
            flite, "-voice", voice.base_voice,
            "--setf", f"duration_stretch={1.0 / voice.rate:.3f}",
            "--setf", f"int_f0_target_mean={voice.pitch_hz:.1f}",
            "-t", text, "-o", path,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"flite failed on {text!r}: {proc.stderr.strip()}")
        samples, rate = sf.read(path, dtype="float32")
        waves.append(samples)
    return waves, rate


# ----------------------------------------------------------------------------------- festival
def festival_synthesize(texts: List[str], voice: Voice, tmp_dir: str) -> Tuple[List[np.ndarray], int]:
    """Speak ``texts`` with festival in one batch process; returns (waveforms, sampling rate)."""
    festival = shutil.which("festival")
    if festival is None:
        raise EngineMissingError(
            "festival is missing: install it with 'apt-get install festival festvox-kallpc16k' (Debian main)"
        )
    lines = [f"(voice_{voice.base_voice})", f"(set! Duration_Stretch {1.0 / voice.rate:.3f})"]
    if voice.base_voice.endswith("_diphone"):
        # The diphone voices use linear-regression intonation; retarget its mean and spread.
        std = 0.18 * voice.pitch_hz
        lines.append(
            f"(set! int_lr_params '((target_f0_mean {voice.pitch_hz:.1f}) (target_f0_std {std:.1f}) "
            "(model_f0_mean 170) (model_f0_std 34)))"
        )
    paths = []
    for i, text in enumerate(texts):
        path = os.path.join(tmp_dir, f"fest{i:05d}.wav")
        paths.append(path)
        quoted = text.replace("\\", " ").replace('"', " ")
        lines.append(f'(utt.save.wave (SynthText "{quoted}") "{path}" \'riff)')
    script = os.path.join(tmp_dir, "batch.scm")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.run([festival, "-b", script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"festival failed on {script}: {proc.stderr.strip()[-500:]}")
    waves, rate = [], 0
    for path in paths:
        samples, rate = sf.read(path, dtype="float32")
        if samples.ndim > 1:
            samples = samples[:, 0]
        waves.append(samples)
        os.remove(path)
    return waves, rate


class Synthesizer:
    """Dispatches to the engines.

    ``work_dir`` holds the scratch files: a private temporary directory (removed by :meth:`close`)
    and the espeak data mirror ``work_dir/espeak-data``, shared by the processes of one build
    (removed by whoever owns ``work_dir``). Without ``work_dir`` everything is private and
    removed by :meth:`close`.
    """

    def __init__(self, work_dir: Optional[str] = None) -> None:
        self.tmp_dir = tempfile.mkdtemp(prefix="tts-", dir=work_dir)
        base = work_dir if work_dir is not None else self.tmp_dir
        self._espeak_data_dir = os.path.join(base, "espeak-data")
        self._espeak: Optional[EspeakSynthesizer] = None

    def synthesize(self, texts: List[str], voice: Voice) -> Tuple[List[np.ndarray], int]:
        """Speak ``texts`` with ``voice``; returns (float32 waveforms, their sampling rate)."""
        if voice.engine == "espeak":
            if self._espeak is None:
                self._espeak = EspeakSynthesizer(self._espeak_data_dir)
            return self._espeak.synthesize(texts, voice), self._espeak.sampling_rate
        if voice.engine == "flite":
            return flite_synthesize(texts, voice, self.tmp_dir)
        if voice.engine == "festival":
            return festival_synthesize(texts, voice, self.tmp_dir)
        raise ValueError(f"unknown TTS engine {voice.engine!r}")

    def close(self) -> None:
        self._espeak = None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> "Synthesizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
