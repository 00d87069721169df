"""A tiny real graph (flite speech, CMUdict lexicon, a trigram of the toy sentences, a real triphone
GMM) built in mkgraph order and decoded by both backends; likelihoods, k2 form, word times, sweeps,
rescoring, the CLIs and every bad input of the decode issue."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from toy_corpus import TOY_SENTENCES, make_toy_corpus

from asr_bl.decode.acoustic import GmmSource
from asr_bl.decode.decoders import DecoderConfig, make_decoder
from asr_bl.decode.graph import GraphDir, GraphError, make_graph
from asr_bl.decode.lm import LmConfig, build_lm, load_arpa
from asr_bl.hmm.feats import GmmFeatureConfig, compute_gmm_features
from asr_bl.hmm.lang import prepare_lang, read_lexicon, write_lang
from asr_bl.hmm.train import MonoConfig, TriConfig, Utterance, train_mono, train_tri
from asr_bl.hmm.tree import TreeConfig

ACWT = 0.1


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode_toy")
    cuts, lex = make_toy_corpus(d / "corpus")
    cuts.to_file(d / "cuts.jsonl.gz")
    lang = prepare_lang(read_lexicon(lex))
    write_lang(lang, d / "lang")
    feats = compute_gmm_features(cuts, GmmFeatureConfig(), num_jobs=1, progress=False)
    utts = [Utterance(c.id, feats[c.id], lang.words_to_ids(c.supervisions[0].text.split())) for c in cuts]
    mono = train_mono(utts, lang, MonoConfig(num_iters=8, max_iter_inc=5, total_gauss=250,
                                             realign_iters=(1, 2, 3, 5, 7)), num_jobs=1)
    mono.model.save(d / "mono" / "final.mdl")
    tri, _ = train_tri(utts, lang, mono.model, mono.alignments,
                       TriConfig(num_iters=6, max_iter_inc=3, total_gauss=500, realign_iters=(3, 5),
                                 tree=TreeConfig(num_leaves=120, min_leaf_count=15)), num_jobs=1)
    tri.model.save(d / "tri" / "final.mdl")
    (d / "lm_text.txt").write_text("\n".join(TOY_SENTENCES) + "\n")
    build_lm(d / "lm_text.txt", d / "lang" / "words.txt", d / "lm3", LmConfig(order=3))
    build_lm(d / "lm_text.txt", d / "lang" / "words.txt", d / "lm4", LmConfig(order=4), make_fst=False)
    info = make_graph(d / "lang", d / "tri", d / "lm3" / "G.fst", d / "graph")
    return {"dir": d, "cuts": cuts, "info": info}


@pytest.fixture(scope="module")
def decoded(toy):
    graph = GraphDir(toy["dir"] / "graph")
    src = GmmSource(toy["dir"] / "tri")
    src.prepare(toy["cuts"])
    mats = [src.log_likelihoods(c) * ACWT for c in toy["cuts"]]
    out = {b: make_decoder(b, graph, DecoderConfig()).decode(mats) for b in ("k2", "kaldi")}
    return graph, src, mats, out


def test_graph_dir_is_complete_and_hclg_readable_by_openfst(toy):
    d = toy["dir"] / "graph"
    for name in ("HCLG.fst", "HCLG.k2.pt", "words.txt", "phones.txt", "lexicon.txt", "transitions.npz",
                 "graph.json", "log.json", "G.arpa"):
        assert (d / name).is_file(), name
    log = json.loads((d / "log.json").read_text())
    for step in ("LG", "CLG", "Ha", "HCLGa", "HCLG", "k2"):
        assert log[step]["states"] > 0 and log[step]["arcs"] > 0 and log[step]["seconds"] >= 0
    fstinfo = shutil.which("fstinfo")
    if fstinfo is None:
        pytest.skip("OpenFst's fstinfo is not installed (apt-get install libfst-tools)")
    out = subprocess.run([fstinfo, str(d / "HCLG.fst")], check=True, capture_output=True, text=True).stdout
    info = {line[:50].strip(): line[50:].strip() for line in out.splitlines()}
    assert int(info["# of states"]) == log["HCLG"]["states"]
    assert int(info["# of arcs"]) == log["HCLG"]["arcs"]


def test_hclg_input_labels_are_transition_ids_and_k2_labels_pdf_plus_one(toy):
    import kaldifst

    graph = GraphDir(toy["dir"] / "graph")
    fst = graph.hclg()
    n_tids = graph.info["num_transition_ids"]
    labels = set()
    for s in range(fst.num_states):
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            labels.add(it.value.ilabel)
            it.next()
    assert max(labels) <= n_tids and len(labels - {0}) > 0.5 * n_tids
    fsa = graph.k2_graph()
    lab, tids = fsa.labels, fsa.tids
    emit = lab > 0
    assert torch.equal(lab[emit], torch.from_numpy(graph.tid_pdf).to(torch.int32)[tids[emit].long()] + 1)
    assert bool((lab != 0).all())  # no input epsilons left in the search form
    assert graph.num_pdfs == 120


def test_gmm_likelihoods_equal_the_bindings_decodable(toy):
    from asr_bl._kaldi import import_kaldi

    khg, _ = import_kaldi()
    src = GmmSource(toy["dir"] / "tri")
    cut = toy["cuts"][3]
    src.prepare(toy["cuts"])
    m = src.log_likelihoods(cut).numpy()
    feats = src.features(cut)
    dec = khg.DecodableAmDiagGmmScaled(src.model.am, src.model.tm, feats, 1.0)
    tm, pdf = src.model.tm, src.model.tables.pdf
    for t in range(0, feats.shape[0], 7):
        ref = np.array([dec.log_likelihood(t, tid) for tid in range(1, tm.num_transition_ids + 1)])
        np.testing.assert_allclose(m[t, pdf[1:]], ref, rtol=2e-6, atol=1e-3)


def test_both_backends_decode_the_tiny_graph_to_the_same_words(toy, decoded):
    graph, _, mats, out = decoded
    cuts = toy["cuts"]
    same_words = sum(a.words == b.words for a, b in zip(out["k2"], out["kaldi"]))
    same_ali = sum(np.array_equal(a.tids, b.tids) for a, b in zip(out["k2"], out["kaldi"]))
    assert same_words == len(cuts) and same_ali >= len(cuts) - 1
    for a, b, m in zip(out["k2"], out["kaldi"], mats):
        assert a.ok and b.ok and len(a.tids) == m.shape[0]
        if np.array_equal(a.tids, b.tids):
            assert a.score == pytest.approx(b.score, abs=1e-2)
    errors = words = 0
    import kaldialign

    for c, r in zip(cuts, out["k2"]):
        ref = c.supervisions[0].text.split()
        hyp = [graph.words[w] for w in r.words]
        errors += kaldialign.edit_distance(ref, hyp)["total"]
        words += len(ref)
    assert errors / words < 0.25  # a real recogniser, not a coincidence of two broken ones


def test_alignment_scores_the_matrix(decoded):
    """The best path's score = its graph score + the matrix entries its alignment picks."""
    graph, _, mats, out = decoded
    for r, m in list(zip(out["k2"], mats))[:5]:
        am = float(m[torch.arange(m.shape[0]), torch.from_numpy(graph.tid_pdf[r.tids]).long()].sum())
        lat = r.lattice
        assert r.score - am < 0 and abs(r.score - am) < abs(r.score)  # the rest is the (negative) graph score
        from asr_bl.decode.lattice import Setting, best_path

        p = best_path(lat, ACWT, Setting(1.0 / ACWT, 0.0))
        assert p.words == r.words and np.array_equal(p.tids, r.tids)


