"""A minimal HTTP/1.1 webhook receiver for tests/bench/webhooks.sh.

Answers every POST with 200 at once and records, per request, the receipt
time and the event time from the Standard Webhooks payload (`timestamp`).
On SIGTERM (or SIGINT) it writes one JSON line per request to the file given
as its second argument and exits.

    python3 webhook_receiver.py PORT OUT_FILE
"""
import asyncio
import json
import signal
import sys
import time

PORT, OUT = int(sys.argv[1]), sys.argv[2]
got = []  # (received_at, body)
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            got.append((time.time(), body))
            writer.write(OK)
            await writer.drain()
            break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def dump():
    with open(OUT, "w") as f:
        for at, body in got:
            try:
                ts = json.loads(body).get("timestamp")
            except ValueError:
                ts = None
            f.write(json.dumps({"at": at, "timestamp": ts}) + "\n")


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()
    dump()


asyncio.run(main())
