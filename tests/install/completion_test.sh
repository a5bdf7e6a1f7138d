#!/usr/bin/env bash
# The generated bash completion, typed into a real interactive bash in tmux: subcommands, flags,
# option values, trace files, and the program after `dltrace run --`.
#   tests/install/completion_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$(cd "${1:?usage: completion_test.sh BUILD_DIR}" && pwd)
COMPLETION=$BUILD_DIR/share/bash-completion/completions/dltrace
BASH_COMPLETION=/usr/share/bash-completion/bash_completion
for f in "$COMPLETION" "$BASH_COMPLETION" /usr/bin/tmux; do
  [ -e "$f" ] || { echo "completion_test: missing $f (scripts/install-deps.sh installs tmux and bash-completion)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-completion.XXXXXX")
SOCKET=$WORK/tmux.sock
cleanup() { tmux -S "$SOCKET" kill-server 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir "$WORK/files" "$WORK/files/traces.d"
touch "$WORK/files/app.trace" "$WORK/files/other.trace" "$WORK/files/notes.txt"
cat >"$WORK/bashrc" <<RC
PS1='$ '
source $BASH_COMPLETION
source $COMPLETION
bind 'set show-all-if-ambiguous on'
bind 'set bell-style none'
cd $WORK/files
RC
tmux -S "$SOCKET" -f /dev/null new-session -d -x 200 -y 50 "env -i HOME=$WORK TERM=xterm PATH=/usr/bin:/bin bash --noprofile --rcfile $WORK/bashrc -i"

fail=0
# Types TEXT, then Tab, and prints the screen once it stops changing.
complete_line() {
  tmux -S "$SOCKET" send-keys C-u C-l
  sleep 0.2
  tmux -S "$SOCKET" send-keys -l "$1"
  tmux -S "$SOCKET" send-keys Tab
  local before= now
  for _ in $(seq 50); do
    sleep 0.1
    now=$(tmux -S "$SOCKET" capture-pane -p -N)  # -N: keep trailing spaces
    [ -n "$now" ] && [ "$now" = "$before" ] && break
    before=$now
  done
  printf '%s\n' "$now"
}
expect() {  # TYPED WANTED_REGEX [UNWANTED_REGEX]
  local screen
  screen=$(complete_line "$1")
  if ! grep -qE -- "$2" <<<"$screen"; then
    echo "completion_test: after '$1<Tab>' expected /$2/ on the screen:" >&2
    printf '%s\n' "$screen" | sed '/^$/d' >&2
    fail=1
  elif [ -n "${3:-}" ] && grep -qE -- "$3" <<<"$screen"; then
    echo "completion_test: after '$1<Tab>' did not expect /$3/ on the screen:" >&2
    printf '%s\n' "$screen" | sed '/^$/d' >&2
    fail=1
  else
    echo "ok: '$1<Tab>'"
  fi
}

sleep 0.5
expect "dltrace sh" '^\$ dltrace show $'                                 # one subcommand
expect "dltrace s" 'scopes +show +stats'                                  # all that match
expect "dltrace config " '^\$ dltrace config check $'                     # a nested command
expect "dltrace show --fo" '^\$ dltrace show --follow $'                  # a flag of show
expect "dltrace explain --" '--json.*--no-info.*--probes' '--follow'      # explain's, not show's
expect "dltrace show --color " 'always +auto +never'                     # an option's values
expect "dltrace show --color=ne" '^\$ dltrace show --color=never'
expect "dltrace explain " 'app\.trace +other\.trace +traces\.d/' 'notes\.txt'  # trace files
expect "dltrace explain a" '^\$ dltrace explain app\.trace $'
expect "dltrace tree app.trace o" '^\$ dltrace tree app\.trace other\.trace $'
expect "dltrace export -f " 'chrome +json +jsonl'
expect "dltrace run --stack-depth " '^\$ dltrace run --stack-depth $' 'app\.trace'  # a number: no files
expect "dltrace run -o out.trace -- pyth" '(^| )python3( |$)' 'app\.trace'  # the program
expect "dltrace run -- ls --almost-a" '^\$ dltrace run -- ls --almost-all $'  # and its own options
expect "dltrace --v" '^\$ dltrace --version $'
exit $fail
