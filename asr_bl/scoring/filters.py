"""Which tokens are scored: Hub5 filtering of noise, hesitations and partial words.

The convention is Kaldi's swbd ``local/score_sclite.sh`` (hypothesis side) and the Hub5'00 STM +
GLM (reference side, where hesitations and fragments are optionally deletable):

==================  ==============================================  ============  ==========================
token class         tokens                                          hypothesis    reference (STM)
==================  ==============================================  ============  ==========================
noise               ``[noise]`` ``[laughter]`` ``[vocalized-noise]``  dropped       dropped
                    (any ``[...]`` token)
unknown word        ``<unk>``                                       dropped       kept (scored: an error)
hesitation          ach ah eee eh er ew ha hee hm hmm huh mm oof     dropped       ``(uh)``: optionally
                    uh um                                                         deletable (``-D``)
partial word        ``th-`` ``-at``                                 dropped       ``(th-)``: optionally
                                                                                  deletable fragment (``-F``)
==================  ==============================================  ============  ==========================

So a hesitation or fragment in the reference costs nothing when the recogniser leaves it out and
counts as correct when it says it (sclite counts it as a reference word either way); a hesitation
in the hypothesis is never an insertion. ``%hesitation`` (LDC's spelling) is a hesitation.
"""
from dataclasses import dataclass, field
from typing import FrozenSet, Iterable, List, Optional

__all__ = ["HubFilter", "HESITATIONS", "NOISE_WORDS", "UNK_WORDS", "filter_tokens", "filter_reference"]

#: Kaldi swbd score_sclite.sh's hesitation list, plus LDC's %hesitation.
HESITATIONS: FrozenSet[str] = frozenset(
    "ach ah eee eh er ew ha hee hm hmm huh mm oof uh um %hesitation".split()
)
NOISE_WORDS: FrozenSet[str] = frozenset(["[noise]", "[laughter]", "[vocalized-noise]"])
UNK_WORDS: FrozenSet[str] = frozenset(["<unk>"])


@dataclass(frozen=True)
class HubFilter:
    """The filter table above as data. ``drop_noise``/``hesitations``/``partial_words`` switch each
    class off; ``hesitations`` is the set used (lower case)."""

    hesitations: FrozenSet[str] = field(default=HESITATIONS)
    noise_words: FrozenSet[str] = field(default=NOISE_WORDS)
    unk_words: FrozenSet[str] = field(default=UNK_WORDS)
    drop_noise: bool = True
    partial_words: bool = True

    def is_noise(self, w: str) -> bool:
        return self.drop_noise and (w in self.noise_words or (w.startswith("[") and w.endswith("]")))

    def is_partial(self, w: str) -> bool:
        return self.partial_words and len(w) > 1 and (w.endswith("-") or w.startswith("-"))

    def hyp(self, words: Iterable[str]) -> List[str]:
        """Hypothesis words kept for scoring (lower case)."""
        out = []
        for w in words:
            w = w.lower()
            if self.is_noise(w) or w in self.unk_words or w in self.hesitations or self.is_partial(w):
                continue
            out.append(w)
        return out

    def ref_token(self, w: str) -> Optional[str]:
        """A reference word as written into the STM: None (dropped), ``(w)`` or ``w``."""
        w = w.lower()
        if w.startswith("(") and w.endswith(")") and len(w) > 2:
            return w  # already optionally deletable
        if self.is_noise(w):
            return None
        if w in self.hesitations or self.is_partial(w):
            return f"({w})"
        return w

    def ref(self, words: Iterable[str]) -> List[str]:
        out = []
        for w in words:
            t = self.ref_token(w)
            if t is not None:
                out.append(t)
        return out


DEFAULT_FILTER = HubFilter()


def filter_tokens(words: Iterable[str], side: str = "hyp", hub_filter: Optional[HubFilter] = None) -> List[str]:
    """Apply :class:`HubFilter` to ``words`` (``side`` = ``"hyp"`` or ``"ref"``)."""
    f = hub_filter if hub_filter is not None else DEFAULT_FILTER
    if side == "hyp":
        return f.hyp(words)
    if side == "ref":
        return f.ref(words)
    raise ValueError(f"filter_tokens: side must be 'hyp' or 'ref', not {side!r}")


def filter_reference(text: str, hub_filter: Optional[HubFilter] = None) -> str:
    """The STM text of one reference transcript (the default ``normalize`` of ``write_stm``)."""
    return " ".join(filter_tokens(text.split(), "ref", hub_filter))
