#!/usr/bin/env python3
"""Load for tests/bench/hostile.sh and memory_probe.sh: heavy queries,
fuzzed requests, mixed load.

    hostile_load.py PORT TOKEN heavy N      N times the 100x100x100 fan-out
    hostile_load.py PORT TOKEN fuzz N       N deterministic mutated requests
    hostile_load.py PORT TOKEN mix SECS     4 clients of mixed traffic
    hostile_load.py PORT TOKEN soak SECS    4 clients of reads, writes, nested
                                            pages and cursor paging, plus 4
                                            WebSocket subscribers that
                                            reconnect and resume

Prints a summary; exits non-zero on any 5xx or INTERNAL answer.
"""
import base64
import http.client
import json
import os
import random
import socket
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


def post(conn, body, token=TOKEN, answer=None):
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
    if answer is not None:
        answer.append(json.loads(text) if text.startswith(b"{") else {})
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


# --- soak: mixed load with subscriptions, for memory_probe.sh SOAK_SECS=... ---

PAGE = ("query($a: String, $f: AccountFilterInput, $o: AccountOrder) { accounts(first: 25, after: $a, "
        "filter: $f, orderBy: $o) { totalCount pageInfo { hasNextPage endCursor } "
        "edges { cursor node { id name industry lifecycleStage version } } } }")
NESTED = ("{ accounts(first: 10) { edges { node { id name contacts(first: 10) { edges { node { id "
          "firstName lastName timeline(first: 10) { edges { node { id title kind occurredAt } } } } } } } } } }")
CONTACTS = ("query($s: String) { contacts(first: 20, filter: {search: $s}) { totalCount "
            "edges { node { id firstName lastName emails { value } account { id name } } } } }")
TIMELINE = ("query($id: ID!) { timeline(subjectType: ACCOUNT, subjectId: $id, first: 20) "
            "{ edges { node { id kind title occurredAt } } } }")
NODE = "query($id: ID!) { node(id: $id) { id ... on Account { name version } } }"
CREATE = "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id version } }"
UPDATE = "mutation($i: UpdateAccountInput!) { updateAccount(input: $i) { id version } }"
CONTACT = ("mutation($i: CreateContactInput!) { createContact(input: $i) { id } }")
LOG = "mutation($i: CreateActivityInput!) { logActivity(input: $i) { id } }"
SUBSCRIPTIONS = ["subscription($a: String) { events(after: $a) { cursor topic kind entityId payload } }",
                 "subscription($a: String) { customerEvents(after: $a) { cursor kind entityId payload } }"]
# Seconds between one client's requests: the load is steady, not a
# throughput test, and leaves CPU to the rest of the machine.
PAUSE = float(os.environ.get("SOAK_PAUSE", "0.01"))


