"""Miniature LDC trees for tests: Switchboard-1 + MS98 transcripts + MSU dictionary, Fisher English,
Hub5'00 audio + references + STM + GLM, in the packages' layouts and file formats.

Reusable outside pytest (the recipe's end-to-end test drives ``run.sh --swbd ... --eval2000 ...``
on them)::

    from ldc_tree import build_ldc_trees       # pytest puts tests/ on sys.path, as for toy_corpus
    trees = build_ldc_trees(tmp_path)          # LdcTrees(swbd_audio, swbd_text, fisher, eval2000)
    # asr_bl-prepare --swbd trees.swbd_audio --swbd-text trees.swbd_text --fisher trees.fisher
    #     --eval2000 trees.eval2000 --data-dir data

Audio is 8 kHz two-channel SPHERE, a different tone plus noise per side (side A 300 Hz, B 700 Hz);
Switchboard and Hub5'00 files are shorten-compressed as LDC ships them (``compressed=False`` writes
PCM), Fisher files PCM. Transcripts, the MSU dictionary, the STM and the GLM are written in the
real files' formats with our own words. Every training word has a pronunciation in the miniature
MSU dictionary or in CMUdict except ``zorblatt`` (a Fisher word, the one OOV).
"""
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shorten import write_shorten_sph  # noqa: E402

SR = 8000
TONES = (300.0, 700.0)  # side A, side B

#: The miniature sw-ms98-dict.text: the real file's layout (``#`` header lines, ``word phones``,
#: lower case, the MSU phone set) with the entry kinds Kaldi's swbd1 treatment maps.
MSU_DICT = """#
# Switchboard pronunciation dictionary (miniature, for tests)
#
-[an]y  iy
[bocket/bucket]  b aa k ih t
[laughter]  lau
[laughter-calling]  k ao l ih ng
[noise]  nsn
[silence]  sil
[vocalized-noise]  spn
a  ax
a  ey
about  ax b aw t
at  ae t
bucket  b ah k ax t
calling  k ao l ih ng
hi  hh ay
i  ay
i'm  ay m
i_b_m  ay b iy eh m
okay  ow k ey
t[he]-  t
them  dh eh m
them_1  ax m
uh-huh  ax hh ah
um  ah m
worked  w er k t
yeah  y ae
{wolmanized}  w ow l m ax n ay z d
"""

#: The miniature en20000405_hub5.glm: LDC's header and rule syntax.
GLM = """;;
;;  File:  en20000405_hub5.glm (miniature, for tests)
;;
* name "en20000405_hub5.glm"
* desc "Hub5 English 2000 evaluation, word mappings"
* format = 'NIST1'
* max_nrules = '2000'
* copy_no_hit = 'T'
* case_sensitive = 'F'
;;
I'M => { I'M / I AM } / [ ] __ [ ]
THEY'RE => { THEY'RE / THEY ARE } / [ ] __ [ ]    ;; contraction
OKAY => { OKAY / OK } / [ ] __ [ ]
UM => %HESITATION / [ ] __ [ ]
"""

#: Hub5'00 segments of each conversation: (side, start, end, reference text, STM text).
EVAL2000_SEGMENTS: Tuple[Tuple[str, float, float, str, str], ...] = (
    ("A", 0.50, 2.10, '%um, <contraction e_form="[they=>they][\'re=>are]">they\'re {breath} here',
     "(%HESITATION) THEY'RE HERE"),
    ("B", 2.20, 3.00, "mhm", "MHM"),
    ("A", 3.10, 5.50, "((i think)) so, %uh", "<B_ASIDE> ((I)) THINK SO (%HESITATION) <E_ASIDE>"),
)
EVAL2000_CONVERSATIONS = ("sw_4390", "en_4156")


@dataclass
class LdcTrees:
    swbd_audio: Path  # LDC97S62
    swbd_text: Path  # swb_ms98_transcriptions (with sw-ms98-dict.text)
    fisher: Path  # holds LDC2004S13, LDC2005S13, LDC2004T19, LDC2005T19
    eval2000: Path  # holds LDC2002S09 and LDC2002T43


