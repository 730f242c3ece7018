#!/usr/bin/env python3
"""Load for tests/bench/hostile.sh: heavy queries, fuzzed requests, mixed load.

    hostile_load.py PORT TOKEN heavy N      N times the 100x100x100 fan-out
    hostile_load.py PORT TOKEN fuzz N       N deterministic mutated requests
    hostile_load.py PORT TOKEN mix SECS     4 clients of mixed traffic

Prints one summary line; exits non-zero on any 5xx or INTERNAL answer.
"""
import http.client
import json
import random
import sys
import threading
import time

PORT, TOKEN, MODE, N = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

HEAVY = ("{ accounts(first: 100) { edges { node { id name contacts(first: 100) { edges { node { id "
         "firstName lastName timeline(first: 100) { edges { node { id title occurredAt } } } } } } } } } }")
SEEDS = [
    ("{ me { id email roles } }", {}),
    ("query($n: Int) { accounts(first: $n) { totalCount edges { cursor node { id name lifecycleStage } } } }", {"n": 20}),
    ("query($f: AccountFilterInput) { accounts(filter: $f, first: 5) { totalCount } }", {"f": {"search": "a"}}),
    ("{ accounts(first: 50) { edges { node { name contacts(first: 10) { edges { node { firstName "
     "timeline(first: 5) { edges { node { title } } } } } } } } } }", {}),
    ("mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }", {"i": {"name": "Load"}}),
    ("query($id: ID!) { node(id: $id) { id } }", {"id": "acc_x"}),
]
TOKENS = ["{", "}", "(", ")", "$", "...", "\"", "\\u0000", "null", "-1", "1e308", "\"ACTIVE\"",
          "__schema", "first: 100", "after: \"!!\"", "\x00", "💥"]
NOISE = [None, -1, 1e300, "", "\x00", "x" * 60000, [1, "a"], {"b": []}, True, "acc_\x00"]

failures = []


def post(conn, body, token=TOKEN):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request("POST", "/graphql", json.dumps(body), headers)
    resp = conn.getresponse()
    text = resp.read()
    if resp.status >= 500 or b'"INTERNAL"' in text:
        failures.append((resp.status, body, text[:300]))
    if resp.getheader("connection", "").lower() == "close":
        conn.close()
    return len(text)


def mutate(rng, q):
    chars = list(q)
    for _ in range(rng.randint(1, 3)):
        if not chars:
            break
        at = rng.randrange(len(chars))
        op = rng.randrange(4)
        if op == 0:
            del chars[at]
        elif op == 1:
            chars = chars[:at]
        else:
            chars[at:at] = list(rng.choice(TOKENS))
    return "".join(chars)


def fuzz_body(rng):
    q, v = rng.choice(SEEDS)
    v = json.loads(json.dumps(v))
    if rng.random() < 0.6:
        q = mutate(rng, q)
    if rng.random() < 0.5 and v:
        v[rng.choice(list(v))] = rng.choice(NOISE)
    return {"query": q, "variables": v}


def conn():
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)


if MODE == "heavy":
    c, total = conn(), 0
    for _ in range(N):
        total += post(c, {"query": HEAVY})
    print(f"heavy: {N} requests, {total / N / 1e6:.1f} MB per response")
elif MODE == "fuzz":
    rng, c = random.Random(2026), conn()
    for _ in range(N):
        post(c, fuzz_body(rng), TOKEN if rng.random() < 0.8 else None)
    print(f"fuzz: {N} requests")
elif MODE == "mix":
    deadline = time.time() + N
    counts = [0] * 4

    def client(k):
        rng, c = random.Random(k), conn()
        while time.time() < deadline:
            r = rng.random()
            if r < 0.05:
                body = {"query": HEAVY.replace("first: 100", "first: 20")}
            elif r < 0.25:
                body = fuzz_body(rng)
            else:
                q, v = rng.choice(SEEDS)
                body = {"query": q, "variables": v}
            try:
                post(c, body)
            except (http.client.HTTPException, OSError):
                c = conn()
            counts[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"mix: {sum(counts)} requests in {N} s")
if failures:
    for f in failures[:5]:
        print("FAILED:", f, file=sys.stderr)
    sys.exit(1)
