#!/usr/bin/env bash
# The service benchmark of issue 12, from a second process on loopback: POST 10,000
# contacts (three times, each into a fresh two-step sequence), then pages of enrollments
# under load with wrk (Debian's `wrk`). Needs curl, jq, python3 and wrk.
#
# Start the service first (release build), with tenant acme's key KEY1, e.g.
#   cargo build --release -p sequence-service
#   target/release/sequence_service --memory --listen 127.0.0.1:18090 --api-key acme=KEY1
# then: service/scripts/bench.sh 18090
set -euo pipefail
port="${1:?usage: bench.sh PORT}"
U="http://127.0.0.1:$port"
H='Authorization: Bearer KEY1'
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -sf -XPOST "$U/api/v1/mailboxes" -H "$H" \
    -d '{"address":"ana@sender.example","daily_limit":5000}' >/dev/null
for run in 1 2 3; do
    id=$(curl -sf -XPOST "$U/api/v1/sequences" -H "$H" -d '{"name":"bench","steps":[
        {"subject":"Hi {{ first_name }}","body":"b"},{"subject":"b","body":"b","wait_days":2}]}' |
        jq -r .id)
    curl -sf -XPOST "$U/api/v1/sequences/$id/activate" -H "$H" >/dev/null
    python3 -c "import json; print(json.dumps({'contacts': [{'email': f'r$run-c{i}@client{i % 50}.example',
        'first_name': f'N{i}', 'last_name': 'L', 'company': 'C'} for i in range(10000)]}))" \
        >"$work/body.json"
    curl -s -o "$work/out.json" -XPOST "$U/api/v1/sequences/$id/contacts" -H "$H" \
        -H 'content-type: application/json' --data-binary @"$work/body.json" \
        -w "run $run: POST 10,000 contacts: %{http_code} in %{time_total} s, " 
    jq -r '"\(.contacts_added) enrolled"' "$work/out.json"
done
for query in "status=active&limit=100" "limit=100"; do
    echo "GET enrollments?$query, 2 threads, 16 connections, 8 s:"
    wrk -t2 -c16 -d8s --latency -H "$H" "$U/api/v1/sequences/$id/enrollments?$query" |
        grep -E "Requests/sec|^ +(50|99)%|Non-2xx|Socket errors"
done
