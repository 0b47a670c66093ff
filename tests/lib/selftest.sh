#!/usr/bin/env bash
# <name>.selftest: selftest.sh "SCRIPT [ARGS...]" CHECK runs tests/SCRIPT (with ARGS, split on spaces) (a harness using tests/lib/harness.sh) with
# SF_SELFTEST_WRONG=1, in which the harness breaks one of its expectations on purpose. The harness must end with
# status 1, stopped at the check whose description starts with
# CHECK (an extended regular expression), every earlier check passed and no other
# command failed. A harness whose checks cannot fail, or whose failures do not reach its exit status, fails here.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
read -r -a cmd <<<"${1:?SCRIPT}"
script=$SHARDFORGE_SOURCE_DIR/tests/${cmd[0]}
want=${2:?CHECK}
log=$(mktemp)
on_exit "rm -f '$log'"
try env SF_SELFTEST_WRONG=1 bash "$script" "${cmd[@]:1}" >"$log" 2>&1
sed 's/^/  | /' "$log"
# A harness that skips (exit 77, e.g. a browser that is not installed) skips its self-test too, with its reason.
if [ "$RC" -eq 77 ]; then grep -m1 '^SKIP' "$log" || echo "SKIP: $1 exited 77"; exit 77; fi
check "$1 with a wrong expectation exits 1 (got $RC)" [ "$RC" -eq 1 ]
check "... stopped at the wrong expectation: '$want'" grep -qE -- "^self-test: stopped at: FAIL: ($want)" "$log"
check "... no other check failed first" [ "$(grep -c '^FAIL: ' "$log" || :)" -eq 1 ]
check "... no unasserted command failed" sh -c "! grep -q 'unasserted command failed' '$log'"
finish
