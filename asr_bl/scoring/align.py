"""Word alignment exactly as sclite's DP aligner does it (``sclite -F -D``, no ``-T``).

sclite aligns each reference segment (a network: words, optionally deletable words ``(uh)``,
fragments ``th-`` and alternations ``{ a / b c / @ }``) against the hypothesis words assigned to it
(a linear chain for a CTM) by dynamic programming over the two networks' arcs (SCTK
``net_dp.c`` / ``word.c``), with these costs:

=============================================  =====
correct (equal words; ``-F``: fragment match)  0
substitution                                   4
insertion, deletion                            3
deletion of an optionally deletable word       2  (``-D``; scored *correct*, counts as a ref word)
deletion of the null word ``@``                0.001 (not scored at all)
=============================================  =====

and this tie-breaking, which decides the sub/ins/del split whenever two paths cost the same (for
example three substitutions cost 12, as do two deletions plus two insertions): at every cell a
substitution/match wins if it is <= both the deletion and the insertion, otherwise a deletion
wins only if strictly cheaper than the insertion; among equal predecessors the first one wins;
the backtrace follows the stored choices. kaldialign's ``align(..., sclite_mode=True)`` uses the
same costs but prefers deletions/insertions on ties (``sub < min(del, ins)``), so its counts differ
from sclite's on tied paths: that is why the aligner is ours. Its optimal *cost* is the same,
which the tests check against kaldialign.

Fragment matching (``-F``, ``equal_WORD2``): a word ending in ``-`` matches any word starting with
its stem, a word starting with ``-`` any word ending with it; either side may be the fragment.
Words compare case-insensitively (sclite lower-cases unless ``-s``).

Costs are integers (x1000) here; sclite sums floats, which only matters for ties built from many
``@`` deletions (0.001 each), which do not occur in practice.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

__all__ = ["RefArc", "RefNet", "parse_ref_text", "align_segment", "AlignedPair", "SegmentCounts"]

COST_SUB = 4000
COST_INSDEL = 3000
COST_OPTDEL = 2000
COST_NULL_INSDEL = 1
COST_NULL_SUB_NULL = 1000
NULL_WORD = "@"


@dataclass
class RefArc:
    """One reference word (arc of the reference network).

    ``value`` is the word as written (``(uh)`` keeps its parentheses), ``word`` the comparison text
    (parentheses removed for optionally deletable words), ``preds`` the indices of the arcs that
    can precede it (0 = the network's start), in sclite's order.
    """

    value: str
    word: str
    opt_del: bool
    frag: bool
    preds: Tuple[int, ...]

    @property
    def is_null(self) -> bool:
        return self.value == NULL_WORD


@dataclass
class RefNet:
    """A reference segment as a DAG of words: ``arcs[0]`` is the start (no word), ``finals`` the
    arcs that can end it (``(0,)`` for an empty reference)."""

    arcs: List[Optional[RefArc]]
    finals: Tuple[int, ...]

    @property
    def is_linear(self) -> bool:
        return all(a is None or a.preds == (i - 1,) for i, a in enumerate(self.arcs)) and \
            self.finals == (len(self.arcs) - 1,)

    def words(self) -> List[str]:
        """The words of the first alternative of every alternation (for vocabulary checks)."""
        return [a.word for a in self.arcs[1:] if a is not None and not a.is_null]


def _make_arc(token: str, preds: Tuple[int, ...], fragments: bool, opt_deletable: bool) -> RefArc:
    tok = token.lower()
    opt_del = opt_deletable and len(tok) >= 2 and tok[0] == "(" and tok[-1] == ")"
    word = tok[1:-1] if opt_del else tok
    frag = fragments and (tok.endswith("-") or tok.startswith("-") or (opt_del and len(tok) >= 2 and tok[-2] == "-"))
    return RefArc(value=tok, word=word, opt_del=opt_del, frag=frag, preds=preds)


def parse_ref_text(text: str, fragments: bool = True, opt_deletable: bool = True,
                   where: str = "reference") -> RefNet:
    """Parse a reference segment's text (STM text field) into a :class:`RefNet`.

    Alternations are written ``{ a / b c / @ }`` (spaces around the braces and slashes, as the GLM
    filters write them); ``@`` is the null word. ``where`` names the source in error messages.
    """
    tokens = text.split()
    arcs: List[Optional[RefArc]] = [None]
    heads: Tuple[int, ...] = (0,)  # arcs the next word follows
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "{":
            depth_end = i + 1
            alternatives: List[List[str]] = [[]]
            while depth_end < len(tokens) and tokens[depth_end] != "}":
                t = tokens[depth_end]
                if t == "{":
                    raise ValueError(f"{where}: nested alternation in {text!r}")
                if t == "/":
                    alternatives.append([])
                else:
                    alternatives[-1].append(t)
                depth_end += 1
            if depth_end >= len(tokens):
                raise ValueError(f"{where}: unclosed alternation '{{' in {text!r}")
            new_heads: List[int] = []
            for alt in alternatives:
                if not alt:
                    raise ValueError(f"{where}: empty alternative in {text!r} (write '@' for nothing)")
                prev = heads
                for t in alt:
                    arcs.append(_make_arc(t, prev, fragments, opt_deletable))
                    prev = (len(arcs) - 1,)
                new_heads.extend(prev)
            heads = tuple(new_heads)
            i = depth_end + 1
            continue
        if tok in ("}", "/"):
            raise ValueError(f"{where}: stray {tok!r} outside an alternation in {text!r}")
        arcs.append(_make_arc(tok, heads, fragments, opt_deletable))
        heads = (len(arcs) - 1,)
        i += 1
    return RefNet(arcs=arcs, finals=heads)


def _hyp_is_frag(h: str, fragments: bool) -> bool:
    return fragments and (h.endswith("-") or h.startswith("-"))


def _frag_equal(it1: str, it2: str, frag: bool) -> bool:
    """sclite's ``equal_WORD2``: exact equality, or with fragments a stem match."""
    if frag:
        l1, l2 = len(it1), len(it2)
        if l1 > 1 and it1[0] == "-":
            return l2 >= l1 - 1 and it2[l2 - (l1 - 1):] == it1[1:]
        if l1 > 1 and it1[-1] == "-":
            return it2[: l1 - 1] == it1[:-1] and l2 >= l1 - 1
        if l2 > 1 and it2[0] == "-":
            return l1 >= l2 - 1 and it1[l1 - (l2 - 1):] == it2[1:]
        if l2 > 1 and it2[-1] == "-":
            return it1[: l2 - 1] == it2[:-1] and l1 >= l2 - 1
    return it1 == it2


# One aligned pair: (ref value or None, hyp word or None, eval) with eval in C S D I.
AlignedPair = Tuple[Optional[str], Optional[str], str]


@dataclass
class SegmentCounts:
    ref_words: int
    corr: int
    sub: int
    dele: int
    ins: int
    pairs: List[AlignedPair]


def align_segment(ref: RefNet, hyp: Sequence[str], fragments: bool = True) -> SegmentCounts:
    """Align one reference network with a hypothesis word chain the way sclite does.

    ``hyp`` words are compared lower-cased. Returns the counts and the alignment (ref value, hyp
    word, ``C``/``S``/``D``/``I``), optionally deletable deleted words as ``C`` with hyp ``None``.
    """
    hyp = [h.lower() for h in hyp]
    arcs = ref.arcs
    na, nb = len(arcs), len(hyp) + 1
    hfrag = [False] + [_hyp_is_frag(h, fragments) for h in hyp]
    inf = float("inf")
    # cost, back_a, back_b per cell; row a, column b.
    cost = [[inf] * nb for _ in range(na)]
    back_a = [[-1] * nb for _ in range(na)]
    back_b = [[-1] * nb for _ in range(na)]
    cost[0][0] = 0

    def del_cost(arc: RefArc) -> int:
        if arc.is_null:
            return COST_NULL_INSDEL
        return COST_OPTDEL if arc.opt_del else COST_INSDEL

    def sub_cost(arc: RefArc, b: int) -> int:
        h = hyp[b - 1]
        if arc.is_null:
            return COST_NULL_SUB_NULL if h == NULL_WORD else COST_SUB
        return 0 if _frag_equal(arc.word, h, arc.frag or hfrag[b]) else COST_SUB

    row0 = cost[0]
    for b in range(1, nb):  # margin: insertions before any reference word
        row0[b] = row0[b - 1] + COST_INSDEL
        back_a[0][b] = 0
        back_b[0][b] = b - 1
    for a in range(1, na):
        arc = arcs[a]
        assert arc is not None
        dc = del_cost(arc)
        best, best_p = inf, -1
        for p in arc.preds:
            if cost[p][0] < best:
                best, best_p = cost[p][0], p
        cost[a][0] = best + dc
        back_a[a][0] = best_p
        back_b[a][0] = 0
        crow, brow_a, brow_b = cost[a], back_a[a], back_b[a]
        preds = arc.preds
        single = len(preds) == 1
        for b in range(1, nb):
            ins = crow[b - 1] + COST_INSDEL
            if single:
                p = preds[0]
                dl = cost[p][b] + dc
                dl_p = p
                sb = cost[p][b - 1] + sub_cost(arc, b)
                sb_p = p
            else:
                dl, dl_p = inf, -1
                sb, sb_p = inf, -1
                for p in preds:
                    if cost[p][b] < dl:
                        dl, dl_p = cost[p][b], p
                    if cost[p][b - 1] < sb:
                        sb, sb_p = cost[p][b - 1], p
                dl += dc
                sb += sub_cost(arc, b)
            if sb <= dl and sb <= ins:
                crow[b], brow_a[b], brow_b[b] = sb, sb_p, b - 1
            elif dl < ins:
                crow[b], brow_a[b], brow_b[b] = dl, dl_p, b
            else:
                crow[b], brow_a[b], brow_b[b] = ins, a, b - 1
    # Termination: the first cheapest final arc.
    b = nb - 1
    a, best = -1, inf
    for f in ref.finals:
        if cost[f][b] < best:
            a, best = f, cost[f][b]
    pairs: List[AlignedPair] = []
    while a > 0 or b > 0:
        la, lb = back_a[a][b], back_b[a][b]
        if la == a:  # insertion
            pairs.append((None, hyp[b - 1], "I"))
        elif lb == b:  # deletion
            arc = arcs[a]
            assert arc is not None
            if not arc.is_null:
                pairs.append((arc.value, None, "C" if arc.opt_del else "D"))
        else:
            arc = arcs[a]
            assert arc is not None
            h = hyp[b - 1]
            if not (arc.is_null and h == NULL_WORD):
                ok = _frag_equal(arc.word, h, arc.frag or hfrag[b]) and not arc.is_null
                pairs.append((arc.value, h, "C" if ok else "S"))
        a, b = la, lb
    pairs.reverse()
    corr = sum(1 for p in pairs if p[2] == "C")
    sub = sum(1 for p in pairs if p[2] == "S")
    dele = sum(1 for p in pairs if p[2] == "D")
    ins = sum(1 for p in pairs if p[2] == "I")
    return SegmentCounts(ref_words=corr + sub + dele, corr=corr, sub=sub, dele=dele, ins=ins, pairs=pairs)