class WebSocket:
    """Just enough of a WebSocket client (RFC 6455) for graphql-transport-ws."""

    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError(f"no upgrade: {head[:80]!r}")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("closed by the server")
        self.buf += chunk

    def _frame(self, opcode, data):
        mask = os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes([0x80 | opcode]) + size + mask + masked)

    def send(self, message):
        self._frame(0x1, json.dumps(message).encode())

    def _parse(self):
        """(opcode, data) of the first whole frame in the buffer, or None."""
        b = self.buf
        if len(b) < 2:
            return None
        n, at = b[1] & 0x7F, 2
        if n == 126:
            n, at = (int.from_bytes(b[2:4], "big"), 4) if len(b) >= 4 else (1 << 62, 4)
        elif n == 127:
            n, at = (int.from_bytes(b[2:10], "big"), 10) if len(b) >= 10 else (1 << 62, 10)
        if len(b) < at + n:
            return None
        self.buf = b[at + n:]
        return b[0] & 0x0F, b[at:at + n]

    def recv(self):
        """The next text message (parsed), or None once the server closed.
        A socket timeout leaves a partly received frame in the buffer."""
        while True:
            frame = self._parse()
            if frame is None:
                self._fill()
            elif frame[0] == 0x8:
                return None
            elif frame[0] == 0x9:
                self._frame(0xA, frame[1])
            elif frame[0] == 0x1:
                return json.loads(frame[1])

    def close(self):
        try:
            self._frame(0x8, (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()


def subscriber(k, deadline, stats):
    """Subscribes, reads events, and every 20-50 s disconnects and resumes
    after the last cursor it received."""
    rng, after = random.Random(100 + k), None
    while time.time() < deadline:
        try:
            ws = WebSocket()
            ws.send({"type": "connection_init", "payload": {"authorization": f"Bearer {TOKEN}"}})
            ack = ws.recv()
            if not ack or ack.get("type") != "connection_ack":
                raise OSError(f"no ack: {ack}")
            ws.send({"type": "subscribe", "id": "1",
                     "payload": {"query": SUBSCRIPTIONS[k % 2], "variables": {"a": after}}})
            stats["connections"] += 1
            ws.sock.settimeout(1.0)
            until = min(deadline, time.time() + rng.uniform(20, 50))
            while time.time() < until:
                try:
                    m = ws.recv()
                except socket.timeout:
                    continue
                if m is None:
                    raise OSError("closed by the server")
                if m.get("type") == "next":
                    data = m["payload"].get("data") or {}
                    event = data.get("events") or data.get("customerEvents")
                    if event:
                        after = event["cursor"]
                        stats["events"] += 1
                    else:
                        failures.append(("subscription", m))
                elif m.get("type") in ("error", "complete"):
                    failures.append(("subscription", m))
                    break
            ws.close()
        except OSError as e:
            stats["errors"] += 1
            failures.append(("subscription", str(e)))
            time.sleep(1)


def soak(secs):
    deadline = time.time() + secs
    counts, refused = {}, {}
    subs = {"connections": 0, "events": 0, "errors": 0}

    def call(c, kind, query, variables, rng):
        answer = []
        body = {"query": query, "variables": variables}
        post(c, body if kind != "fuzz" else fuzz_body(rng), answer=answer)
        counts[kind] = counts.get(kind, 0) + 1
        a = answer[0] if answer else {}
        for e in a.get("errors") or []:
            code = (e.get("extensions") or {}).get("code", "?")
            refused[(kind, code)] = refused.get((kind, code), 0) + 1
        return a.get("data") or {}

    def client(k):
        rng, c = random.Random(k), conn()
        mine = {}  # id -> version of accounts this client created
        cursor, ids = None, []
        while time.time() < deadline:
            r = rng.random()
            try:
                if r < 0.30:  # cursor paging through accounts, some filtered or ordered
                    f = rng.choice([None, {"search": rng.choice("aeiou")}, {"lifecycleStage": "ACTIVE"}])
                    o = rng.choice([None, {"field": "CREATED_AT", "direction": "DESC"}])
                    d = call(c, "page", PAGE, {"a": cursor, "f": f, "o": o} if cursor else {"f": f, "o": o}, rng)
                    page = d.get("accounts") or {}
                    ids = [e["node"]["id"] for e in page.get("edges", [])] or ids
                    info = page.get("pageInfo") or {}
                    cursor = info.get("endCursor") if info.get("hasNextPage") and rng.random() < 0.8 else None
                elif r < 0.40:
                    call(c, "nested", NESTED, {}, rng)
                elif r < 0.50:
                    call(c, "contacts", CONTACTS, {"s": rng.choice(["an", "el", "ma", "o", None])}, rng)
                elif r < 0.60 and ids:
                    call(c, "timeline", TIMELINE, {"id": rng.choice(ids)}, rng)
                elif r < 0.66 and ids:
                    call(c, "node", NODE, {"id": rng.choice(ids)}, rng)
                elif r < 0.74 or not mine:
                    d = call(c, "create", CREATE, {"i": {"name": f"Soak {k}-{rng.randrange(10**9)}"}}, rng)
                    if d.get("createAccount"):
                        mine[d["createAccount"]["id"]] = d["createAccount"]["version"]
                elif r < 0.84:
                    acc = rng.choice(list(mine))
                    d = call(c, "update", UPDATE, {"i": {"id": acc, "version": mine[acc],
                                                          "notes": "x" * rng.randrange(1, 2000)}}, rng)
                    if d.get("updateAccount"):
                        mine[acc] = d["updateAccount"]["version"]
                elif r < 0.90:
                    call(c, "contact", CONTACT, {"i": {"firstName": "Soak", "lastName": str(rng.randrange(10**6)),
                                                       "accountId": rng.choice(list(mine))}}, rng)
                elif r < 0.96:
                    call(c, "activity", LOG, {"i": {"kind": "NOTE", "subjectType": "ACCOUNT",
                                                    "subjectId": rng.choice(list(mine)),
                                                    "title": "soak", "body": "y" * rng.randrange(1, 4000)}}, rng)
                else:
                    call(c, "fuzz", None, None, rng)
            except (http.client.HTTPException, OSError):
                c = conn()
            if len(mine) > 200:  # keep updating a bounded set
                mine.pop(next(iter(mine)))
            time.sleep(PAUSE)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=subscriber, args=(k, deadline, subs)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts.values())
    print(f"soak: {total} requests in {secs} s ("
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "); "
          + f"subscriptions: {subs['connections']} connections, {subs['events']} events, {subs['errors']} errors")
    if refused:
        print("  errors answered: " + ", ".join(f"{k} {c}: {n}" for (k, c), n in sorted(refused.items())))


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
elif MODE == "soak":
    soak(N)
if failures:
    for f in failures[:5]:
        print("FAILED:", f, file=sys.stderr)
    sys.exit(1)
