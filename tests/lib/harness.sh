# The assertion helper of the shell test harnesses (docs/testing.md, "Shell harnesses"). Sourced first thing:
#   . "$SHARDFORGE_SOURCE_DIR/tests/lib/harness.sh"
# Rules it enforces:
#  - An expectation is `check "what" command...`: prints "ok: what" or "FAIL: what" and counts it. A failed check
#    does not stop the harness; at exit "N checks, M failed" is printed and the status is 1 when M > 0 (also when
#    the harness calls `exit 0` itself), and 1 when no check ran at all.
#  - Any other command that fails ends the harness with status 1, naming the line (set -e plus an ERR trap, also
#    inside functions; inside a command substitution it ends that subshell and the harness's status is 1 at exit). So `check "a" [ ... ] && cmd` or a bare `cmd` can no longer fail
#    unnoticed. A command whose failure is expected runs under `try` (its status goes to RC, checked afterwards).
#  - Cleanup: `on_exit 'command'` (never `trap ... EXIT`, which would replace the helper's own exit handler).
#  - Self-test: with SF_SELFTEST_WRONG=1 the harness makes one expectation wrong on purpose (`sf_wrong`,
#    `sf_expect`), and the first failed check ends it (status 1, "self-test: stopped at: FAIL: what"). The
#    *.selftest ctest entries (tests/lib/selftest.sh) assert exactly that, so a harness whose checks cannot fail
#    fails its self-test.
set -Eeuo pipefail
SF_CHECKS=0
SF_FAILED=0
SF_ON_EXIT=()
SF_ERR_MARK=$(mktemp /tmp/sf-harness-err.XXXXXX)   # non-empty once any (sub)shell of the harness hit the ERR trap

_sf_err() {  # the ERR trap: a command outside `check`/`try` failed
    local rc=$1 line=$2 cmd=$3
    echo "FAIL: unasserted command failed (exit $rc) at ${BASH_SOURCE[1]:-?}:$line: $cmd" >&2
    echo "$line" >>"$SF_ERR_MARK"
    exit 1
}
trap '_sf_err $? $LINENO "$BASH_COMMAND"' ERR

_sf_exit() {  # the EXIT trap: cleanups, then the summary and the status
    local rc=$?
    trap - ERR
    set +e
    local c
    for c in "${SF_ON_EXIT[@]}"; do eval "$c" >/dev/null 2>&1; done
    [ "$BASHPID" = "$$" ] || exit "$rc"   # a subshell ending: no summary
    # A failure inside a command substitution (e.g. in a check's arguments) ends only that subshell: it counts here.
    if [ -s "$SF_ERR_MARK" ] && [ "$rc" -eq 0 ]; then rc=1; fi
    rm -f "$SF_ERR_MARK"
    echo "$SF_CHECKS checks, $SF_FAILED failed"
    if [ "$rc" -eq 0 ] && [ "$SF_FAILED" -ne 0 ]; then rc=1; fi
    if [ "$rc" -eq 0 ] && [ "$SF_CHECKS" -eq 0 ]; then echo "FAIL: no check ran"; rc=1; fi
    exit "$rc"
}
trap _sf_exit EXIT

on_exit() { SF_ON_EXIT+=("$1"); }

# check "what" command...: the command's status is the expectation.
check() {
    local what=$1; shift
    SF_CHECKS=$((SF_CHECKS + 1))
    if "$@"; then
        echo "ok: $what"
        return 0
    fi
    SF_FAILED=$((SF_FAILED + 1))
    echo "FAIL: $what"
    if sf_wrong; then echo "self-test: stopped at: FAIL: $what"; exit 1; fi
    return 0
}

# try command...: run a command whose failure may be expected; its status goes to RC (then `check` RC).
try() {
    RC=0
    "$@" || RC=$?
}

# finish: end the harness (the EXIT trap prints the summary and sets the status).
finish() { exit 0; }

# sf_wrong: true in the self-test run (SF_SELFTEST_WRONG=1), where the harness breaks one expectation on purpose.
sf_wrong() { [ "${SF_SELFTEST_WRONG:-0}" = 1 ]; }
# sf_expect RIGHT WRONG: prints RIGHT, or WRONG in the self-test run.
sf_expect() { if sf_wrong; then printf '%s\n' "$2"; else printf '%s\n' "$1"; fi; }
