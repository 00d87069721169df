"""Questions for the tree: phone sets for the left/right context and pdf-class sets (Kaldi's
``cluster-phones`` + ``compile-questions``).

Phone sets come from ARPAbet phonetic classes (:data:`ARPABET_CLASSES`) and from a top-down
likelihood clustering of the phones' own statistics (:func:`cluster_phones`); pdf-class questions
``{0}, {0,1}, ...`` let the HMM states of a phone share one root.
"""
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

from asr_bl.hmm.tree.config import TreeConfig
from asr_bl.hmm.tree.stats import KEY_PDF_CLASS, TreeStats, gauss_objf

#: Phonetic classes of the (stressless, upper-case) ARPAbet phone set, our own grouping.
ARPABET_CLASSES: Dict[str, Tuple[str, ...]] = {
    "vowel": ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"),
    "consonant": ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R",
                  "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH"),
    "stop": ("B", "D", "G", "K", "P", "T"),
    "voiced_stop": ("B", "D", "G"),
    "unvoiced_stop": ("K", "P", "T"),
    "fricative": ("DH", "F", "HH", "S", "SH", "TH", "V", "Z", "ZH"),
    "voiced_fricative": ("DH", "V", "Z", "ZH"),
    "unvoiced_fricative": ("F", "HH", "S", "SH", "TH"),
    "affricate": ("CH", "JH"),
    "sibilant": ("CH", "JH", "S", "SH", "Z", "ZH"),
    "nasal": ("M", "N", "NG"),
    "liquid": ("L", "R"),
    "glide": ("W", "Y"),
    "approximant": ("L", "R", "W", "Y", "ER"),
    "sonorant": ("L", "M", "N", "NG", "R", "W", "Y"),
    "labial": ("B", "F", "M", "P", "V", "W"),
    "bilabial": ("B", "M", "P"),
    "labiodental": ("F", "V"),
    "dental": ("DH", "TH"),
    "alveolar": ("D", "L", "N", "S", "T", "Z"),
    "postalveolar": ("CH", "JH", "SH", "ZH", "R"),
    "velar": ("G", "K", "NG"),
    "front_vowel": ("AE", "EH", "EY", "IH", "IY"),
    "central_vowel": ("AH", "ER"),
    "back_vowel": ("AA", "AO", "OW", "UH", "UW"),
    "high_vowel": ("IH", "IY", "UH", "UW"),
    "mid_vowel": ("AH", "EH", "ER", "EY", "OW"),
    "low_vowel": ("AA", "AE", "AO"),
    "rounded_vowel": ("AO", "OW", "OY", "UH", "UW"),
    "diphthong": ("AW", "AY", "EY", "OW", "OY"),
    "y_offglide": ("AY", "EY", "IY", "OY"),
    "w_offglide": ("AW", "OW", "UW"),
}



@dataclass
class Questions:
    """Questions per event key: ``{key: [frozenset of values, ...]}``."""

    by_key: Dict[int, List[FrozenSet[int]]] = field(default_factory=dict)

    def add(self, key: int, values: Sequence[int]) -> None:
        qs = self.by_key.setdefault(key, [])
        s = frozenset(int(v) for v in values)
        if s and s not in qs:
            qs.append(s)

    def num_questions(self) -> int:
        return sum(len(v) for v in self.by_key.values())


def cluster_phones(
    phone_ids: Sequence[int], stats: TreeStats, var_floor: float = 0.01, iters: int = 10
) -> List[FrozenSet[int]]:
    """Top-down binary clustering of phones by their pooled statistics (Kaldi's cluster-phones).

    Each phone's statistics are pooled over all contexts and pdf-classes. A set is split in two by
    a 2-means on the Gaussian objective (seeded with the phone whose separation gains most), and
    the halves are split recursively down to single phones. Returns every set of the recursion
    tree (the questions), singletons included.
    """
    ids = [p for p in phone_ids if np.any(stats.events[:, 1] == p)]
    dim = stats.dim
    cnt = {p: 0.0 for p in ids}
    s1 = {p: np.zeros(dim) for p in ids}
    s2 = {p: np.zeros(dim) for p in ids}
    for p in ids:
        m = stats.events[:, 1] == p
        cnt[p] = float(stats.counts[m].sum())
        s1[p] = stats.sums[m].sum(0)
        s2[p] = stats.sumsq[m].sum(0)

    def objf(group: Sequence[int]) -> float:
        if not group:
            return 0.0
        c = sum(cnt[p] for p in group)
        a = np.sum([s1[p] for p in group], axis=0)
        b = np.sum([s2[p] for p in group], axis=0)
        return float(gauss_objf(np.array([c]), a[None], b[None], var_floor)[0])

    out: List[FrozenSet[int]] = []

    def split(group: List[int]) -> None:
        out.append(frozenset(group))
        if len(group) <= 1:
            return
        # Seed: the single phone whose removal into its own cluster gains most.
        base = objf(group)
        gains = [objf([p]) + objf([q for q in group if q != p]) - base for p in group]
        a = [group[int(np.argmax(gains))]]
        b = [q for q in group if q not in a]
        for _ in range(iters):
            changed = False
            for p in list(group):
                src, dst = (a, b) if p in a else (b, a)
                if len(src) == 1:
                    continue
                before = objf(src) + objf(dst)
                after = objf([q for q in src if q != p]) + objf(dst + [p])
                if after > before + 1e-9:
                    src.remove(p)
                    dst.append(p)
                    changed = True
            if not changed:
                break
        split(sorted(a))
        split(sorted(b))

    if ids:
        split(sorted(ids))
    return out


def make_questions(
    phone_names: Sequence[str],
    speech_phone_ids: Sequence[int],
    silence_phone_ids: Sequence[int],
    num_pdf_classes: int,
    stats: Optional[TreeStats],
    config: TreeConfig,
) -> Questions:
    """All questions: context-phone sets for keys 0 and 2, pdf-class sets for key -1."""
    name_to_id = {n: i for i, n in enumerate(phone_names)}
    sets: List[FrozenSet[int]] = []
    speech = sorted(speech_phone_ids)
    sil = sorted(silence_phone_ids)
    sets.append(frozenset(sil))
    sets.append(frozenset(speech))
    for p in speech + sil:
        sets.append(frozenset([p]))
    if config.phonetic_questions:
        for cls in ARPABET_CLASSES.values():
            ids = [name_to_id[n] for n in cls if n in name_to_id]
            if ids:
                sets.append(frozenset(ids))
    if config.auto_questions and stats is not None:
        sets.extend(cluster_phones(speech, stats, config.var_floor))
        sets.extend(cluster_phones(sil, stats, config.var_floor))
    qs = Questions()
    for key in (0, 2):
        for s in sets:
            qs.add(key, sorted(s))
    for k in range(num_pdf_classes):
        qs.add(KEY_PDF_CLASS, list(range(k + 1)))
        qs.add(KEY_PDF_CLASS, [k])
    return qs
