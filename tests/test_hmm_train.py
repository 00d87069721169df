"""GMM-HMM training on a tiny real corpus (flite speech): features on the network frame grid,
mono -> tri, alignment consistency, reproducibility, convert-ali, exports and the CLI."""
import json

import numpy as np
import pytest
from toy_corpus import make_toy_corpus

from asr_bl._kaldi import import_kaldi
from asr_bl.features import FbankConfig, num_frames
from asr_bl.hmm.export import read_int_ark, read_pdf_counts, write_alignment_outputs
from asr_bl.hmm.feats import GmmFeatureConfig, compute_gmm_features
from asr_bl.hmm.lang import prepare_lang, read_lexicon
from asr_bl.hmm.model import GmmHmm, convert_alignment, convert_alignments, phone_segments
from asr_bl.hmm.train import (
    AlignOptions,
    MonoConfig,
    ShardWorker,
    TriConfig,
    Utterance,
    align_with_model,
    train_mono,
    train_tri,
)
from asr_bl.hmm.tree import TreeConfig

MONO = dict(num_iters=8, max_iter_inc=5, total_gauss=250, realign_iters=(1, 2, 3, 5, 7))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    cuts, lex = make_toy_corpus(d)
    return d, cuts, lex


@pytest.fixture(scope="module")
def lang(corpus):
    return prepare_lang(read_lexicon(corpus[2]))


@pytest.fixture(scope="module")
def utts(corpus, lang):
    cuts = corpus[1]
    feats = compute_gmm_features(cuts, GmmFeatureConfig(), num_jobs=2, progress=False)
    return [Utterance(c.id, feats[c.id], lang.words_to_ids(c.supervisions[0].text.split())) for c in cuts]


@pytest.fixture(scope="module")
def mono(utts, lang):
    return train_mono(utts, lang, MonoConfig(**MONO), num_jobs=2)


@pytest.fixture(scope="module")
def tri(utts, lang, mono):
    cfg = TriConfig(num_iters=6, max_iter_inc=3, total_gauss=500, realign_iters=(3, 5),
                    tree=TreeConfig(num_leaves=120, min_leaf_count=15))
    return train_tri(utts, lang, mono.model, mono.alignments, cfg, num_jobs=2)


def test_features_on_the_network_frame_grid(corpus, utts):
    cuts = corpus[1]
    for cut, u in zip(cuts, utts):
        assert u.feats.shape == (num_frames(cut.num_samples, 8000, FbankConfig()), 39)
        assert np.isfinite(u.feats).all()
    # Per-side mean normalisation: static cepstra of each side average to ~0.
    assert np.abs(utts[0].feats[:, :13].mean(0)).max() < 1e-3


def _check_alignment(lang, model, utt, ali, lexicon):
    tables = model.tables
    assert ali.shape == (utt.feats.shape[0],)
    assert np.array_equal(tables.pdf[ali], [model.tm.transition_id_to_pdf(int(t)) for t in ali])
    segs = phone_segments(tables, ali)
    assert sum(n for _, _, n in segs) == len(ali)
    for phone, _, n in segs:  # every phone instance lasts at least its HMM's minimum length
        assert n >= model.topo.min_length(phone)
    speech = [lang.phones[p] for p, _, _ in segs if lang.phones[p] != "sil"]
    # The non-silence phones spell one pronunciation of each word, in order.
    words = [lang.words[w] for w in utt.word_ids]
    pos = 0
    for w in words:
        prons = [p for ww, p in lexicon if ww == w]
        match = [p for p in prons if speech[pos:pos + len(p)] == p]
        assert match, (utt.id, w, speech)
        pos += len(match[0])
    assert pos == len(speech)


def test_mono_aligns_every_utterance_consistently(mono, utts, lang):
    n_ok = len(mono.alignments)
    assert n_ok + len(mono.failures) == len(utts)
    assert n_ok >= len(utts) - 1, mono.failures  # every utterance aligned or reported with a reason
    assert all(r for r in mono.failures.values())
    by_id = {u.id: u for u in utts}
    for uid, ali in mono.alignments.items():
        _check_alignment(lang, mono.model, by_id[uid], ali, lang.lexicon)
    ll = [e["loglike_per_frame"] for e in mono.log if "loglike_per_frame" in e]
    assert ll[-1] > ll[0] + 3.0  # EM improves the likelihood
    assert mono.model.am.num_gauss > mono.model.num_pdfs  # mixtures grew


