# shellcheck shell=bash
# Shared by the stand-in tools (aws, packer, terraform, inspec) the script tests put first on PATH.
# Each call is appended to $FAKE_LOG as one JSON line: {"tool": …, "argv": […]}.
set -euo pipefail

json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

log_call() {
  local tool=$1 arg sep=''
  shift
  {
    printf '{"tool":"%s","argv":[' "$tool"
    for arg in "$@"; do
      printf '%s' "$sep"
      json_string "$arg"
      sep=','
    done
    printf ']}\n'
  } >>"${FAKE_LOG:?FAKE_LOG is not set}"
}

# option_value <name> <args…>: the value after --name (or in --name=value), empty if absent.
option_value() {
  local name=$1 prev=''
  shift
  for arg in "$@"; do
    if [[ $prev == "$name" ]]; then
      printf '%s' "$arg"
      return 0
    fi
    if [[ $arg == "$name="* ]]; then
      printf '%s' "${arg#"$name="}"
      return 0
    fi
    prev=$arg
  done
}

fail() {
  printf 'fake %s: %s\n' "${0##*/}" "$*" >&2
  exit 2
}
