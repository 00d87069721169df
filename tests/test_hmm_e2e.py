"""End to end (slow): the embedded corpus' tiny build -> lang -> mono -> tri1 -> tri2 -> alignments,
through the asr_bl-gmm CLI exactly as the recipe runs it. Run with ``pytest -m slow``."""
import json

import numpy as np
import pytest

from asr_bl.features import FbankConfig, num_frames


@pytest.mark.slow
def test_gmm_chain_on_tiny_synthetic_corpus(tmp_path):
    from lhotse import CutSet, load_manifest

    from asr_bl.bin.gmm import main
    from asr_bl.corpus.build import build_corpus

    corpus = tmp_path / "corpus"
    build_corpus(str(corpus), size="tiny", seed=0, num_jobs=2)
    cuts = CutSet.from_manifests(
        load_manifest(corpus / "synth_recordings_train.jsonl.gz"),
        load_manifest(corpus / "synth_supervisions_train.jsonl.gz"),
    ).trim_to_supervisions(keep_overlapping=False).to_eager()
    cuts_path = tmp_path / "synth_cuts_train.jsonl.gz"
    cuts.to_file(cuts_path)
    lang, exp = tmp_path / "lang", tmp_path / "exp"
    assert main(["prepare-lang", "--lexicon", str(corpus / "lexicon.txt"), "--out-dir", str(lang)]) == 0
    common = ["--cuts", str(cuts_path), "--lang", str(lang), "--num-jobs", "2"]
    assert main(["train-mono", *common, "--out-dir", str(exp / "mono"),
                 "--num-iters", "15", "--total-gauss", "300"]) == 0
    assert main(["train-tri", *common, "--ali-dir", str(exp / "mono"), "--num-leaves", "150",
                 "--min-leaf-count", "20", "--num-iters", "12", "--out-dir", str(exp / "tri1")]) == 0
    assert main(["train-tri", *common, "--ali-dir", str(exp / "tri1"), "--num-leaves", "200",
                 "--min-leaf-count", "20", "--num-iters", "12", "--out-dir", str(exp / "tri2")]) == 0
    assert main(["align", *common, "--model-dir", str(exp / "tri2"), "--out-dir", str(exp / "tri2_ali")]) == 0

    def summary(stage):
        return json.loads((exp / stage / "done.json").read_text())["summary"]

    mono, tri1, tri2, ali = summary("mono"), summary("tri1"), summary("tri2"), summary("tri2_ali")
    n = len(cuts)
    for s in (mono, tri1, tri2, ali):
        assert s["aligned"] + s["failed"] == n and s["failed"] <= max(1, n // 20)
    assert tri1["num_pdfs"] == 150 and tri2["num_pdfs"] == 200 == ali["num_pdfs"]
    assert tri1["final_acoustic_loglike_per_frame"] > mono["final_acoustic_loglike_per_frame"]
    assert tri2["final_acoustic_loglike_per_frame"] >= tri1["final_acoustic_loglike_per_frame"] - 0.5
    out = load_manifest(exp / "tri2_ali" / "synth_cuts_train.jsonl.gz")
    for cut in out:
        pdf = cut.load_custom("pdf_ali")
        assert pdf.shape == (num_frames(cut.num_samples, cut.sampling_rate, FbankConfig()),)
        assert pdf.min() >= 0 and pdf.max() < 200
    counts = np.array((exp / "tri2_ali" / "pdf_counts").read_text().strip("[] \n").split(), dtype=float)
    assert counts.sum() == ali["frames"]
