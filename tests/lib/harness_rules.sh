#!/usr/bin/env bash
# harness.rules: the rules of tests/lib/harness.sh hold (docs/testing.md, "Shell harnesses"), and every shell
# harness follows them.
#  1. Small scripts using the helper: a failed check, a failing command outside `check`, `check ... && cmd` with a
#     failing cmd, a failure inside a command substitution, a harness that ran no check, or one that exits 0 after a
#     failed check all end with status 1; `try` keeps an expected status (77 included) without failing; a clean
#     harness exits 0; SF_SELFTEST_WRONG=1 stops at the first failed check.
#  2. Lint: a script under tests/ that defines its own check()/fail() or counts failures by hand does not use the
#     helper; a harness that sources the helper installs no EXIT trap of its own (it would replace the helper's),
#     writes no `check ... && cmd` / `check ... || cmd`, and has a self-test (a SELFTEST entry in a tests.cmake and
#     a use of sf_wrong/sf_expect, here or in the library it sources).
#  3. tests/run.sh's skip report (tests/lib/ctest_skips.py) allows a skip of a gpu-labelled test only.
. "${SHARDFORGE_SOURCE_DIR:?}/tests/lib/harness.sh"
SRC=$SHARDFORGE_SOURCE_DIR
W=$(mktemp -d)
on_exit "rm -rf '$W'"
# runs NAME WANT_STATUS BODY: a script sourcing the helper with BODY must exit WANT_STATUS
runs() {
    printf '. "%s/tests/lib/harness.sh"\n%s\n' "$SRC" "$3" >"$W/$1.sh"
    try bash "$W/$1.sh" >"$W/$1.log" 2>&1
    check "$1: exit $2 (got $RC)" [ "$RC" -eq "$2" ]
}
runs clean 0 'check "a" true; check "b" [ 1 -eq 1 ]; finish'
runs failed_check 1 'check "a" false; check "b" true; finish'
check "failed_check: the summary counts it" grep -qx "2 checks, 1 failed" "$W/failed_check.log"
runs exit0_after_failure 1 'check "a" false; exit 0'
runs no_check 1 'echo nothing asserted; finish'
runs unasserted 1 'check "a" true; false; check "b" true; finish'
check "unasserted: the line is named" grep -q "unasserted command failed (exit 1) at .*unasserted.sh:2: false" "$W/unasserted.log"
check "unasserted: nothing after it ran" sh -c "! grep -q 'ok: b' '$W/unasserted.log'"
runs check_and_cmd 1 'check "a" true && false; finish'
runs check_or_cmd_fails 1 'check "a" false || true; finish'
runs in_substitution 1 'x=$(false; echo y); check "a" true; finish'
runs in_check_argument 1 'check "a" [ -z "$(ls /nonexistent-dir)" ]; finish'
runs in_function 1 'f() { false; }; f; check "a" true; finish'
runs in_pipeline 1 'false | cat; check "a" true; finish'
runs try_status 0 'try bash -c "exit 77"; check "77 kept" [ "$RC" -eq 77 ]; try true; check "0" [ "$RC" -eq 0 ]; finish'
runs on_exit_runs 0 "on_exit 'touch $W/cleaned'; check a true; finish"
check "on_exit: the cleanup ran" [ -e "$W/cleaned" ]
printf '. "%s/tests/lib/harness.sh"\ncheck "a" true\ncheck "b" false\ncheck "c" false\nfinish\n' "$SRC" >"$W/st.sh"
try env SF_SELFTEST_WRONG=1 bash "$W/st.sh" >"$W/st.log" 2>&1
check "SF_SELFTEST_WRONG=1: exit 1 at the first failed check" [ "$RC" -eq 1 ]
check "... stopped there" grep -qx "self-test: stopped at: FAIL: b" "$W/st.log"
check "... nothing after it" sh -c "! grep -q 'FAIL: c' '$W/st.log'"

