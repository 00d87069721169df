"""The recipe's run.sh: option handling, and every stage for real on the tiny embedded corpus
(about 40 s on 2 cores, so it stays in the default suite: CI proves the recipe runs)."""
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
    """run.sh --corpus-size tiny from stage 0 to 5 in a copy of the recipe, then once more.

    The second run must skip every stage, as its own log says (each tool's "skipping" line and
    run.sh's "stage N: skipped"), and must leave every output file under data/ and exp/ untouched
    (same mtime: nothing rewritten, not even with identical content)."""
    _require_kaldi()
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
    before = _output_mtimes(recipe)
    assert len(before) > 20

    second = _run(["--corpus-size", "tiny", "--stage", "0", "--stop-stage", "5"], cwd=recipe, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = second.stdout + second.stderr
    sections = _stage_sections(second.stdout)
    assert sorted(sections) == list(range(6)), log[-3000:]
    problems = []
    for n, text in sorted(sections.items()):
        if not re.search(r"\bskipping\b", text):
            problems.append(f"stage {n} did not report a skip")
        redone = re.findall(r"^.*\b(?:redoing|running \().*$", text, flags=re.M)
        if redone:
            problems.append(f"stage {n} redid work: {redone[0].strip()}")
        if f"[run.sh] stage {n}: skipped" not in text:
            problems.append(f"run.sh did not log stage {n}'s skip")
    after = _output_mtimes(recipe)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        problems.append(f"the second run rewrote, added or removed {len(changed)} files: {changed[:12]}")
    assert not problems, "\n".join(problems) + "\n--- second run's log (end):\n" + log[-2500:]
