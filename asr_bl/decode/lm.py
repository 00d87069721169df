"""N-gram language models for decoding: training, pruning to a target size, perplexity, G.fst.

The trainer is the registry's ``kaldingram`` (Kneser-Ney back-off n-grams computed as SRILM's
``ngram-count -ukndiscount`` does, and Stolcke entropy pruning as SRILM's ``-prune``), used
in-process; ``kaldilm.arpa2fst`` (Kaldi's arpa2fst) turns the ARPA file into ``G.fst``.

Vocabulary. The decoder can only output words of the lang directory's ``words.txt``, so the LM is
trained over exactly that vocabulary:

- LM-text words outside it are mapped to the OOV word (``<unk>``) before counting (their number
  is reported);
- kaldingram has no vocabulary option, so lexicon words that never occur in the LM text would be
  missing from G (and could never be recognised): they are added as unigrams with a floored
  log10 probability (``floor_below_min`` below the rarest seen unigram; their total mass is
  negligible and not renormalised, as Kaldi's recipes do when they add words to an ARPA).

Pruning. ``target_ngrams`` asks for about that many n-grams in total (all orders). Entropy
pruning is monotone in its threshold, so the threshold climbs a geometric ladder (each step
prunes the previous step's model further, SRILM-style successive pruning) until the count falls
to the target; the first step at or below the target is kept (a factor-2 ladder lands within a
few per cent). Unigrams are never pruned.

Perplexity follows SRILM's report: ``ppl`` counts one ``</s>`` per sentence in the denominator;
words outside the LM vocabulary are *OOVs*, counted apart and not scored (the history restarts
after one), so a perplexity is only comparable at the same OOV rate.

``arpa2fst`` runs in a subprocess: ``import kaldilm`` followed by ``import kaldi_hmm_gmm`` in one
process hangs (see DESIGN.md), and the graph builder needs the latter.

On-disk layout of an LM dir (``exp/lm/<name>/``)::

    lm.arpa        the ARPA model (log10, Kaldi/SRILM format)
    G.fst          OpenFst binary, word ids of words.txt, #0 on back-off arcs, <s>/</s> removed
    text.txt       the LM text as trained on (OOVs mapped)
    summary.json   order, thresholds, n-gram counts per order, OOV mapping, perplexities
    done.json      the stage record (asr_bl.stage)
"""
import contextlib
import functools
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from asr_bl.io import Pathlike, atomic_path, write_json, write_text

logger = logging.getLogger(__name__)

__all__ = [
    "LmConfig",
    "read_vocabulary",
    "map_text",
    "train_arpa",
    "prune_to_target",
    "add_missing_unigrams",
    "ngram_counts",
    "perplexity",
    "arpa_to_fst",
    "build_lm",
]

#: words.txt entries that are not words of the LM.
NON_WORDS = ("<eps>", "#0", "<s>", "</s>")


@dataclass
class LmConfig:
    """How an LM is trained (every field changes the result)."""

    #: n-gram order (kaldingram supports 1..5).
    order: int = 3
    #: Prune to about this many n-grams in total (0: no pruning).
    target_ngrams: int = 0
    #: An explicit entropy-pruning threshold instead of a target (0: none).
    prune_threshold: float = 0.0
    #: First threshold of the ladder, and the factor between steps.
    ladder_start: float = 1e-8
    ladder_factor: float = 2.0
    #: Word that LM-text words outside the vocabulary become.
    oov_word: str = "<unk>"
    #: Added unigrams get log10 p = (lowest seen unigram log10 p) - floor_below_min.
    floor_below_min: float = 1.0


def read_vocabulary(words_txt: Pathlike) -> List[str]:
    """The words of a lang dir's ``words.txt`` (without ``<eps>``, ``#0``, ``<s>``, ``</s>``)."""
    path = Path(words_txt)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; pass the lang dir's words.txt (asr_bl-gmm prepare-lang)")
    words = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected 'word id', got {line!r}")
        if parts[0] not in NON_WORDS:
            words.append(parts[0])
    return words


def map_text(lines: Iterable[str], vocab: Set[str], oov_word: str) -> Tuple[List[str], Dict[str, int]]:
    """Lines with out-of-vocabulary words replaced by ``oov_word``; empty lines dropped."""
    out, tokens, mapped = [], 0, 0
    for line in lines:
        words = line.split()
        if not words:
            continue
        tokens += len(words)
        new = []
        for w in words:
            if w in vocab:
                new.append(w)
            else:
                new.append(oov_word)
                mapped += 1
        out.append(" ".join(new))
    return out, {"sentences": len(out), "tokens": tokens, "oov_tokens_mapped": mapped}


