"""The recipe's run.sh: option handling, and every stage for real on the tiny embedded corpus, from
the corpus to a WER and the summary (a few minutes on 2 cores, so it stays in the default suite:
CI proves the recipe runs)."""
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "swbd_fisher"


def _run(args, cwd=RECIPE, **kwargs):
    return subprocess.run(["bash", "run.sh", *args], cwd=cwd, capture_output=True, text=True, **kwargs)


def test_help_lists_every_stage():
    out = _run(["--help"])
    assert out.returncode == 0
    for n in range(11):
        assert f"stage {n}:" in out.stdout


def test_unknown_option_is_refused_by_name():
    out = _run(["--stagee", "3"])
    assert out.returncode != 0
    assert "unknown option --stagee" in out.stderr


def test_missing_value_is_refused():
    out = _run(["--stage"])
    assert out.returncode != 0
    assert "--stage needs a value" in out.stderr


def test_unknown_preset_is_refused_before_any_stage(tmp_path):
    out = _run(["--models", "resnet22 bl-resnet99", "--corpus-size", "tiny"])
    assert out.returncode != 0
    assert "unknown preset(s) ['bl-resnet99']" in out.stderr and "bl-resnet22-a4-b1" in out.stderr
    assert "stage 0" not in out.stdout


def test_stage_without_its_inputs_names_the_stage_that_makes_them(tmp_path):
    recipe = _copy_recipe(tmp_path)
    out = _run(["--stage", "7", "--stop-stage", "7"], cwd=recipe, env=_env())
    assert out.returncode != 0
    assert "stage 7 needs exp/tri2/graph_tg/HCLG.fst" in out.stderr and "--stage 6" in out.stderr
    out = _run(["--stage", "9"], cwd=recipe, env=_env())
    assert "stage 9 needs" in out.stderr and "--stage 6" in out.stderr


def _copy_recipe(tmp_path: Path) -> Path:
    """A copy of the recipe dir without data/ and exp/, beside links to local/ and .venv."""
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "swbd_fisher"
    shutil.copytree(RECIPE, recipe, symlinks=True, ignore=shutil.ignore_patterns("data", "exp"))
    (tmp_path / "local").symlink_to(REPO / "local")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    return recipe


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def _output_mtimes(recipe: Path) -> Dict[str, int]:
    """mtime (ns) of every file under data/ and exp/ except the logs (exp/log/), keyed by path."""
    out = {}
    for top in ("data", "exp"):
        for p in sorted((recipe / top).rglob("*")):
            rel = p.relative_to(recipe)
            if rel.parts[:2] == ("exp", "log") or not p.is_file():
                continue
            out[str(rel)] = p.stat().st_mtime_ns
    return out


def _stage_sections(stdout: str) -> Dict[int, str]:
    """run.sh's output cut at its "[run.sh] stage N: ..." announcements: what each stage printed."""
    marks = list(re.finditer(r"^.*\[run\.sh\] stage (\d+): .*$", stdout, flags=re.M))
    sections: Dict[int, str] = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        n = int(m.group(1))
        if n not in sections:  # "stage N: <what>" opens the section; "stage N: skipped/done" is in it
            sections[n] = stdout[m.start(): nxt.start() if nxt else len(stdout)]
        else:
            sections[n] += stdout[m.start(): nxt.start() if nxt else len(stdout)]
    return sections


def _require_kaldi() -> None:
    for name in ("kaldi_hmm_gmm", "kaldifst"):  # the GMM stages need the Kaldi bindings (CI has them)
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install -r requirements.txt)")


def test_all_stages_on_the_tiny_corpus(tmp_path):
    """run.sh --corpus-size tiny from stage 0 to the summary in a copy of the recipe, then once more.

    The first run must end in a WER for the GMM (both backends) and each network, and the summary.
    The second must skip every stage, as its own log says (each tool's "skipping" line and
    run.sh's "stage N: skipped"), and must leave every output file under data/ and exp/ untouched
    (same mtime: nothing rewritten, not even with identical content)."""
    _require_kaldi()
    recipe = _copy_recipe(tmp_path)
    env = _env()
    first = _run(["--corpus-size", "tiny", "--stage", "0"], cwd=recipe, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    ali_dir = recipe / "exp" / "tri2_ali"
    summary = json.loads((ali_dir / "done.json").read_text())["summary"]
    assert summary["num_pdfs"] == 200
    assert summary["aligned"] > 0 and summary["failed"] <= max(1, summary["aligned"] // 20)
    results = json.loads((recipe / "exp" / "results.json").read_text())
    rows = {r["model"]: r for r in results["models"]}
    assert sorted(rows) == ["bl-resnet22-a4-b1", "resnet22", "tri2 GMM"]
    for name, row in rows.items():
        for s in ("dev", "test_swb", "test_ch"):
            wer = row["wer"][s]
            assert 0 <= wer["first_pass"] <= 200 and 0 <= wer["rescored"] <= 200, (name, s, wer)
    assert rows["bl-resnet22-a4-b1"]["gmacs"] < rows["resnet22"]["gmacs"]
    assert set(results["backends"]) == {"dev", "test_swb", "test_ch"}  # --kaldi-check all, the default
    assert all(b["utterances"] > 0 for b in results["backends"].values())
    assert (recipe / "exp" / "wer_vs_macs.png").read_bytes()[:4] == b"\x89PNG"
    table = (recipe / "exp" / "RESULTS.md").read_text()
    assert "| tri2 GMM |" in table and "| bl-resnet22-a4-b1 |" in table
    times = (recipe / "exp" / "log" / "times.tsv").read_text().splitlines()
    assert {line.split("\t")[0] for line in times} == {str(n) for n in range(11)}

    assert_rerun_skips_everything(recipe, ["--corpus-size", "tiny", "--stage", "0"], env)


def assert_rerun_skips_everything(recipe: Path, args, env: Dict[str, str]) -> None:
    """Run run.sh ``args`` again on a finished recipe dir: every stage 0-10 must report its skip, as
    its own log says (each tool's "skipping" line, run.sh's "stage N: skipped" and no "done in"), and
    no file under data/ and exp/ may be rewritten, added or removed (mtimes compared)."""
    before = _output_mtimes(recipe)
    assert len(before) > 20
    second = _run(args, cwd=recipe, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    sections = _stage_sections(second.stdout)
    assert sorted(sections) == list(range(11)), log[-3000:]
    problems = []
    for n, text in sorted(sections.items()):
        if not re.search(r"\bskipping\b", text):
            problems.append(f"stage {n} did not report a skip")
        redone = re.findall(r"^.*\b(?:redoing|running \().*$", text, flags=re.M)
        if redone:
            problems.append(f"stage {n} redid work: {redone[0].strip()}")
        if f"[run.sh] stage {n}: skipped" not in text:
            problems.append(f"run.sh did not log stage {n}'s skip")
        if re.search(r"\[run\.sh\] stage %d: done in" % n, text):
            problems.append(f"run.sh logged work done in stage {n}")
    after = _output_mtimes(recipe)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        problems.append(f"the second run rewrote, added or removed {len(changed)} files: {changed[:12]}")
    assert not problems, "\n".join(problems) + "\n--- second run's log (end):\n" + log[-2500:]