def test_same_seed_same_alignments(mono, utts, lang):
    again = train_mono(utts, lang, MonoConfig(**MONO), num_jobs=2)
    assert again.alignments.keys() == mono.alignments.keys()
    for k in mono.alignments:
        assert np.array_equal(again.alignments[k], mono.alignments[k])
    assert again.model.to_bytes() == mono.model.to_bytes()


def test_convert_ali_keeps_phones_and_uses_the_tree(mono, tri, utts):
    result, _ = tri
    old, new, tree = mono.model.tables, result.model.tables, result.model.tree
    for ali in list(mono.alignments.values())[:10]:
        conv = convert_alignment(ali, old, new, tree)
        assert conv.shape == ali.shape
        assert np.array_equal(new.phone[conv], old.phone[ali])
        assert np.array_equal(new.hmm_state[conv], old.hmm_state[ali])
        assert np.array_equal(new.trans_index[conv], old.trans_index[ali])
        segs = phone_segments(old, ali)
        for i, (p, start, n) in enumerate(segs):
            left = segs[i - 1][0] if i else 0
            right = segs[i + 1][0] if i + 1 < len(segs) else 0
            for t in range(start, start + n):
                assert new.pdf[conv[t]] == tree.map(left, p, right, int(old.pdf_class[ali[t]]))


def test_batch_convert_equals_per_utterance(mono, tri):
    result, _ = tri
    old, new, tree = mono.model.tables, result.model.tables, result.model.tree
    keys = sorted(mono.alignments)
    batch = convert_alignments([mono.alignments[k] for k in keys], old, new, tree)
    for k, b in zip(keys, batch):
        assert np.array_equal(b, convert_alignment(mono.alignments[k], old, new, tree))


def test_tri_has_configured_leaves_and_beats_mono(tri, mono, utts, lang):
    result, summary = tri
    assert result.model.num_pdfs == 120 == summary["num_pdfs"]
    assert result.model.ctx_dep.context_width == 3
    assert len(result.alignments) + len(result.failures) == len(utts)
    by_id = {u.id: u for u in utts}
    for uid, ali in result.alignments.items():
        _check_alignment(lang, result.model, by_id[uid], ali, lang.lexicon)
    _, _, ll_mono = align_with_model(utts, lang, mono.model, MonoConfig().align, num_jobs=1)
    _, _, ll_tri = align_with_model(utts, lang, result.model, MonoConfig().align, num_jobs=1)
    assert ll_tri > ll_mono


def test_training_learns_transition_probs_and_aligns_with_them(mono, tri, utts, lang):
    """Re-estimated transition probabilities reach the alignment graphs: the final alignments of
    training are exactly those of a fresh alignment by the final model (whose graphs are built
    from scratch), for monophones and triphones."""
    for result in (mono, tri[0]):
        tm = result.model.tm
        self_loop = np.exp(np.asarray(tm.log_probs, dtype=np.float64))[
            [t for t in range(1, tm.num_transition_ids + 1) if tm.is_self_loop(t)]]
        # Training moved the self-loops away from the topology's initial 0.75.
        assert np.abs(self_loop - 0.75).max() > 0.1
        fresh, failures, _ = align_with_model(utts, lang, result.model, AlignOptions(), num_jobs=2)
        assert fresh.keys() == result.alignments.keys() and failures.keys() == result.failures.keys()
        for k, ali in result.alignments.items():
            assert np.array_equal(fresh[k], ali), k


