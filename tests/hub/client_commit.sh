#!/bin/bash
# Commit safety of our client: --create-pr leaves main alone, --revision commits to a branch, a rerun with nothing
# changed sends no byte and makes no commit, and a commit whose answer is lost is never applied twice (parentCommit
# + re-reading the head: the lost commit either had not landed and is retried, or had landed and is recognised).
. "$SHARDFORGE_SOURCE_DIR/tests/hub/client_lib.sh"
start_hub --lfs-threshold 262144
"$BIN" demo "$WORK/d" --hidden 128 --intermediate 256 --layers 1 --vocab 500 >/dev/null 2>&1 || { echo "demo failed"; exit 1; }
D=$WORK/d/base
run() { "$BIN" push "$D" --no-card "$@" >>"$WORK/all.log" 2>&1; }
head_of() { api "/api/models/$1/revision/$2" | $PY -c "import json,sys; print(json.load(sys.stdin)['sha'])"; }

try run --repo testuser/c --commit-message "first"
check "first push exits 0" [ "$RC" -eq 0 ]
h1=$(head_of testuser/c main)
reset_stats
try run --repo testuser/c
check "rerun with nothing changed exits 0" [ "$RC" -eq 0 ]
check "... sends no byte and makes no commit" [ "$(hstat 's["bytesReceived"]["total"] + s["commits"]["total"]')" = 0 ]
check "... main unchanged" [ "$(head_of testuser/c main)" = "$h1" ]

echo '{"changed": true}' >"$D/extra.json"
try run --repo testuser/c --create-pr --commit-message "as a PR"
check "--create-pr exits 0" [ "$RC" -eq 0 ]
check "--create-pr: main unchanged" [ "$(head_of testuser/c main)" = "$h1" ]
check "--create-pr: refs/pr/1 has the new file" sh -c "curl -sf -H 'Authorization: Bearer $TOKEN' '$HUB/api/models/testuser/c/tree/refs%2Fpr%2F1' | grep -q extra.json"
check "--create-pr: the PR url is reported" grep -q "discussions/1" "$WORK/all.log"

curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{}' "$HUB/api/models/testuser/c/branch/dev" >/dev/null
try run --repo testuser/c --revision dev
check "--revision dev exits 0" [ "$RC" -eq 0 ]
check "--revision dev: main did not move" [ "$(head_of testuser/c main)" = "$h1" ]
check "--revision dev: dev moved" [ "$(head_of testuser/c dev)" != "$h1" ]

# Lost answers. (a) The commit is still in flight when we give up (1 s) and the test Hub drops it with the
# connection: head unchanged -> retry with the same parentCommit. One commit.
echo '{"v": 2}' >"$D/extra.json"
reset_stats
faults "commit=slowx1/2500"
SHARDFORGE_HUB_COMMIT_TIMEOUT_S=1 try run --repo testuser/c
check "(a) lost answer, commit not applied: exit 0" [ "$RC" -eq 0 ]
check "(a) two commit requests, exactly one commit" [ "$(hstat 's["requests"]["commit"], s["commits"]["total"]')" = "2 1" ]
# (b) The Hub applies the commit but the answer is lost (connection cut): the head moved and the tree holds our
# files -> success without sending the commit again.
echo '{"v": 3}' >"$D/extra.json"
reset_stats
faults "commit=lostx1"
try run --repo testuser/c
check "(b) lost answer after the commit landed: exit 0" [ "$RC" -eq 0 ]
check "(b) one commit request, one commit" [ "$(hstat 's["requests"]["commit"], s["commits"]["total"]')" = "1 1" ]
check "(b) recognised as landed" grep -q "had landed" "$WORK/all.log"
check "the repo tree equals the folder" tree_matches testuser/c "$D"
# (c) The branch moved under us (412): a clear error, never a blind re-commit.
echo '{"v": 4}' >"$D/extra.json"
reset_stats
faults "commit=412x1"
try run --repo testuser/c
check "(c) 412 (branch moved): exit 6 (network), not retried blindly" [ "$RC" -eq 6 ]
check "(c) one commit request, no commit" [ "$(hstat 's["requests"]["commit"], s["commits"]["total"]')" = "1 0" ]
check "(c) the message says the branch moved" grep -q "412.*branch moved" "$WORK/all.log"
check "the token is not in any output" no_token "$WORK/all.log"
finish
