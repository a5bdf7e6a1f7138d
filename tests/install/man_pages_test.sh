#!/usr/bin/env bash
# The generated man pages (share/man/man1 in the build tree): one per subcommand plus dltrace(1),
# rendered by man(1) without a warning, with strace's sections, and naming every option that
# `dltrace CMD --help` names (they are generated from the same CLI, so this is what proves it).
#   tests/install/man_pages_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$(cd "${1:?usage: man_pages_test.sh BUILD_DIR}" && pwd)
DLTRACE=$BUILD_DIR/bin/dltrace
MAN1=$BUILD_DIR/share/man/man1
command -v man >/dev/null || { echo "man_pages_test: man(1) missing (scripts/install-deps.sh installs man-db)" >&2; exit 1; }

fail=0
problem() { echo "man_pages_test: $*" >&2; fail=1; }

# The subcommands of the menu of `dltrace --help`.
mapfile -t commands < <("$DLTRACE" --help | sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z]*\) .*/\1/p')
[ ${#commands[@]} -ge 10 ] || problem "only ${#commands[@]} subcommands in dltrace --help"

render() {  # PAGE -> the text man shows, at 80 columns; groff's warnings go to $2
  MANWIDTH=80 LC_ALL=C.UTF-8 MAN_KEEP_FORMATTING= man --warnings -l "$1" 2>"$2" | col -bx
}

check_page() {  # PAGE SECTION...
  local page=$1 err text
  shift
  [ -f "$page" ] || { problem "missing $page"; return; }
  err=$(mktemp)
  text=$(render "$page" "$err")
  [ -s "$err" ] && problem "$(basename "$page"): man/groff warnings: $(cat "$err")"
  rm -f "$err"
  for section in "$@"; do
    grep -qx "$section" <<<"$text" || problem "$(basename "$page"): no $section section"
  done
  printf '%s' "$text"
}

main_text=$(check_page "$MAN1/dltrace.1" NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS ENVIRONMENT \
  "EXIT STATUS" EXAMPLES "SEE ALSO")
grep -q "DLTRACE_OUTPUT" <<<"$main_text" || problem "dltrace.1: ENVIRONMENT does not name DLTRACE_OUTPUT"
grep -q -- "--version" <<<"$main_text" || problem "dltrace.1: no --version"

for cmd in "${commands[@]}"; do
  grep -q "dltrace-$cmd(1)" <<<"$main_text" || problem "dltrace.1 does not refer to dltrace-$cmd(1)"
  text=$(check_page "$MAN1/dltrace-$cmd.1" NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO")
  # Every option the command's --help (and its subcommands') defines is in the page, and the
  # first line of the description is the page's.
  helps=$("$DLTRACE" "$cmd" --help)
  for sub in $(sed -n '/^Subcommands:/,/^$/p' <<<"$helps" | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    helps+=$'\n'$("$DLTRACE" "$cmd" "$sub" --help)
  done
  while IFS='|' read -r short long; do
    if [ -n "$short" ]; then want="$short, $long"; else want=$long; fi
    grep -qF -- "$want" <<<"$text" || problem "dltrace-$cmd.1 does not document $want"
  done < <(sed -nE 's/^  (-[a-zA-Z])?,?(--[a-z][a-z0-9-]*).*/\1|\2/p' <<<"$helps" | sort -u)
  first=$(head -n 1 <<<"$helps" | cut -c1-40)
  tr -s ' \n' ' ' <<<"$text" | grep -qF "$first" || problem "dltrace-$cmd.1 lacks its help's first line: $first"
done
# No page of a command that does not exist.
for page in "$MAN1"/dltrace-*.1; do
  cmd=$(basename "$page" .1); cmd=${cmd#dltrace-}
  printf '%s\n' "${commands[@]}" | grep -qx "$cmd" || problem "stale page $page"
done

[ $fail = 0 ] && echo "man_pages_test: dltrace.1 and ${#commands[@]} command pages OK"
exit $fail
