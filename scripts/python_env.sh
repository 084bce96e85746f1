# Sourced by scripts/setup, scripts/test and scripts/demo: which Python they use, and whether
# pip has anything to do.
#   an active virtualenv ($VIRTUAL_ENV)   → its python
#   PYTHON=/path/to/python                → that one
#   otherwise                             → the checkout's own .venv (made on first use), so
#                                           nothing is installed into the system's Python

sonostream_python() {
  if [[ -n "${PYTHON:-}" ]]; then
    echo "$PYTHON"
  elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    echo "$VIRTUAL_ENV/bin/python"
  else
    if [[ ! -x .venv/bin/python ]]; then
      echo "creating a virtualenv in $PWD/.venv (activate another one, or set PYTHON, to use that)" >&2
      if ! python3 -m venv .venv >&2; then
        echo "could not create .venv (is python3-venv installed?); using $(command -v python3)" >&2
        rm -rf .venv
        echo python3
        return
      fi
    fi
    echo "$PWD/.venv/bin/python"
  fi
}

# A stamp in the interpreter's prefix: what was installed, from which checkout and pyproject.
sonostream_stamp() {  # MODE
  local prefix key
  prefix=$("$PY" -c 'import sys; print(sys.prefix)')
  key=$( { echo "$1 $PWD"; cat pyproject.toml; } | sha256sum | cut -c1-16)
  echo "$prefix/.sonostream-setup-$1-$key"
}