@contextlib.contextmanager
def _quiet_kaldingram() -> Iterator[None]:
    """kaldingram draws tqdm bars for every step; a library call keeps stderr for the log."""
    import kaldingram.prune
    import kaldingram.train
    from tqdm import tqdm

    saved = kaldingram.train.tqdm, kaldingram.prune.tqdm
    quiet = functools.partial(tqdm, disable=True)
    kaldingram.train.tqdm = kaldingram.prune.tqdm = quiet
    try:
        yield
    finally:
        kaldingram.train.tqdm, kaldingram.prune.tqdm = saved


def train_arpa(text_file: Pathlike, order: int) -> str:
    """A Kneser-Ney ARPA model of ``text_file`` (one sentence per line) as a string."""
    import io

    from kaldingram.train import NgramCounts

    if not 1 <= order <= 5:
        raise ValueError(f"LM order must be 1..5 (kaldingram), got {order}")
    with _quiet_kaldingram():
        counts = NgramCounts(order)
        counts.add_raw_counts_from_file(str(text_file))
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        buf = io.StringIO()
        counts.print_as_arpa(fout=buf)
    return buf.getvalue()


def _load(arpa: str) -> Any:
    from kaldingram.prune import ArpaParser

    with _quiet_kaldingram():
        return ArpaParser().loads(arpa)[0]


def _dump(lm: Any) -> str:
    from kaldingram.prune import ArpaParser

    with _quiet_kaldingram():
        return ArpaParser().dumps(lm)


def ngram_counts(lm: Any) -> Dict[int, int]:
    """``{order: number of n-grams}`` of a parsed model (kaldingram ``Arpa``)."""
    return {int(o): int(c) for o, c in lm.counts()}


def _prune(lm: Any, threshold: float) -> None:
    from kaldingram.prune import prune

    with _quiet_kaldingram():
        prune(lm, threshold, 2)  # minorder 2: the vocabulary (unigrams) stays


def prune_to_target(lm: Any, config: LmConfig) -> Tuple[Any, Dict[str, Any]]:
    """Prune ``lm`` by ``config.prune_threshold`` or towards ``config.target_ngrams``; returns the model and a log."""
    log: Dict[str, Any] = {"before": ngram_counts(lm)}
    if config.prune_threshold > 0:
        _prune(lm, config.prune_threshold)
        log.update(threshold=config.prune_threshold, after=ngram_counts(lm))
        return lm, log
    if config.target_ngrams <= 0 or sum(ngram_counts(lm).values()) <= config.target_ngrams:
        log.update(threshold=0.0, after=ngram_counts(lm))
        return lm, log
    target = config.target_ngrams
    steps = []
    thr = config.ladder_start
    for _ in range(80):
        _prune(lm, thr)
        total = sum(ngram_counts(lm).values())
        steps.append({"threshold": thr, "ngrams": total})
        logger.info("LM pruning: threshold %.3g -> %d n-grams (target %d)", thr, total, target)
        if total <= target:
            break
        thr *= config.ladder_factor
    log.update(threshold=thr, ladder=steps, after=ngram_counts(lm))
    return lm, log


def add_missing_unigrams(lm: Any, vocab: Sequence[str], floor_below_min: float) -> List[str]:
    """Add every ``vocab`` word the model lacks as a unigram with a floored probability; returns them."""
    unigrams = lm._ngrams[0][()]
    seen = [p for w, p in unigrams.items() if w != "<s>"]
    floor = min(seen) - floor_below_min
    missing = [w for w in vocab if w not in unigrams]
    for w in missing:
        lm.add_entry((w,), floor, bo=0.0)
    lm.update_counts()
    return missing