def test_no_surviving_token_is_reported_by_both_backends(decoded):
    graph, _, mats, _ = decoded
    short = mats[0][:2]  # two frames: no word (or silence) of this topology fits
    for b in ("k2", "kaldi"):
        r = make_decoder(b, graph, DecoderConfig()).decode([short, mats[1]])
        assert not r[0].ok and r[0].words == [] and r[1].ok


def test_word_times_follow_the_alignment(toy, decoded):
    from asr_bl.decode.ctm import ctm_entries, phone_instances

    graph, _, _, out = decoded
    for c, r in zip(toy["cuts"], out["k2"]):
        words = [graph.words[w] for w in r.words]
        ents = ctm_entries(graph, c, r.tids, words, 0.01)
        assert [e[4] for e in ents] == words
        starts = [e[2] for e in ents]
        assert starts == sorted(starts) and all(e[3] > 0 for e in ents)
        assert ents[-1][2] + ents[-1][3] <= c.duration + 0.011
        segs = phone_instances(graph, r.tids)
        assert sum(n for _, _, n in segs) == len(r.tids)


def test_sweep_and_rescoring_with_the_first_pass_lm_keep_the_1best(toy, decoded):
    from asr_bl.decode.lattice import Setting, rescore_nbest, sweep

    graph, _, _, out = decoded
    lats = {c.id: r.lattice for c, r in zip(toy["cuts"], out["k2"])}
    s0 = Setting(1.0 / ACWT, 0.0)
    hyps = sweep(lats, ACWT, [s0, Setting(6.0, 0.5), Setting(20.0, 0.0)])
    assert all(hyps[s0][c.id] == r.words for c, r in zip(toy["cuts"], out["k2"]))
    g = load_arpa(toy["dir"] / "graph" / "G.arpa")
    big = load_arpa(toy["dir"] / "lm4" / "lm.arpa")
    same = changed = 0
    for r in out["k2"]:
        p = rescore_nbest(r.lattice, ACWT, s0, graph.words, g, g, num_paths=30)
        same += p.words == r.words
        q = rescore_nbest(r.lattice, ACWT, s0, graph.words, g, big, num_paths=30)
        changed += q.words != r.words
        assert len(q.tids) == len(r.tids)
    assert same >= len(toy["cuts"]) - 1  # swapping an LM for itself changes (almost) nothing
    lp = [rescore_nbest(out["k2"][0].lattice, ACWT, s0, graph.words, g, big, num_paths=30).score for _ in range(2)]
    assert lp[0] == lp[1]  # seeded sampling: reproducible