def test_alignment_graph_equals_a_graph_compiled_with_the_current_probs(tri, utts, lang):
    """Kaldi's split (compile-train-graphs at scale 0, gmm-align-compiled adds the model's
    transition probs) gives the same Viterbi path and score as compiling with the probs."""
    khg, _ = import_kaldi()
    model = tri[0].model
    opts = AlignOptions()
    worker = ShardWorker(utts[:4], lang)
    worker.set_model(model.to_bytes())
    assert worker.compile_graphs(opts) == {}
    compiler = khg.TrainingGraphCompiler(
        model.tm, model.ctx_dep, lang.lexicon_fst(), lang.disambig_phone_ids,
        khg.TrainingGraphCompilerOptions(transition_scale=opts.transition_scale, self_loop_scale=opts.self_loop_scale),
    )
    cfg = khg.AlignConfig(beam=opts.beam, retry_beam=opts.retry_beam, careful=False)

    def viterbi(graph, u):
        dec = khg.DecodableAmDiagGmmScaled(model.am, model.tm, u.feats, opts.acoustic_scale)
        res = khg.align_utterance_wrapper(cfg, u.id, opts.acoustic_scale, graph, dec, 0, 0, 0, 0.0, 0)
        assert res[0] == 1
        return np.asarray(res[5]), res[3]

    for u in utts[:4]:
        ali, like = viterbi(worker.alignment_graph(u.id, opts), u)
        ref_ali, ref_like = viterbi(compiler.compile_graph_from_text(u.word_ids), u)
        assert np.array_equal(ali, ref_ali)
        assert like == pytest.approx(ref_like, rel=1e-5)
        # The stored graph is not modified: probabilities are added to a copy each time.
        again, again_like = viterbi(worker.alignment_graph(u.id, opts), u)
        assert np.array_equal(again, ali) and again_like == like
        # Without transition probs the path score differs (the probs are really in the graph).
        _, bare_like = viterbi(worker.graphs[u.id], u)
        assert abs(bare_like - like) > 1e-3


def test_model_save_load_and_exports(tri, utts, lang, corpus, tmp_path):
    result, _ = tri
    result.model.save(tmp_path / "final.mdl")
    loaded = GmmHmm.load(tmp_path / "final.mdl")
    assert loaded.to_bytes() == result.model.to_bytes()
    assert (tmp_path / "tree").read_bytes() == result.model.tree.to_kaldi_bytes()
    cuts = corpus[1]
    summary = write_alignment_outputs(tmp_path / "ali", loaded, lang, result.alignments, result.failures,
                                      cuts, "toy_cuts.jsonl.gz")
    pdf_ark = read_int_ark(tmp_path / "ali" / "pdf_ali.ark.txt")
    counts = read_pdf_counts(tmp_path / "ali" / "pdf_counts")
    assert counts.shape == (loaded.num_pdfs,)
    assert counts.sum() == sum(len(v) for v in pdf_ark.values()) == summary["frames"]
    from lhotse import load_manifest

    out = load_manifest(tmp_path / "ali" / "toy_cuts.jsonl.gz")
    assert len(out) == len(result.alignments)
    # All arrays in one HDF5 file beside the manifest (no per-utterance files, no temporary names left).
    assert sorted(p.name for p in (tmp_path / "ali").iterdir()) == sorted([
        "ali.ark.txt", "failures.txt", "num_pdfs", "pdf_ali.ark.txt", "pdf_counts", "phone_ali.ark.txt",
        "phones.ctm", "toy_cuts.arrays.h5", "toy_cuts.jsonl.gz",
    ])
    assert {c.custom[f].array.storage_path for c in out for f in ("pdf_ali", "phone_ali")} == {
        str(tmp_path / "ali" / "toy_cuts.arrays.h5")
    }
    for cut in out:
        pdf = cut.load_custom("pdf_ali")
        phone = cut.load_custom("phone_ali")
        assert pdf.dtype == np.int32 and pdf.shape == (num_frames(cut.num_samples, 8000, FbankConfig()),)
        assert np.array_equal(pdf, pdf_ark[cut.id])
        assert np.array_equal(phone, loaded.tables.phone[result.alignments[cut.id]])
    ctm = (tmp_path / "ali" / "phones.ctm").read_text().splitlines()
    first = [line.split() for line in ctm if line.startswith(out[0].id + " ")]
    assert sum(float(f[3]) for f in first) == pytest.approx(out[0].duration, abs=0.011)


