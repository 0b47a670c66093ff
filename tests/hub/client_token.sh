#!/bin/bash
# Token hygiene and error exits of our client: the token is discovered like the official clients do (HF_TOKEN,
# HF_HOME/token, --token-file), is never accepted on the command line, and never appears in stdout/stderr or in
# the files we write, on success and on every error path (401, 403, 404, retries exhausted, unreachable Hub,
# refused plain-http endpoint). Hub errors exit 6 with a one-line message naming the status.
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
start_hub --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 128 --intermediate 256 --layers 1 --vocab 500 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
D=$WORK/d/base
LOG=$WORK/logs
mkdir -p "$LOG"
n=0
# sfrun EXPECTED_EXIT DESCRIPTION [env assignments --] args...
sfrun() {
    local want=$1 what=$2; shift 2
    n=$((n + 1))
    try env "$@" >"$LOG/$n.log" 2>&1
    local rc=$RC
    check "$what: exit $want (got $rc: $( (grep -m1 error "$LOG/$n.log" || :) | cut -c1-150))" [ "$rc" -eq "$want" ]
}
check "no --token option exists (tokens never on the command line)" sh -c "! '$BIN' push --help | grep -q -- '--token '"

# Self-test: this push is expected to fail.
sfrun "$(sf_expect 0 6)" "push with HF_TOKEN" "$BIN" push "$D" --repo testuser/t1
# Token from HF_HOME/token only.
mkdir -p "$HF_HOME" && printf '%s\n' "$TOKEN" >"$HF_HOME/token"
sfrun 0 "push with the token from HF_HOME/token" -u HF_TOKEN "$BIN" push "$D" --repo testuser/t2
printf '%s\n' "$TOKEN" >"$WORK/tokfile"
sfrun 0 "push with --token-file" -u HF_TOKEN HF_HOME="$WORK/empty" "$BIN" push "$D" --repo testuser/t3 --token-file "$WORK/tokfile"
sfrun 6 "no token at all: 401" -u HF_TOKEN HF_HOME="$WORK/empty" "$BIN" push "$D" --repo testuser/t4
check "... message names 401 and where tokens come from" grep -q "401.*HF_TOKEN" "$LOG/$n.log"

BAD=hf_invalid_SECRET_1234
sfrun 6 "invalid token" HF_TOKEN=$BAD "$BIN" push "$D" --repo testuser/t5
check "... the invalid token is not printed" sh -c "! grep -q $BAD '$LOG/$n.log'"
RO=hf_read_SECRET_5678
sfrun 6 "read-only token: 403" HF_TOKEN=$RO "$BIN" push "$D" --repo testuser/t6
check "... message names 403 and the repo" grep -q "403.*testuser/t6" "$LOG/$n.log"
check "... the read-only token is not printed" sh -c "! grep -q $RO '$LOG/$n.log'"
sfrun 6 "foreign namespace: 403" "$BIN" push "$D" --repo someone-else/x
faults "preupload=500x20"
sfrun 6 "5xx until retries are exhausted" "$BIN" push "$D" --repo testuser/t7
check "... after 5 retries" [ "$(grep -c 'retry [0-9]/5' "$LOG/$n.log" || :)" -eq 5 ]
curl -sf -X DELETE "$HUB/__faults" >/dev/null
faults "create-repo=429x1/1"
sfrun 0 "429 with Retry-After: waits and succeeds" "$BIN" push "$D" --repo testuser/t8
check "... the wait honoured Retry-After + 1 s" grep -q "HTTP 429; retry 1/5 in 2 s" "$LOG/$n.log"
sfrun 6 "unreachable Hub" HF_ENDPOINT=http://127.0.0.1:9 "$BIN" push "$D" --repo testuser/t9
sfrun 2 "plain http to a non-loopback host is refused" HF_ENDPOINT=http://hub.example.org "$BIN" push "$D" --repo testuser/t9
sfrun 6 "--download of a missing repo: 404" "$BIN" export --base testuser/missing --download --out "$WORK/o1" --format gguf:q8_0
sfrun 6 "export --push-to-hub to a foreign namespace: 403 after the export" \
    "$BIN" export --base "$D" --out "$WORK/o2" --format gguf:q8_0 --push-to-hub someone-else/y
check "the token is in no log ($n runs)" no_token "$LOG"
check "the token is in no file we wrote (output dirs, journals, model cards, HF cache)" \
    no_token "$D" "$WORK/o2" "$HF_HOME/hub" 2>/dev/null
finish