def perplexity(lm: Any, lines: Iterable[str]) -> Dict[str, Any]:
    """SRILM-style perplexity of ``lines``; words outside the model are OOVs, counted and skipped."""
    order = lm.order()
    vocab = lm.vocabulary(sort=False)
    logprob, words, sents, oovs = 0.0, 0, 0, 0
    for line in lines:
        toks = line.split()
        if not toks:
            continue
        sents += 1
        hist: List[str] = ["<s>"]
        for w in toks + ["</s>"]:
            if w != "</s>" and w not in vocab:
                oovs += 1
                hist = []
                continue
            ngram = tuple(hist[-(order - 1):] + [w]) if order > 1 else (w,)
            logprob += lm.log_p_raw(ngram)
            if w != "</s>":
                words += 1
            hist.append(w)
    denom = words + sents
    return {
        "sentences": sents,
        "words": words + oovs,
        "oovs": oovs,
        "oov_rate": oovs / max(words + oovs, 1),
        "logprob10": logprob,
        "ppl": 10 ** (-logprob / denom) if denom else float("inf"),
        "ppl1": 10 ** (-logprob / words) if words else float("inf"),
    }


def arpa_to_fst(arpa: Pathlike, words_txt: Pathlike, out_fst: Pathlike) -> None:
    """``G.fst`` from an ARPA file (Kaldi's arpa2fst, ``#0`` on back-off arcs), in a subprocess."""
    code = (
        "import sys, kaldilm\n"
        "kaldilm.arpa2fst(input_arpa=sys.argv[1], output_fst=sys.argv[2], disambig_symbol='#0',\n"
        "                 read_symbol_table=sys.argv[3], max_arpa_warnings=-1)\n"
    )
    with atomic_path(out_fst) as tmp:
        r = subprocess.run([sys.executable, "-c", code, str(arpa), str(tmp), str(words_txt)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"arpa2fst failed on {arpa}: {r.stderr.strip()[-2000:]}")
        skipped = [ln for ln in r.stderr.splitlines() if "not in symbol table" in ln or "Skipped" in ln]
        if skipped:
            raise RuntimeError(f"arpa2fst: {arpa} has words outside {words_txt}: {skipped[:3]}")


def build_lm(
    text: Pathlike,
    words_txt: Pathlike,
    out_dir: Pathlike,
    config: LmConfig,
    dev_text: Optional[Pathlike] = None,
    make_fst: bool = True,
) -> Dict[str, Any]:
    """Train, prune, complete the vocabulary, write ``lm.arpa`` (+ ``G.fst``) and the summary into ``out_dir``."""
    import time

    t0 = time.time()
    out_dir = Path(out_dir)
    text = Path(text)
    if not text.is_file():
        raise FileNotFoundError(f"{text}: LM text not found; give one sentence per line "
                                f"(the recipe's data/lm_text.txt)")
    vocab = read_vocabulary(words_txt)
    if config.oov_word not in vocab:
        raise ValueError(f"{words_txt}: the OOV word {config.oov_word!r} is not in the vocabulary; pass --oov-word")
    lines, text_stats = map_text(text.read_text(encoding="utf-8").splitlines(), set(vocab), config.oov_word)
    if not lines:
        raise ValueError(f"{text}: no words; the LM text is empty")
    write_text(out_dir / "text.txt", "\n".join(lines) + "\n")
    arpa = train_arpa(out_dir / "text.txt", config.order)
    lm = _load(arpa)
    trained = ngram_counts(lm)
    # Before pruning, so that the target counts the final model (pruning never touches unigrams).
    missing = add_missing_unigrams(lm, vocab, config.floor_below_min)
    lm, prune_log = prune_to_target(lm, config)
    with atomic_path(out_dir / "lm.arpa") as tmp:
        tmp.write_text(_dump(lm), encoding="utf-8")
    if make_fst:
        arpa_to_fst(out_dir / "lm.arpa", words_txt, out_dir / "G.fst")
    summary: Dict[str, Any] = {
        "config": asdict(config),
        "text": text_stats,
        "ngrams_trained": trained,
        "ngrams": ngram_counts(lm),
        "ngrams_total": sum(ngram_counts(lm).values()),
        "vocabulary": len(vocab),
        "added_unigrams": len(missing),
        "pruning": prune_log,
        "seconds": round(time.time() - t0, 1),
    }
    if dev_text is not None:
        summary["dev_perplexity"] = perplexity(lm, Path(dev_text).read_text(encoding="utf-8").splitlines())
    write_json(out_dir / "summary.json", summary)
    return summary


def load_arpa(path: Pathlike) -> Any:
    """A parsed ARPA model (kaldingram ``Arpa``) from a file."""
    return _load(Path(path).read_text(encoding="utf-8"))
