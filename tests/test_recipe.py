"""The recipe's run.sh: option handling, and every stage for real on the tiny embedded corpus
(about 40 s on 2 cores, so it stays in the default suite: CI proves the recipe runs)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "swbd_fisher"


def _run(args, cwd=RECIPE, **kwargs):
    return subprocess.run(["bash", "run.sh", *args], cwd=cwd, capture_output=True, text=True, **kwargs)


def test_help_lists_every_stage():
    out = _run(["--help"])
    assert out.returncode == 0
    for n in range(6):
        assert f"stage {n}:" in out.stdout


def test_unknown_option_is_refused_by_name():
    out = _run(["--stagee", "3"])
    assert out.returncode != 0
    assert "unknown option --stagee" in out.stderr


def test_missing_value_is_refused():
    out = _run(["--stage"])
    assert out.returncode != 0
    assert "--stage needs a value" in out.stderr


def test_all_stages_on_the_tiny_corpus(tmp_path):
    """run.sh --corpus-size tiny from stage 0 to 5 in a copy of the recipe, then once more: the
    second run must skip every stage's work (idempotent) and leave the alignments unchanged."""
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "swbd_fisher"
    shutil.copytree(RECIPE, recipe, symlinks=True, ignore=shutil.ignore_patterns("data", "exp"))
    (tmp_path / "local").symlink_to(REPO / "local")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = _run(["--corpus-size", "tiny", "--stage", "0", "--stop-stage", "5"], cwd=recipe, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    ali_dir = recipe / "exp" / "tri2_ali"
    summary = json.loads((ali_dir / "done.json").read_text())["summary"]
    assert summary["num_pdfs"] == 200
    assert summary["aligned"] > 0 and summary["failed"] <= max(1, summary["aligned"] // 20)
    counts = (ali_dir / "pdf_counts").read_text()
    second = _run(["--corpus-size", "tiny", "--stage", "0", "--stop-stage", "5"], cwd=recipe, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert (ali_dir / "pdf_counts").read_text() == counts
