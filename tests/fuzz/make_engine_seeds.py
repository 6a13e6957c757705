#!/usr/bin/env python3
"""Writes the seed corpus of engine_fuzz (tests/fuzz/corpus/engine/).

The input format is described at the top of engine_fuzz.cpp. Type indices
follow the catalogue the target builds (every consumed type of
order_lifecycle, payment_notice, account_lockout, in table order, then the
operator and stray types); if a definition gains a type the seeds still run,
they only start elsewhere. Run: python3 tests/fuzz/make_engine_seeds.py
"""
import os

T = {name: i for i, name in enumerate([
    "order.placed", "payment.succeeded", "payment.failed", "saga.timer.payment_timeout",
    "order.cancel.requested", "inventory.reserved", "inventory.unavailable", "shipment.dispatched",
    "delivery.started", "delivery.confirmed", "delivery.failed", "payment.refunded",
    "payment.refund.failed", "saga.timer.shipment_deadline",
    "payment_notice.created", "premium.paid", "saga.timer.due_date", "saga.timer.grace",
    "auth.login.failed", "auth.login.succeeded", "saga.timer.unlock",
    "saga.operator.abort", "saga.operator.resolve", "saga.operator.x", "saga.timer.unknown", "unknown.type"])}
FIELD = {n: i for i, n in enumerate(["order_id", "amount", "currency", "customer_id", "items", "notice_id",
                                     "policy_id", "due", "saga_type", "to", "reason", "operator", "timer",
                                     "generation", "x"])}
FLUSH, FLUSH_EVENTS = bytes([4, 0]), bytes([4, 1])
HOUSEKEEPING = bytes([7])
STEP = {"1s": 0, "1min": 1, "15min": 2, "30min": 3, "1h": 4, "48h": 5, "24h": 6, "14d": 7, "back1h": 8}


def ev(t, key=0, source=0, id_=0, flags=0, hint=0, mutations=()):
    out = bytes([0, T[t], key, source, id_, flags | len(mutations), hint])
    for field, value in mutations:
        out += bytes([FIELD[field]]) + bytes(value)
    return out


def advance(step):
    return bytes([5, STEP[step]])


def raw(text):
    b = text.encode() if isinstance(text, str) else text
    return bytes([6, len(b)]) + b


seeds = {}
order_path = ["order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched",
              "delivery.started", "delivery.confirmed"]
seeds["order_happy_path"] = b"".join(ev(t, id_=i) for i, t in enumerate(order_path)) + FLUSH_EVENTS
seeds["order_timeout_duplicate_abort"] = (ev("order.placed") + FLUSH + advance("15min") + ev("order.placed")
                                          + ev("saga.operator.abort", id_=9) + ev("order.placed", key=1, id_=1)
                                          + ev("saga.operator.abort", key=1, id_=10) + FLUSH)
seeds["order_out_of_order_parked"] = (ev("payment.succeeded", id_=1) + ev("inventory.reserved", id_=2) + FLUSH
                                      + ev("order.placed", id_=0) + FLUSH + advance("48h"))
seeds["order_refunds_then_resolve"] = (
    b"".join(ev(t, id_=i) for i, t in enumerate(["order.placed", "payment.succeeded", "inventory.unavailable",
                                                 "payment.refund.failed"]))
    + ev("payment.refund.failed", id_=4) + ev("payment.refund.failed", id_=5) + FLUSH
    + ev("saga.operator.resolve", id_=6, hint=0x10) + FLUSH)
seeds["notice_due_grace_lapse"] = (ev("payment_notice.created", key=2, hint=0) + FLUSH + advance("1h")
                                   + advance("14d") + ev("premium.paid", key=2, id_=1) + FLUSH)
seeds["lockout_three_failures_unlock"] = (b"".join(ev("auth.login.failed", key=3, id_=i) for i in range(3)) + FLUSH
                                          + ev("auth.login.failed", key=3, id_=3) + advance("30min")
                                          + ev("auth.login.succeeded", key=3, id_=4) + FLUSH)
# Operator actions with wrong JSON types, and forged engine ids.
seeds["operator_type_confusion"] = (
    ev("order.placed") + FLUSH
    + ev("saga.operator.resolve", id_=1, mutations=[("saga_type", [3])])
    + ev("saga.operator.abort", id_=2, mutations=[("saga_type", [21])])
    + ev("saga.operator.abort", id_=3, mutations=[("reason", [23]), ("operator", [1])])
    + ev("saga.operator.resolve", id_=4, mutations=[("to", [22])])
    + ev("saga.timer.payment_timeout", source=3, id_=201)
    + ev("payment.succeeded", source=3, id_=5) + FLUSH)
seeds["order_placed_type_confusion"] = (
    ev("order.placed", key=0, mutations=[("amount", [14])])
    + ev("order.placed", key=1, id_=1, mutations=[("currency", [5]), ("items", [14])])
    + ev("order.placed", key=2, id_=2, mutations=[("amount", [11])])
    + ev("order.placed", key=3, id_=3, mutations=[("order_id", [19]), ("customer_id", [24, 40])])
    + ev("payment_notice.created", key=4, id_=4, mutations=[("due", [16])])
    + ev("order.placed", key=0, id_=5, flags=0x20, hint=0) + bytes([21]) + FLUSH)
seeds["raw_and_housekeeping"] = (
    raw('{"specversion":"1.0","id":"r1","source":"urn:test:raw","type":"order.placed","subject":"k0",'
        '"data":{"amount":5,"currency":"EUR"}}')
    + raw(b'{"specversion":"1.0","id":\xc3\x28}') + FLUSH
    + b"".join(ev("unknown.type", id_=i) for i in range(20)) + FLUSH + advance("48h") + HOUSEKEEPING)

def corrupt(what, key):
    return bytes([0x83, what, key])


# Stored rows made undecodable: a saga's data, then a parked payload.
seeds["corrupt_saga_data_and_parked"] = (
    ev("order.placed") + FLUSH + corrupt(2, 0) + ev("payment.succeeded", id_=1) + FLUSH
    + ev("payment.succeeded", key=1, id_=2) + FLUSH + corrupt(1, 1) + ev("order.placed", key=1, id_=3) + FLUSH
    + ev("auth.login.failed", key=2, id_=4) + FLUSH + corrupt(8, 2) + ev("auth.login.failed", key=2, id_=5)
    + FLUSH)

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "engine")
os.makedirs(here, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {here}")
