#!/usr/bin/env bash
# Build the project's environment in .venv: CPython 3.9 + the exact pins of requirements.txt,
# the package itself (editable), and the Debian TTS engines the embedded corpus can use.
# Usage: bash tools/setup_env.sh        (idempotent: re-running only fills in what is missing)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

find_python39() {
  local c
  for c in "${PYTHON39:-}" "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions")" \
           "$HOME/.pyenv/versions" /root/.pyenv/versions; do
    [ -n "$c" ] || continue
    if [ -x "$c" ] && [ ! -d "$c" ]; then echo "$c"; return 0; fi
    if [ -d "$c" ]; then
      for v in $(ls -d "$c"/3.9.* 2>/dev/null | sort -V -r); do
        [ -x "$v/bin/python3.9" ] && { echo "$v/bin/python3.9"; return 0; }
      done
    fi
  done
  command -v python3.9 2>/dev/null && return 0
  return 1
}

if [ ! -x .venv/bin/python ]; then
  py=$(find_python39) || {
    echo "ERROR: no CPython 3.9 found (k2 1.23.4 on the registry exists only for CPython 3.9)." >&2
    echo "Install one, e.g. 'pyenv install 3.9.18', or point PYTHON39=/path/to/python3.9." >&2
    exit 1; }
  echo "[setup] creating .venv with $py"
  "$py" -m venv .venv
fi
.venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 9), sys.version' || {
  echo "ERROR: .venv is not Python 3.9; remove it and re-run." >&2; exit 1; }

echo "[setup] installing pinned requirements"
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip check 2>&1 | grep -v '^WARNING: Location' || true

# Debian-main TTS engines make the embedded corpus sound more natural, and Debian's text packages
# widen its vocabulary; optional (espeak-ng and chatterbot-corpus from PyPI are always there). Only attempted as root with apt-get available.
if [ "${ASR_BL_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  command -v flite >/dev/null 2>&1 || need="$need flite"
  command -v text2wave >/dev/null 2>&1 || need="$need festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
  # Text sources for the synthetic corpus's sentences (fortune quotations, WordNet examples).
  [ -d /usr/share/games/fortunes ] || need="$need fortunes"
  [ -d /usr/share/wordnet ] || need="$need wordnet-base"
  # Scoring and graph inspection: NIST sclite/hubscr.pl (Debian puts them in /usr/lib/sctk/bin)
  # and OpenFst's command-line tools.
  [ -x /usr/lib/sctk/bin/sclite ] || command -v sclite >/dev/null 2>&1 || need="$need sctk"
  command -v fstinfo >/dev/null 2>&1 || need="$need libfst-tools"
  if [ -n "$need" ]; then
    echo "[setup] installing Debian packages (synthetic corpus, scoring, OpenFst tools):$need"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null) \
      || echo "[setup] WARNING: apt-get could not install$need; the corpus will use the engines and texts it finds, scoring its Python scorer."
  fi
fi

# The environment's pins, checked here once (the unit tests do not: the suite also runs on
# torch 2.x / Python 3.12): the interpreter, torch/torchaudio (k2 1.23.4's build), and every
# exact pin of requirements.txt against what pip installed.
.venv/bin/python - <<'PY'
import sys
from importlib import metadata

import asr_bl._kaldi as k
import k2
import lhotse
import torch
import torchaudio

problems = []
if sys.version_info[:2] != (3, 9):
    problems.append(f"Python {sys.version.split()[0]} (the pins need CPython 3.9)")
if not torch.__version__.startswith("1.13.1"):
    problems.append(f"torch {torch.__version__} (k2 1.23.4 is built for torch 1.13.1)")
if not torchaudio.__version__.startswith("0.13.1"):
    problems.append(f"torchaudio {torchaudio.__version__} (pinned 0.13.1)")
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if "==" not in line:
        continue
    name, want = (t.strip() for t in line.split("==", 1))
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        problems.append(f"{name} is not installed (pinned {want})")
        continue
    if have.split("+")[0] != want.split("+")[0]:
        problems.append(f"{name} {have} installed, {want} pinned")
if problems:
    sys.exit("[setup] ERROR: the environment does not match requirements.txt:\n  " + "\n  ".join(problems)
             + "\nFix: remove .venv and re-run 'bash tools/setup_env.sh'.")
k.import_kaldi()
print(f"[setup] ok: Python {sys.version.split()[0]}, torch {torch.__version__}, k2 {metadata.version('k2')}, "
      f"lhotse {lhotse.__version__}, all {sum(1 for l in open('requirements.txt') if '==' in l)} pins")
PY
