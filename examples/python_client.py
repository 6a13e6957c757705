#!/usr/bin/env python3
"""A client of sagad written from docs/protocol.md alone, with pyzmq (Debian's python3-zmq).

It places one order, then plays the payment, warehouse and courier services:
each time sagad publishes a request for this order, it sends the answer a
healthy service would. It prints the order's follow-on events and exits 0
when order.completed arrives (1 after --timeout seconds without it).

    python3 examples/python_client.py --ingress tcp://127.0.0.1:5570 \
        --events tcp://127.0.0.1:5571 --replay tcp://127.0.0.1:5572

With --db FILE it is a durable subscriber (docs/reconciliation.md): each event it
receives is written to FILE's saga_received table, in the same transaction as
what handling it did (the answers sent), so a crash never leaves "received" and
"processed" apart, and a restart resumes after the last recorded sequence. Its
answers carry ids derived from the request's, so an answer sent again after a
crash is a duplicate at sagad. `sagactl reconcile --subscriber-db FILE` then
compares FILE with sagad's log; `--db FILE --digest FROM TO` prints FILE's range
digest of FROM..TO (the same as sagad's replay socket computes) and exits.

Against a sagad with CURVE (docs/security.md), add --server-key sagad.key
--key NAME.key_secret (or SAGA_SERVER_KEY and SAGA_KEY): every socket then
uses CURVE. The key's line in sagad's authorized keys needs roles=subscriber,
sources=urn:example:python and the types it sends (order.placed, ANSWERS').
"""
import argparse
import hashlib
import json
import os
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone

import zmq
import zmq.auth

ANSWERS = {  # request type -> the events a healthy service sends back
    "payment.requested": ["payment.succeeded"],
    "inventory.reservation.requested": ["inventory.reserved"],
    "shipment.requested": ["shipment.dispatched", "delivery.started", "delivery.confirmed"],
}


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def curve_keys(server_key, key_file):
    """The three CURVE socket options, or {} for plaintext (neither given)."""
    if not server_key and not key_file:
        return {}
    if not server_key or not key_file:
        sys.exit("CURVE needs both --server-key and --key")
    if os.path.exists(server_key):  # sagad's NAME.key, else its 40-character key
        server_key = zmq.auth.load_certificate(server_key)[0].decode()
    public, secret = zmq.auth.load_certificate(key_file)
    if secret is None:
        sys.exit(f"{key_file} holds no secret key: give the NAME.key_secret file")
    return {zmq.CURVE_SERVERKEY: server_key.encode(), zmq.CURVE_PUBLICKEY: public,
            zmq.CURVE_SECRETKEY: secret}


def connect(ctx, type_, endpoint, curve):
    sock = ctx.socket(type_)
    sock.setsockopt(zmq.LINGER, 0)
    for option, value in curve.items():  # before connect: the handshake uses them
        sock.setsockopt(option, value)
    sock.connect(endpoint)
    return sock


def make_event(type_, subject, data, id_=None):
    return {"specversion": "1.0", "id": id_ or str(uuid.uuid4()), "source": "urn:example:python",
            "type": type_, "subject": subject, "time": now(),
            "datacontenttype": "application/json", "data": data}


class Ingress:
    """DEALER to the ingress: send an event, wait for its ack, resend on timeout."""

    def __init__(self, ctx, endpoint, curve):
        self.sock = connect(ctx, zmq.DEALER, endpoint, curve)

    def send(self, event, timeout_ms=2000, tries=5):
        body = json.dumps(event).encode()
        for _ in range(tries):
            self.sock.send_multipart([b"", body])
            while self.sock.poll(timeout_ms):
                _, reply = self.sock.recv_multipart()
                ack = json.loads(reply)
                if ack["id"] == event["id"] and ack["source"] == event["source"]:
                    if ack["status"] == "rejected":
                        raise RuntimeError(f"{event['type']} rejected: {ack['reason']}")
                    return ack
        raise RuntimeError(f"no ack for {event['id']} after {tries} tries")