def test_swept_paths_keep_alignments_and_scores_without_the_lattice(toy, decoded):
    """Each setting's kept path is the lattice's best path under it (words, alignment, score), so
    the dev sweep can drop lattices chunk by chunk; rescoring from kept candidates agrees."""
    from asr_bl.decode.lattice import Setting, best_path, choose_rescored, nbest_candidates, sweep_paths

    graph, _, _, out = decoded
    lats = {c.id: r.lattice for c, r in zip(toy["cuts"], out["k2"])}
    settings = [Setting(1.0 / ACWT, 0.0), Setting(6.0, 0.5), Setting(20.0, 1.0)]
    paths = sweep_paths(lats, ACWT, settings)
    for st in settings:
        for u, lat in lats.items():
            ref = best_path(lat, ACWT, st)
            assert list(paths[st][u].words) == ref.words and np.array_equal(paths[st][u].tids, ref.tids)
            assert paths[st][u].score(st) == pytest.approx(ref.score, abs=1e-3)
    g = load_arpa(toy["dir"] / "graph" / "G.arpa")
    for u, lat in list(lats.items())[:4]:
        cands = nbest_candidates(lat, ACWT, settings[0], num_paths=20, extra=[paths[st][u] for st in settings])
        for st in settings:  # the LM swapped for itself: every setting's own 1-best wins
            assert choose_rescored(cands, st, graph.words, g, g).words == list(paths[st][u].words)


