"""The environment works as one piece: real operations of each component, not imports alone.

The exact pins (CPython 3.9, torch 1.13.1, ...) are checked by the set-up command
(``bash tools/setup_env.sh``), not here: the suite also runs on torch 2.x / Python 3.12, where a
test that needs k2 or the Kaldi bindings is skipped, naming the missing package, only when that
package is not installed (in the pinned environment, as in CI, nothing skips).
"""
import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest


def require_kaldi() -> None:
    """Skip when kaldi-hmm-gmm or kaldifst is not installed (imported only through asr_bl._kaldi)."""
    for name in ("kaldi_hmm_gmm", "kaldifst"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install -r requirements.txt)")


def test_k2_intersect_tiny_fsas():
    k2 = pytest.importorskip("k2", reason="k2 is not installed (pip install -r requirements.txt)")

    # a accepts "1 2" or "1 3"; b accepts "1 2" only: the intersection is the path 1 2 with both scores.
    a = k2.Fsa.from_str("0 1 1 0.5\n1 2 2 0.25\n1 2 3 0.125\n2 3 -1 0\n3", acceptor=True)
    b = k2.Fsa.from_str("0 1 1 1.0\n1 2 2 2.0\n2 3 -1 0\n3", acceptor=True)
    c = k2.intersect(k2.arc_sort(a), k2.arc_sort(b), treat_epsilons_specially=True)
    c = k2.connect(c)
    labels = [int(x) for x in c.labels.tolist()]
    assert labels == [1, 2, -1]
    total = k2.create_fsa_vec([c]).get_tot_scores(use_double_scores=True, log_semiring=True)
    assert math.isclose(float(total[0]), 0.5 + 0.25 + 1.0 + 2.0, rel_tol=1e-6)


def _linear_fst(kaldifst, labels):
    fst = kaldifst.StdVectorFst()
    s = fst.add_state()
    fst.start = s
    for ilabel, olabel in labels:
        t = fst.add_state()
        fst.add_arc(s, kaldifst.StdArc(ilabel, olabel, 0.0, t))
        s = t
    fst.set_final(s, 0.0)
    return fst


def test_kaldifst_compose_and_kaldi_hmm_gmm_consume_it():
    require_kaldi()
    from asr_bl._kaldi import import_kaldi

    khg, kaldifst = import_kaldi()
    a = _linear_fst(kaldifst, [(1, 2), (3, 4)])
    b = _linear_fst(kaldifst, [(2, 5), (4, 6)])
    kaldifst.arcsort(a, sort_type="olabel")
    c = kaldifst.compose(a, b)
    assert c.num_states == 3
    arcs = [(arc.ilabel, arc.olabel) for s in range(c.num_states) for arc in kaldifst.ArcIterator(c, s)]
    assert arcs == [(1, 5), (3, 6)]

    # The version seam: a kaldi_hmm_gmm object must accept and use an FST made by kaldifst.
    topo = khg.HmmTopology()
    topo_text = (
        "<Topology>\n<TopologyEntry>\n<ForPhones> 1 2 3 </ForPhones>\n"
        "<State> 0 <PdfClass> 0 <Transition> 0 0.5 <Transition> 1 0.5 </State>\n"
        "<State> 1 </State>\n</TopologyEntry>\n</Topology>\n"
    )
    topo.read(topo_text)
    # phone2num_pdf_classes is indexed by phone id (entry 0 = epsilon, unused).
    ctx = khg.monophone_context_dependency([1, 2, 3], topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx, topo)
    assert tm.num_pdfs == 3
    lex = _linear_fst(kaldifst, [(1, 1), (2, 0)])  # phone 1 -> word 1, phone 2 -> eps
    compiler = khg.TrainingGraphCompiler(
        trans_model=tm, ctx_dep=ctx, lex_fst=lex, disambig_syms=[], opts=khg.TrainingGraphCompilerOptions()
    )
    graph = compiler.compile_graph_from_text([1])
    assert graph.num_states > 0


def test_lhotse_fbank_on_8khz_waveform():
    from lhotse import Fbank, FbankConfig

    sr = 8000
    t = np.arange(sr, dtype=np.float32) / sr
    wav = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fb = Fbank(FbankConfig(num_mel_bins=64, sampling_rate=sr, dither=0.0))
    feats = fb.extract(wav, sampling_rate=sr)
    # lhotse's default frame grid (snip_edges=False): one frame per 10 ms, rounded.
    assert feats.shape == (100, 64)
    # The 440 Hz tone lands in a low mel bin: it must be the loudest one.
    assert 3 <= int(np.argmax(feats.mean(axis=0))) <= 20


def test_sentencepiece_round_trip(tmp_path):
    spm = pytest.importorskip("sentencepiece")

    text = tmp_path / "text.txt"
    words = "the cat sat on the mat while the dog ran to the park and back again".split()
    rng = np.random.default_rng(0)
    text.write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(300)))
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "bpe"), vocab_size=40, model_type="bpe"
    )
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "bpe.model"))
    sentence = "the dog sat on the mat"
    ids = sp.encode(sentence)
    assert len(ids) > 0 and sp.decode(ids) == sentence


def test_import_asr_bl_pulls_in_nothing_heavy():
    code = ("import sys, asr_bl; bad = {'k2', 'kaldi_hmm_gmm', 'kaldifst', 'lhotse'} & set(sys.modules); "
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
