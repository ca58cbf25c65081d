#!/usr/bin/env bash
# Throughput of the Personify360 simulator under wrk: the email lookup the dispatcher makes for every
# writeback, and Save. The simulator must never be the bottleneck of a benchmark (issue 3: >= 1,500
# requests/s at 8 connections on loopback, no injected latency).
#
# Usage: bench/sim_wrk.sh [DURATION]   (default 10s; needs `wrk`, e.g. apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10s}
CONSTITUENTS=${CONSTITUENTS:-20000}
PYTHON=${PYTHON:-.venv/bin/python}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

work=$(mktemp -d)
sim_pid=""
cleanup() {
    if [[ -n "$sim_pid" ]]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Constituents m000000000001 … with emails c1@example.org …
"$PYTHON" - "$CONSTITUENTS" >"$work/constituents.jsonl" <<'EOF'
import json, sys
for i in range(1, int(sys.argv[1]) + 1):
    print(json.dumps({"master_customer_id": f"{i:012d}", "sub_customer_id": 0,
                      "email": f"c{i}@example.org", "first_name": "Bench", "last_name": f"No{i}"}))
EOF

"$PYTHON" -m writeback_console.sim --users u:p --constituents "$work/constituents.jsonl" \
    --db "$work/sim.sqlite3" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 100); do
    grep -q serving "$work/sim.out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^Personify360 simulator serving //p' "$work/sim.out")
[[ -n "$url" ]] || { echo "simulator did not start:" >&2; cat "$work/sim.err" >&2; exit 1; }
path=${url#http://*/}
base=${url%/"$path"}
path="/$path"

# Each request looks up a different, random constituent's email, as the dispatcher does.
cat >"$work/lookup.lua" <<EOF
math.randomseed(os.time())
wrk.headers["Authorization"] = "Basic dTpw"
wrk.headers["Accept"] = "application/json"
request = function()
    local i = math.random(1, $CONSTITUENTS)
    return wrk.format("GET", "$path/CusCommunications?\$filter=CommTypeCodeString%20eq%20%27EMAIL%27%20and%20FormattedPhoneAddress%20eq%20%27c" .. i .. "%40example.org%27")
end
EOF

cat >"$work/save.lua" <<EOF
math.randomseed(os.time())
wrk.headers["Authorization"] = "Basic dTpw"
wrk.headers["Accept"] = "application/json"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["AddModOper"] = "WRITEBACK"
local n = 0
request = function()
    n = n + 1
    local i = math.random(1, $CONSTITUENTS)
    local body = string.format('{"MasterCustomerId":"%012d","SubCustomerId":0,"ActivityCode":"INFORMZ_UNSUB",'
        .. '"ActivitySubcode":null,"ActivityDate":"/Date(1795000000000)/","Subsystem":"CUS",'
        .. '"ActivityText":"Unsubscribed in Informz account \\\\"bench\\\\" [ref WB-BENCH%d]"}', i, n)
    return wrk.format("POST", "$path/Save?EntityName=%27CusActivity%27", nil, body)
end
EOF

# A failed request would make the figure meaningless, so check both once before measuring.
curl -fsS -u u:p -H 'Accept: application/json' \
    "$url/CusCommunications?\$filter=FormattedPhoneAddress%20eq%20%27c1%40example.org%27" >/dev/null
echo "== lookup: wrk -t2 -c8 -d$DURATION (CusCommunications \$filter by email)"
wrk -t2 -c8 -d"$DURATION" --latency -s "$work/lookup.lua" "$base" | tee "$work/lookup.txt"
echo
echo "== save: wrk -t2 -c8 -d$DURATION (POST Save?EntityName='CusActivity')"
wrk -t2 -c8 -d"$DURATION" --latency -s "$work/save.lua" "$base" | tee "$work/save.txt"
echo
saved=$("$PYTHON" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from CUS_ACTIVITY').fetchone()[0])" "$work/sim.sqlite3")
echo "activities stored during the save run: $saved"
if grep -q "Non-2xx" "$work/lookup.txt" "$work/save.txt"; then
    echo "some requests failed; the figures above are not valid" >&2
    exit 1
fi