def _wav(path, seconds=1.0, rate=8000, channels=1, data=None):
    rng = np.random.default_rng(0)
    x = data if data is not None else (0.01 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    sf.write(str(path), x, rate)
    return path


@pytest.mark.slow
def test_decode_cli_on_a_manifest_with_both_backends(toy, tmp_path, capsys):
    from asr_bl.bin.decode import main

    d = toy["dir"]
    common = ["--manifest", str(d / "cuts.jsonl.gz"), "--model-dir", str(d / "tri"), "--graph-dir", str(d / "graph"),
              "--no-progress"]
    assert main(common + ["--out-dir", str(tmp_path / "k2"), "--rescore-lm", str(d / "lm4")]) == 0
    assert main(common + ["--out-dir", str(tmp_path / "kaldi"), "--backend", "kaldi", "--num-jobs", "2",
                          "--lm-weight", "10", "--wip", "0"]) == 0
    k2s = json.loads((tmp_path / "k2" / "summary.json").read_text())
    ks = json.loads((tmp_path / "kaldi" / "summary.json").read_text())
    assert k2s["setting"]["tuned_here"] and (tmp_path / "k2" / "sweep.json").is_file()
    assert k2s["wer"] < 25 and ks["wer"] < 25
    assert k2s["ctm_wer"] == pytest.approx(k2s["wer"])  # one utterance per recording: CTM == text scoring
    assert "wer" in k2s["rescored"] and (tmp_path / "k2" / "rescored" / "hyp.ctm").is_file()
    hyp = (tmp_path / "kaldi" / "hyp.txt").read_text().splitlines()
    assert len(hyp) == len(toy["cuts"])
    ctm = (tmp_path / "kaldi" / "hyp.ctm").read_text().splitlines()
    assert ctm and all(len(line.split()) == 5 and line.split()[1] == "A" for line in ctm)


def test_decode_cli_bad_audio_is_named_and_skipped(toy, tmp_path, capsys, caplog):
    from asr_bl.bin.decode import main

    d = toy["dir"]
    good = d / "corpus" / "wav" / "toy-slt-000.wav"
    x, rate = sf.read(str(good), dtype="float32")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wav file at all" * 10)
    _wav(tmp_path / "zero.wav", data=np.zeros((0, 1), dtype=np.float32))
    from scipy.signal import resample_poly

    _wav(tmp_path / "wide.wav", rate=16000, data=resample_poly(x, 2, 1).astype(np.float32))
    _wav(tmp_path / "stereo.wav", data=np.stack([x, x[::-1]], axis=1))
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        rc = main([str(good), str(tmp_path / "empty.wav"), str(tmp_path / "garbage.wav"), str(tmp_path / "zero.wav"),
                   str(tmp_path / "wide.wav"), str(tmp_path / "stereo.wav"), "--model-dir", str(d / "tri"),
                   "--graph-dir", str(d / "graph"), "--out-dir", str(out), "--no-progress"])
    assert rc == 0
    failures = (out / "failures.txt").read_text()
    for name in ("empty.wav", "garbage.wav", "zero"):
        assert name in failures
    assert "resampling" in caplog.text and "16000" in caplog.text
    hyp = dict((line.split(" ", 1) + [""])[:2] for line in (out / "hyp.txt").read_text().splitlines())
    assert set(hyp) == {"toy-slt-000", "wide", "stereo-A", "stereo-B"}
    assert hyp["toy-slt-000"].split()[:3] == ["the", "cat", "sat"] and hyp["wide"] == hyp["toy-slt-000"]
    sides = {line.split()[0] + line.split()[1] for line in (out / "hyp.ctm").read_text().splitlines()}
    assert "stereoA" in sides
    assert "empty.wav" in capsys.readouterr().err


def test_decode_cli_short_utterance_and_oov_references_are_scored(toy, tmp_path):
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    from asr_bl.bin.decode import main

    d = toy["dir"]
    good = toy["cuts"][0]
    tiny = Recording.from_file(_wav(tmp_path / "tiny.wav", seconds=0.02), recording_id="tiny")
    cuts = [
        good.with_id("good").map_supervisions(lambda s: s.transform_text(lambda t: t + " zebra")),
        MonoCut(id="tiny", start=0, duration=tiny.duration, channel=0, recording=tiny,
                supervisions=[SupervisionSegment(id="tiny", recording_id="tiny", start=0, duration=tiny.duration,
                                                 text="the cat", speaker="x")]),
    ]
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    out = tmp_path / "out"
    assert main(["--manifest", str(tmp_path / "cuts.jsonl.gz"), "--model-dir", str(d / "tri"), "--graph-dir",
                 str(d / "graph"), "--out-dir", str(out), "--no-progress", "--backend", "kaldi"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["no_surviving_token"] == 1
    assert "tiny no surviving token" in (out / "failures.txt").read_text()
    rep = json.loads((out / "wer.json").read_text())
    assert rep["oov_ref_words"] == 1  # zebra
    assert rep["overall"]["dele"] >= 2  # the tiny utterance's two words
    assert "tiny" in (out / "hyp.txt").read_text()


def test_mismatched_model_and_graph_and_broken_dirs_are_clear_errors(toy, tmp_path):
    d = toy["dir"]
    py = [sys.executable, "-m", "asr_bl.bin.decode"]
    base = ["--manifest", str(d / "cuts.jsonl.gz"), "--out-dir", str(tmp_path / "o"), "--no-progress"]

    def run(*extra):
        return subprocess.run(py + base + list(extra), capture_output=True, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})

    r = run("--model-dir", str(d / "mono"), "--graph-dir", str(d / "graph"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("asr_bl-decode: error:") and "120 pdfs" in r.stderr and str(d / "graph") in r.stderr
    broken = tmp_path / "graph"
    shutil.copytree(d / "graph", broken)
    (broken / "words.txt").unlink()
    r = run("--model-dir", str(d / "tri"), "--graph-dir", str(broken))
    assert r.returncode == 2 and "words.txt" in r.stderr and "asr_bl-mkgraph" in r.stderr
    empty = tmp_path / "netdir"
    empty.mkdir()
    r = run("--model-dir", str(empty), "--graph-dir", str(d / "graph"))
    assert r.returncode == 2 and str(empty) in r.stderr
    assert not (tmp_path / "o" / "hyp.txt").exists()
    with pytest.raises(GraphError, match="pdfs"):
        mono = GmmSource(d / "mono")
        GraphDir(d / "graph").check_model(mono.num_pdfs, mono.tree_fingerprint, "mono")


def test_mkgraph_cli_rebuilds_only_when_an_input_changed(toy, tmp_path, caplog):
    from asr_bl.bin.mkgraph import main

    d = toy["dir"]
    lm = tmp_path / "lm"
    shutil.copytree(d / "lm3", lm)
    args = ["--lang", str(d / "lang"), "--model-dir", str(d / "tri"), "--lm-dir", str(lm), "--out-dir",
            str(tmp_path / "g"), "--no-k2"]
    assert main(args) == 0
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "skipping" in caplog.text
    build_lm(d / "lm_text.txt", d / "lang" / "words.txt", lm, LmConfig(order=2))
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "redoing" in caplog.text and "G.fst" in caplog.text
    assert main(["--lang", str(d / "lang"), "--model-dir", str(d / "tri"), "--lm-dir", str(tmp_path / "nolm"),
                 "--out-dir", str(tmp_path / "g2")]) == 2


def test_decode_cli_skips_a_finished_decode_and_writes_extra_settings(toy, tmp_path, caplog):
    """A second identical decode is skipped (nothing rewritten); --force redoes it; --extra-setting
    writes that setting's 1-best beside the tuned one; --stm scores against the given STM."""
    from asr_bl.bin.decode import main

    d = toy["dir"]
    out = tmp_path / "k2"
    args = ["--manifest", str(d / "cuts.jsonl.gz"), "--model-dir", str(d / "tri"), "--graph-dir", str(d / "graph"),
            "--out-dir", str(out), "--no-progress", "--lm-weight", "10", "--wip", "0.5", "--extra-setting", "12,0"]
    assert main(args) == 0
    extra = out / "sweep" / "lmwt_12_wip_0.txt"
    assert len(extra.read_text().splitlines()) == len(toy["cuts"])
    scored = json.loads((out / "summary.json").read_text())["extra_settings"]["lmwt12_wip0"]
    assert 0 <= scored["wer"] <= 100 and scored["lm_weight"] == 12
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "decode: skipping" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args + ["--force"]) == 0
    assert "decode: redoing (--force)" in caplog.text
    assert (out / "hyp.txt").stat().st_mtime_ns != mtimes[out / "hyp.txt"]

    # the dev sweep (lattices dropped per chunk) picks a setting; decoding at it gives the same output,
    # and rescoring with the first-pass LM itself changes nothing
    tuned = tmp_path / "tuned"
    assert main(args[:-6] + ["--out-dir", str(tuned), "--rescore-lm", str(d / "lm3")]) == 0
    best = json.loads((tuned / "sweep.json").read_text())
    again = tmp_path / "again"
    assert main(args[:-6] + ["--out-dir", str(again), "--lm-weight", str(best["best_lm_weight"]),
                             "--wip", str(best["best_wip"])]) == 0
    for name in ("hyp.txt", "hyp.ctm"):
        assert (tuned / name).read_text() == (again / name).read_text()
    assert (tuned / "rescored" / "hyp.txt").read_text() == (tuned / "hyp.txt").read_text()

    # --stm: the given STM's segments of the decoded recordings are the CTM's references
    ref = (out / "ref.stm").read_text().splitlines()
    body = [line for line in ref if not line.startswith(";;")]
    first = body[0].split()
    stm = tmp_path / "given.stm"
    stm.write_text("\n".join(ref + [f"other_rec A spk 0.0 1.0 {' '.join(first[5:])}"]) + "\n")
    out2 = tmp_path / "with_stm"
    assert main(args[:-6] + ["--out-dir", str(out2), "--lm-weight", "10", "--wip", "0.5", "--stm", str(stm)]) == 0
    assert "other_rec" not in (out2 / "ref.stm").read_text()
    s1 = json.loads((out / "summary.json").read_text())
    s2 = json.loads((out2 / "summary.json").read_text())
    assert s2["ctm_wer"] == pytest.approx(s1["ctm_wer"])
    only_other = tmp_path / "other.stm"
    only_other.write_text(f"other_rec A spk 0.0 1.0 {' '.join(first[5:])}\n")
    assert main(args[:-6] + ["--out-dir", str(tmp_path / "bad"), "--lm-weight", "10", "--stm", str(only_other)]) == 2
    assert not (tmp_path / "bad" / "hyp.txt").exists()  # refused before decoding
    assert main(args[:-6] + ["--out-dir", str(tmp_path / "bad"), "--stm", str(tmp_path / "missing.stm")]) == 2
