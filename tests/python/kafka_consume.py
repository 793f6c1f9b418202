"""Reads Kafka topics from the beginning with confluent-kafka (librdkafka) and prints each record.

Usage: kafka_consume.py --bootstrap HOST:PORT --topic T [--topic T2 ...] --count N
                        [--timeout SECS] [--to-end] [--no-payload] [--config KEY=VALUE ...]

--config adds a librdkafka setting (security.protocol, ssl.ca.location, sasl.mechanism, ...)
to the consumer's; it may be repeated.

Every partition of every topic is assigned at its beginning (no consumer group, nothing
committed). Reading stops once N records were read, or when --timeout seconds have passed.
With --to-end it then goes on until every partition is at the high watermark it has at that
moment, so records beyond N (duplicates, strays) are printed too.

stdout: one JSON object per record, in the order received (per partition that is offset
order): {"topic", "partition", "offset", "key", "value", "timestamp_type", "timestamp_ms",
"headers"}; key and value are base64 or null, timestamp_type is "create", "log_append" or
"none", headers is a list of [name, base64 value or null] in record order. With --no-payload,
key and value are left out (for runs of many records).
stderr, last line: {"summary": {"records": R, "reached_count": bool, "elapsed_s": S}}.
Exit 0 when N records were read (and, with --to-end, the end reached), 3 on timeout, 1 on a
Kafka error, 2 on bad arguments. A watchdog alarm ends the process if anything hangs.
"""

import argparse
import base64
import json
import signal
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

POLL_SECS = 0.2
METADATA_TIMEOUT = 10.0
WATERMARK_TIMEOUT = 10.0
WATCHDOG_GRACE = 30
TIMESTAMP_TYPES = {0: "none", 1: "create", 2: "log_append"}


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def die(code, message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", action="append", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--to-end", action="store_true")
    p.add_argument("--no-payload", action="store_true")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    for kv in a.config:
        if "=" not in kv:
            p.error(f"--config {kv!r}: expected KEY=VALUE")
    return a


def assignment(consumer, topics):
    """Every partition of `topics` at its beginning; fails if a topic is missing."""
    md = consumer.list_topics(timeout=METADATA_TIMEOUT)
    out = []
    for t in topics:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None or not tm.partitions:
            die(1, f"topic {t!r} not in metadata: {tm.error if tm else 'absent'}")
        out += [TopicPartition(t, p, OFFSET_BEGINNING) for p in sorted(tm.partitions)]
    return out


def encode(msg, with_payload):
    ts_type, ts = msg.timestamp()
    rec = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_type": TIMESTAMP_TYPES.get(ts_type, str(ts_type)),
        "timestamp_ms": ts,
        "headers": [[k, b64(v)] for k, v in (msg.headers() or [])],
    }
    if with_payload:
        rec["key"] = b64(msg.key())
        rec["value"] = b64(msg.value())
    return rec


def high_watermarks(consumer, parts):
    out = {}
    for tp in parts:
        _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                 timeout=WATERMARK_TIMEOUT)
        out[(tp.topic, tp.partition)] = high
    return out


def main():
    a = parse_args()
    signal.alarm(int(a.timeout) + WATCHDOG_GRACE)
    consumer = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": "outpost-test-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "socket.timeout.ms": 10000,
        **dict(kv.split("=", 1) for kv in a.config),
    })
    parts = assignment(consumer, a.topic)
    consumer.assign(parts)
    start = time.monotonic()
    deadline = start + a.timeout
    n = 0
    next_offset = {}
    ends = None
    out = sys.stdout
    while time.monotonic() < deadline:
        if n >= a.count:
            if not a.to_end:
                break
            if ends is None:
                ends = high_watermarks(consumer, parts)
            if all(next_offset.get(k, 0) >= v for k, v in ends.items()):
                break
        msg = consumer.poll(POLL_SECS)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            die(1, f"consume error: {msg.error()}")
        out.write(json.dumps(encode(msg, not a.no_payload)) + "\n")
        next_offset[(msg.topic(), msg.partition())] = msg.offset() + 1
        n += 1
    out.flush()
    reached = n >= a.count and (not a.to_end or ends is not None and
                                all(next_offset.get(k, 0) >= v for k, v in ends.items()))
    consumer.close()
    summary = {"records": n, "reached_count": reached, "elapsed_s": round(time.monotonic() - start, 3)}
    print(json.dumps({"summary": summary}), file=sys.stderr, flush=True)
    sys.exit(0 if reached else 3)


if __name__ == "__main__":
    main()