def tone_samples(seconds: float, seed: int) -> np.ndarray:
    """Two channels of int16: a tone per side plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    sides = [0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.shape) for f in TONES]
    return np.round(np.stack(sides, axis=1) * 32767).astype(np.int16)


def write_sph(path: Path, seconds: float, seed: int, compressed: bool = False) -> None:
    """A two-channel 8 kHz SPHERE file (shorten-compressed or PCM): a different tone + noise per side."""
    samples = tone_samples(seconds, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compressed:
        write_shorten_sph(path, samples, SR)
    else:
        sf.write(str(path), samples, SR, format="NIST", subtype="PCM_16")


def ms98_lines(name: str, side: str, segments: Iterable[Tuple[float, float, str]]) -> str:
    return "".join(
        f"{name}{side}-ms98-a-{i:04d} {start:.6f} {end:.6f} {text}\n"
        for i, (start, end, text) in enumerate(segments, start=1)
    )


SWBD_A = [(0.0, 0.5, "[silence]"), (0.5, 2.0, "hi um i'm [laughter-calling] about t[he]-"),
          (2.0, 3.0, "uh-huh"), (3.5, 5.25, "i worked at i_b_m [noise]"), (5.25, 6.0, "[silence]")]
SWBD_B = [(0.0, 1.0, "[silence]"), (1.0, 2.5, "yeah [bocket/bucket]"), (2.5, 3.0, "uh-huh"),
          (3.0, 4.0, "[silence] [vocalized-noise]"), (4.0, 7.5, "them_1 okay")]


def build_swbd_tree(root: Path, conversations: Sequence[str] = ("2001", "2005"), seconds: float = 8.0,
                    compressed: bool = True) -> Tuple[Path, Path]:
    """``root/LDC97S62/swb1_d1/data/sw0NNNN.sph`` +
    ``root/swb_ms98_transcriptions/NN/NNNN/swNNNN{A,B}-ms98-a-trans.text`` and
    ``root/swb_ms98_transcriptions/sw-ms98-dict.text``; returns (audio dir, transcripts dir)."""
    audio = root / "LDC97S62"
    trans = root / "swb_ms98_transcriptions"
    for k, conv in enumerate(conversations):
        write_sph(audio / "swb1_d1" / "data" / f"sw0{conv}.sph", seconds, seed=k, compressed=compressed)
        d = trans / conv[:2] / conv
        d.mkdir(parents=True, exist_ok=True)
        (d / f"sw{conv}A-ms98-a-trans.text").write_text(ms98_lines(f"sw{conv}", "A", SWBD_A))
        (d / f"sw{conv}B-ms98-a-trans.text").write_text(ms98_lines(f"sw{conv}", "B", SWBD_B))
        (d / f"sw{conv}A-ms98-a-word.text").write_text("")  # the word-alignment files sit beside them
    (trans / "sw-ms98-dict.text").write_text(MSU_DICT)
    return audio, trans


def build_fisher_tree(root: Path, seconds: float = 6.0) -> Path:
    """``root/fisher/{LDC2004S13,LDC2005S13}/fe_03_pN_sph1/audio/000/fe_03_NNNNN.sph`` and the
    transcript packages ``LDC2004T19``/``LDC2005T19`` (``data/trans/000/*.txt``, ``doc/*_calldata.tbl``)."""
    root = root / "fisher"
    for part, (audio_id, trans_id) in enumerate([("LDC2004S13", "LDC2004T19"), ("LDC2005S13", "LDC2005T19")]):
        call = f"{part * 6000 + 1:05d}"
        sph = root / audio_id / f"fe_03_p{part + 1}_sph1" / "audio" / "000" / f"fe_03_{call}.sph"
        write_sph(sph, seconds, seed=10 + part)
        t = root / trans_id / "data" / "trans" / "000" / f"fe_03_{call}.txt"
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text(
            f"# fe_03_{call}.sph\n\n0.36 1.80 A: hello (( mike )) here\n\n1.90 3.20 B: hi [laugh] i'm sarah\n\n"
            "3.30 5.10 A: do you watch t. v.\n\n5.20 5.90 B: [noise] zorblatt\n"
        )
        doc = root / trans_id / "doc"
        doc.mkdir(parents=True, exist_ok=True)
        (doc / f"fe_03_p{part + 1}_calldata.tbl").write_text(
            "CALL_ID,DATE_TIME,TOPICID,SIGGRADE,CNVGRADE,APIN,ASX.DL,APHNUM,APHSET,APHTYP,BPIN,BSX.DL,BPHNUM,BPHSET,"
            f"BPHTYP\n{call},20031223_153616,ENG01,4,4,{5000 + part},f.a,1,1,1,{6000 + part},m.a,2,1,1\n"
        )
    return root


def stm_text(conversations: Sequence[str] = EVAL2000_CONVERSATIONS) -> str:
    """The miniature hub5e00.english.000405.stm: LDC's category header, an ignored segment, tags."""
    lines = [';;', ';; CATEGORY "0" "" ""', ';; LABEL "O" "Overall" "Overall"', ';;',
             ';; CATEGORY "1" "Hub5 test set" ""', ';; LABEL "EN" "CALLHOME" "CALLHOME conversations"',
             ';; LABEL "SW" "SWITCHBOARD" "SWITCHBOARD conversations"', ';;']
    for name in sorted(conversations):
        src = name[:2]
        lines.append(f"{name} A {name}_A 0.00 0.50 <O,{src},F,{src}-F> IGNORE_TIME_SEGMENT_IN_SCORING")
        for side, start, end, _, text in EVAL2000_SEGMENTS:
            gender = "F" if side == "A" else "M"
            lines.append(f"{name} {side} {name}_{side} {start:.2f} {end:.2f} <O,{src},{gender},{src}-{gender}>  {text}")
    return "\n".join(lines) + "\n"


def build_eval2000_tree(root: Path, seconds: float = 6.0, compressed: bool = True, stm: bool = True,
                        glm: bool = True) -> Path:
    """``root/eval2000/LDC2002S09/hub5e_00/english/{sw_4390,en_4156}.sph`` and
    ``root/eval2000/LDC2002T43/reference/{english/*.txt, hub5e00.english.000405.stm, en20000405_hub5.glm}``."""
    root = root / "eval2000"
    english = root / "LDC2002S09" / "hub5e_00" / "english"
    reference = root / "LDC2002T43" / "reference"
    (reference / "english").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(EVAL2000_CONVERSATIONS):
        write_sph(english / f"{name}.sph", seconds, seed=20 + k, compressed=compressed)
        body = "\n\n".join(f"{start:.2f} {end:.2f} {side}: {text}" for side, start, end, text, _ in EVAL2000_SEGMENTS)
        (reference / "english" / f"{name}.txt").write_text(
            f"#Language: eng\n#File id: {name[3:]}\n#Starting at 0 Ending at 6\n# 0 1 #BEGIN\n# 5 6 #END\n\n"
            + body + "\n"
        )
    if stm:
        (reference / "hub5e00.english.000405.stm").write_text(stm_text())
    if glm:
        (reference / "en20000405_hub5.glm").write_text(GLM)
    return root


def build_ldc_trees(root: Path, compressed: bool = True) -> LdcTrees:
    """All three miniature trees under ``root`` (a second call reuses nothing: use a fresh root)."""
    audio, trans = build_swbd_tree(root, compressed=compressed)
    return LdcTrees(audio, trans, build_fisher_tree(root), build_eval2000_tree(root, compressed=compressed))


def install_sph2pipe_standin(bindir: Path) -> Path:
    """Write ``bindir/sph2pipe``, running :mod:`asr_bl.data.sphere`'s stand-in (PCM via soundfile,
    shorten via desphere); put ``bindir`` on PATH to use it in place of the real sph2pipe."""
    from asr_bl.data import sphere

    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "sph2pipe"
    # Run the module file itself: `-m asr_bl.data.sphere` would import the whole package per call.
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{sphere.__file__}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def path_without_sph2pipe() -> str:
    """PATH with every directory holding an ``sph2pipe`` left out."""
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not (Path(d) / "sph2pipe").exists())