class DurableInbox:
    """Our own record of what sagad published: one row per sequence, written in the transaction
    that handles the event; an event already processed (same source and id) is recorded as a
    duplicate and not handled again. The same table as saga::zmq::durable_subscriber's."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS saga_received (
          sequence INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
          payload TEXT NOT NULL, received_ms INTEGER NOT NULL, outcome TEXT NOT NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS saga_received_processed ON saga_received (source, id)
          WHERE outcome = 'processed';"""

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)  # transactions are ours
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(self.SCHEMA)

    def position(self):
        return self.db.execute("SELECT coalesce(max(sequence), 0) FROM saga_received").fetchone()[0]

    def handle(self, seq, raw, event, process):
        """Records `event` (its payload as published: `raw`) and runs process(db, event) in one
        transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            source, id_ = str(event.get("source", "")), str(event.get("id", ""))
            seen = self.db.execute("SELECT 1 FROM saga_received WHERE source = ? AND id = ? AND "
                                   "outcome = 'processed'", (source, id_)).fetchone()
            if not seen:
                process(self.db, event)
            self.db.execute("INSERT INTO saga_received VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (seq, source, id_, str(event.get("type", "")), raw.decode(),
                             int(time.time() * 1000), "duplicate" if seen else "processed"))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def digest(self, first, last):
        """The range digest of first..last (docs/reconciliation.md): SHA-256 over one line per
        event, "<sequence>\\t<id>\\t<type>\\t<SHA-256 of the payload>\\n", and the count."""
        h, count = hashlib.sha256(), 0
        for seq, id_, type_, payload in self.db.execute(
                "SELECT sequence, id, type, payload FROM saga_received WHERE sequence BETWEEN ? AND ? "
                "ORDER BY sequence", (first, last)):
            payload_hash = hashlib.sha256(payload.encode()).hexdigest()
            h.update(f"{seq}\t{id_}\t{type_}\t{payload_hash}\n".encode())
            count += 1
        return {"from": first, "to": last, "count": count, "sha256": h.hexdigest()}


class Events:
    """SUB on the events socket, filling gaps from replay; yields (sequence, event)."""

    def __init__(self, ctx, events_endpoint, replay_endpoint, curve, after=None):
        self.sub = connect(ctx, zmq.SUB, events_endpoint, curve)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")  # everything: we filter ourselves
        self.replay = connect(ctx, zmq.DEALER, replay_endpoint, curve)
        # After `after`, or from what is published now.
        self.last = self.fetch(0, limit=0)[0] if after is None else after

    def fetch(self, start, limit=1000):
        self.replay.send_multipart([b"", json.dumps({"from": start, "limit": limit}).encode()])
        if not self.replay.poll(5000):
            raise RuntimeError("replay did not answer")
        frames = self.replay.recv_multipart()[1:]
        header = json.loads(frames[0])
        if "error" in header:
            raise RuntimeError(f"replay: {header}")
        pairs = [(int(frames[i]), frames[i + 1]) for i in range(1, len(frames), 2)]
        return header["last"], pairs

    def poll(self, timeout_ms):
        out = []
        if not self.sub.poll(timeout_ms):
            return out
        type_, seq, body = self.sub.recv_multipart()
        seq = int(seq)
        if type_ == b"saga.heartbeat" or seq > self.last + 1:
            target = seq
            while self.last < target:  # catch up through replay
                last, pairs = self.fetch(self.last + 1)
                for s, e in pairs:
                    if s > self.last:
                        out.append((s, e))
                        self.last = s
                if not pairs or self.last >= last:
                    break
        if type_ != b"saga.heartbeat" and seq == self.last + 1:
            out.append((seq, body))
            self.last = seq
        return out  # (sequence, the CloudEvent's bytes as published)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ingress", default="tcp://127.0.0.1:5570")
    p.add_argument("--events", default="tcp://127.0.0.1:5571")
    p.add_argument("--replay", default="tcp://127.0.0.1:5572")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--db", metavar="FILE", help="be a durable subscriber recording into FILE")
    p.add_argument("--digest", nargs=2, type=int, metavar=("FROM", "TO"),
                   help="with --db: print FILE's range digest of FROM..TO and exit")
    p.add_argument("--server-key", metavar="FILE_OR_KEY", default=os.environ.get("SAGA_SERVER_KEY"),
                   help="sagad's public key: its NAME.key file or the 40-character key")
    p.add_argument("--key", metavar="NAME.key_secret", default=os.environ.get("SAGA_KEY"),
                   help="this client's key pair, from sagactl keygen")
    args = p.parse_args()

    inbox = DurableInbox(args.db) if args.db else None
    if args.digest:
        if not inbox:
            sys.exit("--digest needs --db")
        print(json.dumps(inbox.digest(*args.digest)))
        return 0
    curve = curve_keys(args.server_key, args.key)
    ctx = zmq.Context()
    events = Events(ctx, args.events, args.replay, curve, inbox.position() if inbox else None)
    ingress = Ingress(ctx, args.ingress, curve)

    order = f"py-{uuid.uuid4().hex[:12]}"
    data = {"order_id": order, "amount": 2599, "currency": "EUR", "customer_id": "c-py",
            "items": [{"sku": "BOOK-42", "qty": 1}]}
    ack = ingress.send(make_event("order.placed", order, data))
    print(f"placed {order}: {ack['status']}/{ack['outcome']} -> {ack['saga']['state']}", flush=True)

    completed = []

    def process(_db, event):
        if event.get("subject") != order:
            return
        print(f"  {event['type']}", flush=True)
        if event["type"] == "order.completed":
            completed.append(event)
        for answer in ANSWERS.get(event["type"], []):
            # An id derived from the request's: sent again after a crash, it is a duplicate.
            ack = ingress.send(make_event(answer, order, event["data"], f"{event['id']}:{answer}"))
            print(f"    sent {answer}: {ack['status']} -> {ack['saga']['state']}", flush=True)

    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not completed:
        for seq, raw in events.poll(200):
            event = json.loads(raw)
            if inbox:
                inbox.handle(seq, raw, event, process)
            else:
                process(None, event)
    if completed:
        print(f"{order} reached done")
        return 0
    print(f"{order}: no order.completed within {args.timeout} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
