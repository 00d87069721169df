"""The recipe's LDC branch (run.sh --swbd ...): every stage for real on the miniature LDC trees
(tests/ldc_tree.py: shorten SPHERE audio, MS98 + Fisher transcripts, the MSU dictionary, Hub5'00
references, STM and GLM), from asr_bl-prepare to a WER per Hub5'00 set and the summary, then a
re-run that skips everything; and the layout errors of a wrong tree, surfaced by run.sh."""
import json
import subprocess

from ldc_tree import build_eval2000_tree, build_ldc_trees, path_without_sph2pipe
from test_recipe import _copy_recipe, _env, _require_kaldi, _run, assert_rerun_skips_everything

#: Sized for the miniature trees (18 training utterances, 26 s of audio): the tree needs at least one
#: leaf per phone (38), the network is the smallest preset at conf/train_tiny.conf's width.
TINY = ["--num-dev", "4", "--num-leaves-tri1", "50", "--num-leaves-tri2", "60", "--models", "resnet22",
        "--train-conf", "train_tiny"]


def _ldc_args(trees, swbd=None, eval2000=None) -> list:
    """run.sh's LDC options for the miniature trees (LDC2002T43 beside LDC2002S09, Fisher's
    transcript packages beside its audio, as build_ldc_trees lays them out); ``swbd`` and
    ``eval2000`` replace those directories."""
    swbd = swbd or trees.swbd_audio
    eval2000 = eval2000 or trees.eval2000
    return ["--swbd", str(swbd), "--swbd-text", str(trees.swbd_text),
            "--fisher", str(trees.fisher), "--fisher-text", str(trees.fisher),
            "--eval2000", str(eval2000), "--eval2000-text", str(eval2000)]


def _env_without_sph2pipe() -> dict:
    """The test's environment with no sph2pipe on PATH: stage 0 decodes shorten with desphere into data/audio."""
    return dict(_env(), PATH=path_without_sph2pipe())


def test_all_stages_on_the_miniature_ldc_trees(tmp_path):
    """run.sh --swbd ... from stage 0 to the summary, then once more.

    The first run must write the lexicon, LM texts and Hub5'00 STM/GLM under data/, the FLAC cache,
    a WER on test_swb and test_ch for the GMM and the network (scored with data/eval2000.glm), and
    the summary; the installed STM + GLM must score the recipe's CTMs. The second run must skip
    every stage and rewrite no file under data/ and exp/."""
    _require_kaldi()
    trees = build_ldc_trees(tmp_path / "ldc")
    recipe = _copy_recipe(tmp_path)
    env = _env_without_sph2pipe()
    args = _ldc_args(trees) + TINY
    first = _run(args, cwd=recipe, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    data = recipe / "data"
    for name in ("lexicon.txt", "lexicon_oov.txt", "lm_text.txt", "lm_dev.txt", "eval2000.stm", "eval2000.glm"):
        assert (data / name).stat().st_size > 0, name
    assert "zorblatt" in (data / "lexicon_oov.txt").read_text()  # the miniature Fisher tree's one OOV
    assert sorted(p.name for p in (data / "audio").glob("*.flac")) == [
        "en_4156.flac", "fe_03_00001.flac", "fe_03_06001.flac", "sw02001.flac", "sw02005.flac", "sw_4390.flac"]
    ali = json.loads((recipe / "exp" / "tri2_ali" / "done.json").read_text())["summary"]
    assert 38 <= ali["num_pdfs"] <= 60 and ali["aligned"] > 0 and ali["failed"] <= 1, ali

    results = json.loads((recipe / "exp" / "results.json").read_text())
    assert results["corpus"] == "Switchboard + Fisher, Hub5'00"
    rows = {r["model"]: r for r in results["models"]}
    assert sorted(rows) == ["resnet22", "tri2 GMM"]
    for name, row in rows.items():
        for s in ("dev", "test_swb", "test_ch"):
            wer = row["wer"][s]
            assert 0 <= wer["first_pass"] <= 200 and 0 <= wer["rescored"] <= 200, (name, s, wer)
    for mdir in ("tri2", "am_resnet22"):
        for s in ("test_swb", "test_ch"):
            record = json.loads((recipe / "exp" / mdir / f"decode_{s}" / "done.json").read_text())
            assert record["args"]["glm"] == "data/eval2000.glm" and "data/eval2000.glm" in record["inputs"]
            summary = json.loads((recipe / "exp" / mdir / f"decode_{s}" / "summary.json").read_text())
            assert summary["utterances"] == 3, (mdir, s, summary)
    assert "| tri2 GMM |" in (recipe / "exp" / "RESULTS.md").read_text()

    # LDC's STM (as stage 0 fixed it) and GLM score the recipe's recording-level CTMs, by Hub5'00 set.
    ctm = tmp_path / "eval2000.ctm"
    ctm.write_text("".join((recipe / "exp" / "tri2" / f"decode_{s}" / "hyp.ctm").read_text()
                           for s in ("test_swb", "test_ch")))
    score = subprocess.run(
        [str(recipe / "../../.venv/bin/python"), "-m", "asr_bl.bin.score", "--ctm", str(ctm),
         "--stm", str(data / "eval2000.stm"), "--glm", str(data / "eval2000.glm"),
         "--subset", "swb=sw_", "--subset", "callhome=en_", "--out-dir", str(tmp_path / "score")],
        capture_output=True, text=True, env=env)
    assert score.returncode == 0, score.stdout + score.stderr
    subsets = json.loads((tmp_path / "score" / "wer.json").read_text())["subsets"]
    for name in ("swb", "callhome"):  # 3 scored segments each; the IGNORE_TIME_SEGMENT one is left out
        assert subsets[name]["sentences"] == 3 and subsets[name]["ref_words"] > 0, subsets

    assert_rerun_skips_everything(recipe, args, env)


def test_wrong_ldc_tree_and_missing_glm_are_named(tmp_path):
    """Stage 0 fails, exit status non-zero, with prepare's message naming the corpus and the expected
    sub-path: a Fisher tree given as --swbd, and a Hub5'00 tree without the GLM; nothing is written."""
    trees = build_ldc_trees(tmp_path / "ldc", compressed=False)
    recipe = _copy_recipe(tmp_path)
    env = _env_without_sph2pipe()
    out = _run(_ldc_args(trees, swbd=trees.fisher) + ["--stop-stage", "0"], cwd=recipe, env=env)
    assert out.returncode != 0
    assert "Switchboard-1 LDC97S62" in out.stdout and "not named sw0NNNN.sph" in out.stdout, out.stdout[-2000:]
    assert "swb1_d1/data/sw02001.sph" in out.stdout
    assert "stage 1" not in out.stdout and not (recipe / "data" / "manifests").exists()

    no_glm = build_eval2000_tree(tmp_path / "no_glm", compressed=False, glm=False)
    out = _run(_ldc_args(trees, eval2000=no_glm) + ["--stop-stage", "0"], cwd=recipe, env=env)
    assert out.returncode != 0
    assert "missing en20000405_hub5.glm" in out.stdout, out.stdout[-2000:]
    assert "LDC2002T43/reference/en20000405_hub5.glm" in out.stdout
    assert not (recipe / "data" / "manifests").exists()