def test_cli_end_to_end_and_resume(corpus, tmp_path, capsys):
    from asr_bl.bin.gmm import main

    d, cuts, lex = corpus
    small = cuts.subset(first=24)
    cuts_path = tmp_path / "toy_cuts_train.jsonl.gz"
    small.to_file(cuts_path)
    lang_dir, exp = tmp_path / "lang", tmp_path / "exp"
    assert main(["prepare-lang", "--lexicon", str(lex), "--out-dir", str(lang_dir)]) == 0
    common = ["--cuts", str(cuts_path), "--lang", str(lang_dir), "--num-jobs", "2"]
    assert main(["train-mono", *common, "--out-dir", str(exp / "mono"), "--num-iters", "6",
                 "--total-gauss", "200"]) == 0
    assert main(["train-tri", *common, "--out-dir", str(exp / "tri1"), "--ali-dir", str(exp / "mono"),
                 "--num-leaves", "80", "--num-iters", "5", "--min-leaf-count", "10"]) == 0
    assert main(["align", *common, "--out-dir", str(exp / "ali"), "--model-dir", str(exp / "tri1")]) == 0
    done = json.loads((exp / "ali" / "done.json").read_text())["summary"]
    assert done["aligned"] + done["failed"] == 24 and done["num_pdfs"] == 80
    assert (exp / "ali" / "num_pdfs").read_text().strip() == "80"
    capsys.readouterr()
    assert main(["align", *common, "--out-dir", str(exp / "ali"), "--model-dir", str(exp / "tri1")]) == 0
    assert "skipping" in capsys.readouterr().out
    # The reused training alignments are exactly a fresh alignment by the same (final) model:
    # training aligns with the model's current transition probabilities, as a fresh run does.
    assert main(["align", *common, "--out-dir", str(exp / "ali2"), "--model-dir", str(exp / "tri1"),
                 "--reuse-alignments", "0"]) == 0
    for name in ("ali.ark.txt", "pdf_ali.ark.txt"):
        a = read_int_ark(exp / "ali" / name)
        b = read_int_ark(exp / "ali2" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), (name, k)
    assert main(["train-tri", *common, "--out-dir", str(exp / "x"), "--ali-dir", str(exp / "nothing")]) == 1
    assert "train the previous stage first" in capsys.readouterr().err


def test_fbank_gmm_features_on_the_same_grid(corpus):
    cuts = corpus[1].subset(first=2)
    feats = compute_gmm_features(cuts, GmmFeatureConfig(kind="fbank"), progress=False)
    for cut in cuts:
        assert feats[cut.id].shape == (num_frames(cut.num_samples, 8000, FbankConfig()), 64 * 3)


def test_forked_gmm_workers_after_torch_in_the_parent(corpus, lang, mono):
    """The GMM pool forks (shards are shared, not pickled): it must work after the parent has run
    torch ops (here the MFCCs, computed in-process), and give what the in-process pool gives."""
    import torch

    from asr_bl.hmm.train import shard_pool

    cuts = corpus[1].subset(first=6)
    feats = compute_gmm_features(cuts, GmmFeatureConfig(), num_jobs=1, progress=False)  # torch, here
    torch.ones(64, 64) @ torch.ones(64, 64)
    utts = [Utterance(c.id, feats[c.id], lang.words_to_ids(c.supervisions[0].text.split())) for c in cuts]
    with shard_pool(utts, lang, num_jobs=2) as pool:
        assert not pool.in_process and len(pool) == 2
    forked = align_with_model(utts, lang, mono.model, AlignOptions(), num_jobs=2)
    here = align_with_model(utts, lang, mono.model, AlignOptions(), num_jobs=1)
    assert forked[0].keys() == here[0].keys() and len(here[0]) >= 5
    for k in here[0]:
        assert np.array_equal(forked[0][k], here[0][k])
    assert forked[2] == pytest.approx(here[2], rel=1e-6)  # float32 likelihoods summed per shard


def test_config_defaults_are_kaldis_schedules():
    """The dataclasses hold the real defaults (the CLI takes them): Kaldi's realignment schedules
    (train_mono.sh / train_deltas.sh), and 5 Gaussians per leaf unless total_gauss is given."""
    assert MonoConfig().realign_iters == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)
    assert TriConfig().realign_iters == (10, 20, 30)
    assert TriConfig().target_gauss == 10000
    assert TriConfig(tree=TreeConfig(num_leaves=300)).target_gauss == 1500
    assert TriConfig(total_gauss=700, tree=TreeConfig(num_leaves=300)).target_gauss == 700