# Lint. Quoted strings are removed before looking for && / || after a check (they may hold sh -c "a && b").
lint() {  # prints offending lines of the harnesses
    local calls f
    # every sf_add_script_test(...) call of the tests.cmake files, one a line
    calls=$(find "$SRC/tests" -name node_modules -prune -o -name tests.cmake -print | xargs cat | tr '\n' ' ' |
            grep -oE 'sf_add_script_test\([^)]*\)' || true)
    find "$SRC/tests" -name node_modules -prune -o -name '*.sh' -print | sort | while read -r f; do
        local rel=${f#"$SRC"/tests/}
        [ "$rel" = lib/harness.sh ] && continue
        grep -nE '^[[:space:]]*(check|fail)[[:space:]]*\(\)|^[[:space:]]*fails=0' "$f" | sed "s|^|$rel: own check/fail helper: |"
        local libs; libs=$(sed -n 's|^\. "\$SHARDFORGE_SOURCE_DIR/\(tests/[a-z/_]*\.sh\)".*|\1|p' "$f")
        grep -qE '^\. .*tests/lib/harness\.sh' "$f" $(for l in $libs; do echo "$SRC/$l"; done) || continue
        grep -nE '^[^#]*trap [^#]* EXIT' "$f" | sed "s|^|$rel: EXIT trap (use on_exit): |"
        sed -E "s/\"([^\"\\\\]|\\\\.)*\"//g; s/'[^']*'//g" "$f" | grep -nE '^[[:space:]]*check[[:space:]].*(&&|\|\|)' |
            sed "s|^|$rel: a command chained to check (put it inside the check): |"
        local call; call=$(grep -F "SCRIPT $rel " <<<"$calls" || true)
        [ -n "$call" ] || continue   # a sourced library, not a registered harness
        grep -q SELFTEST <<<"$call" ||
            echo "$rel: no self-test (sf_add_script_test ... SELFTEST \"<check>\" in its tests.cmake)"
        grep -qE 'sf_wrong|sf_expect' "$f" $(for l in $libs; do echo "$SRC/$l"; done) ||
            echo "$rel: no expectation made wrong under SF_SELFTEST_WRONG (sf_wrong / sf_expect)"
    done
}
try lint >"$W/lint.txt"
cat "$W/lint.txt"
check "lint: every shell harness follows the helper's rules ($(wc -l <"$W/lint.txt") finding(s))" [ ! -s "$W/lint.txt" ]
# The lint itself finds the pattern it is meant to find.
mkdir -p "$W/lt/tests/x" "$W/lt/tests/lib"
cp "$SRC/tests/lib/harness.sh" "$W/lt/tests/lib/"
printf '. "$SHARDFORGE_SOURCE_DIR/tests/lib/harness.sh"\ncheck "d" [ 1 = 1 ] && tree_matches a b\ncheck "e" sh -c "a && b"\n' \
    >"$W/lt/tests/x/bad.sh"
echo 'sf_add_script_test(x.bad SCRIPT x/bad.sh NP 1 LABELS x)' >"$W/lt/tests/x/tests.cmake"
SRC=$W/lt try lint >"$W/lint2.txt"
check "lint finds 'check ... && cmd' (and not sh -c \"a && b\")" \
    [ "$(grep -c 'chained to check' "$W/lint2.txt" || :)" -eq 1 ]
check "lint finds a harness without a self-test" grep -q "x/bad.sh: no self-test" "$W/lint2.txt"

# The skip policy of tests/run.sh (tests/lib/ctest_skips.py): a gpu-labelled skip is listed and allowed, any other
# skip (exit 77 or gtest's "[  SKIPPED ]") is listed with its reason and fails.
mkdir -p "$W/ct"
cat >"$W/ct/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.20)
project(skips NONE)
enable_testing()
add_test(NAME g.skip COMMAND sh -c "echo 'SKIP: no GPU here'; exit 77")
set_tests_properties(g.skip PROPERTIES SKIP_RETURN_CODE 77 LABELS "gpu;cli")
add_test(NAME ok COMMAND true)
if(WITH_BAD)
  add_test(NAME u.skip COMMAND sh -c "echo 'SKIP: numpy missing'; exit 77")
  set_tests_properties(u.skip PROPERTIES SKIP_RETURN_CODE 77 LABELS unit)
  add_test(NAME t.gskip COMMAND sh -c "printf '/x.cpp:3: Skipped\\nno AVX2\\n[  SKIPPED ] A.B (0 ms)\\n'")
endif()
CMAKE
skips() {  # skips WITH_BAD: configure, run ctest, report; the report in $W/ct/report.txt
    cmake -S "$W/ct" -B "$W/ct/b$1" -DWITH_BAD=$1 >/dev/null &&
        (cd "$W/ct/b$1" && ctest --output-junit "$W/ct/b$1/j.xml" >/dev/null 2>&1 || :) &&
        /usr/bin/python3 "$SRC/tests/lib/ctest_skips.py" "$W/ct/b$1" "$W/ct/b$1/j.xml" >"$W/ct/report$1.txt"
}
try skips OFF
cat "$W/ct/reportOFF.txt"
check "skip report: a gpu-labelled skip is allowed (exit 0, got $RC)" [ "$RC" -eq 0 ]
check "skip report: ... and listed with its reason" grep -q "^skipped: g.skip: SKIP: no GPU here" "$W/ct/reportOFF.txt"
try skips ON
cat "$W/ct/reportON.txt"
check "skip report: a non-gpu skip fails (exit 1, got $RC)" [ "$RC" -eq 1 ]
check "skip report: an exit-77 skip is listed with its reason" \
    grep -q "^skipped (NOT ALLOWED: not labelled gpu): u.skip: SKIP: numpy missing" "$W/ct/reportON.txt"
check "skip report: a GTEST_SKIP is listed with its reason" \
    grep -q "^skipped (NOT ALLOWED: not labelled gpu): t.gskip: /x.cpp:3: Skipped no AVX2" "$W/ct/reportON.txt"
finish
