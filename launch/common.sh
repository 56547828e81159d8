# Shared by the launchers: quoting and --dry-run. Source it; it reads DRY_RUN (0 or 1).
# shellcheck shell=bash

# One argument as the shell reads it back: bare if it is plain, else in single quotes.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Runs a command, or prints it (quoted so it can be pasted) under --dry-run.
run() {
  if ((DRY_RUN)); then
    local words=() arg
    for arg in "$@"; do
      words+=("$(quote "$arg")")
    done
    echo "${words[*]}"
  else
    "$@"
  fi
}
