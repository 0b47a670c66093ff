# Helpers of the benchmark scripts (tests/bench/*.sh), sourced: wall-clock timing, best of N, warm page cache and a
# one-line description of the machine.
#   . "$(dirname "$0")/lib.sh"
now() { date +%s.%N; }
# since T0: seconds elapsed since T0 (a `now` value)
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
# min A B: the smaller of two numbers ("" counts as none)
min() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b + 0 < a + 0) print b; else print a }'; }
# ratio A B [FMT]: A / B
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { printf f, a / b }'; }
# warm FILE_OR_DIR...: read every file once, so the timed runs find the page cache warm
warm() { find "$@" -type f -exec cat {} + >/dev/null; }

# children_cpu: user + system CPU seconds of every child this shell has waited for (bash's `times`, second line;
# called without a subshell, whose counters would start at zero)
children_cpu() {
    local f=${BENCH_TMP:-/tmp}/times.$$
    times >"$f"
    awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$f"
    rm -f "$f"
}

# best_of N PREP CMD...: N times: eval PREP (not timed: e.g. remove the previous output), sync, then time CMD and
# a final sync (the written bytes reach the disk inside the timing, for every side alike). BEST = the fastest wall
# time in seconds, BEST_CPU = the user + system CPU seconds of that run (CMD's processes). CMD's output goes to
# $BENCH_LOG (default /dev/null); when CMD fails, the end of it is shown.
best_of() {
    local n=$1 prep=$2 i t0 t c0 c log=${BENCH_LOG:-/dev/null}
    shift 2
    BEST="" BEST_CPU=""
    for ((i = 0; i < n; ++i)); do
        eval "$prep"
        sync
        children_cpu >"${BENCH_TMP:-/tmp}/cpu0.$$"
        t0=$(now)
        "$@" >"$log" 2>&1 || { tail -n 20 "$log" >&2; return 1; }
        sync
        t=$(since "$t0")
        children_cpu >"${BENCH_TMP:-/tmp}/cpu1.$$"
        c=$(awk -v a="$(cat "${BENCH_TMP:-/tmp}/cpu0.$$")" -v b="$(cat "${BENCH_TMP:-/tmp}/cpu1.$$")" 'BEGIN { printf "%.2f", b - a }')
        if [ -z "$BEST" ] || [ "$(min "$BEST" "$t")" != "$BEST" ]; then BEST=$t BEST_CPU=$c; fi
    done
    rm -f "${BENCH_TMP:-/tmp}/cpu0.$$" "${BENCH_TMP:-/tmp}/cpu1.$$"
}

# machine: CPU model, cores, memory and load average, one line
machine() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "${cpu:-unknown CPU}, $(nproc) cores available ($(grep -c ^processor /proc/cpuinfo) online)," \
         "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
