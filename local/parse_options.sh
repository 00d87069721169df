#!/usr/bin/env bash
# Kaldi-style option parsing for recipe scripts: `--some-option value` sets $some_option, for every
# variable the calling script defined before sourcing this file. `--help` prints the script's header.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      sed -n '2,/^$/p' "${script:-$0}" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    --*=*)
      name=$(echo "${1%%=*}" | sed 's/^--//; s/-/_/g'); value="${1#*=}"; shift ;;
    --*)
      name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      value="$2"; shift 2 ;;
    *) break ;;
  esac
  if ! declare -p "$name" >/dev/null 2>&1; then
    echo "$0: unknown option --${name//_/-} (see $0 --help)" >&2; exit 1
  fi
  printf -v "$name" '%s' "$value"
done
