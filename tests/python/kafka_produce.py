"""Produces records to Kafka with confluent-kafka (librdkafka): the reference producer.

Two modes:

  kafka_produce.py --bootstrap HOST:PORT --topic T --count N --size S
                   [--linger-ms MS] [--batch-bytes B] [--batch-records R]
                   [--compression none|gzip|snappy|lz4|zstd] [--partitions P]
      N records of S random-looking bytes (no key) spread round-robin over partitions
      0..P-1 (P default 1), as fast as librdkafka's batching allows (the benchmark's
      reference rate).

  kafka_produce.py --bootstrap HOST:PORT --jsonl [--compression ...]
      One record per stdin line: {"topic", "partition" (optional), "key", "value" (base64 or
      null), "timestamp_ms" (optional), "headers": [[name, base64 or null], ...] (optional)}.
      Records without a partition go where --partitioner puts them (default murmur2_random:
      murmur2 of the key, as the Java client).

Every record is acknowledged by every in-sync replica (acks=all) and idempotence is off (the
broker under test need not support it). stdout, one JSON line:
{"records": N, "delivered": D, "errors": E, "first_error": str|null, "elapsed_s": S,
 "records_per_s": R, "offsets": [[topic, partition, offset], ...] (only with --jsonl)}.
Exit 0 when every record was delivered, 1 otherwise, 2 on bad arguments. A watchdog alarm
ends the process if anything hangs.
"""

import argparse
import base64
import json
import signal
import sys
import time

from confluent_kafka import Producer

FLUSH_TIMEOUT = 120.0
WATCHDOG_SECS = 600
QUEUE_MAX_MESSAGES = 1_000_000
QUEUE_MAX_KBYTES = 1_048_576


def unb64(text):
    return None if text is None else base64.b64decode(text)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--jsonl", action="store_true")
    p.add_argument("--topic")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--linger-ms", type=float, default=5.0)
    p.add_argument("--batch-bytes", type=int, default=1_000_000)
    p.add_argument("--batch-records", type=int, default=10_000)
    p.add_argument("--compression", default="none")
    p.add_argument("--partitioner", default="murmur2_random")
    a = p.parse_args()
    if not a.jsonl and (not a.topic or a.count <= 0):
        p.error("--topic and --count are required without --jsonl")
    return a


class Reports:
    """Delivery reports: counts, the first error, and (with --jsonl) every offset in order."""

    def __init__(self, keep_offsets):
        self.delivered = 0
        self.errors = 0
        self.first_error = None
        self.offsets = [] if keep_offsets else None

    def __call__(self, err, msg):
        if err is not None:
            self.errors += 1
            self.first_error = self.first_error or str(err)
            return
        self.delivered += 1
        if self.offsets is not None:
            self.offsets.append([msg.topic(), msg.partition(), msg.offset()])


def produce(producer, topic, **kw):
    """produce(), waiting for queue room (bounded by the watchdog) when the local queue is full."""
    while True:
        try:
            producer.produce(topic, **kw)
            return
        except BufferError:
            producer.poll(0.05)


def jsonl_records():
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        kw = {"key": unb64(r.get("key")), "value": unb64(r.get("value"))}
        if r.get("partition") is not None:
            kw["partition"] = r["partition"]
        if r.get("timestamp_ms") is not None:
            kw["timestamp"] = r["timestamp_ms"]
        if r.get("headers"):
            kw["headers"] = [(k, unb64(v)) for k, v in r["headers"]]
        yield r["topic"], kw


def bench_records(a):
    # Bytes that do not compress to nothing, as sensor readings would not: a counter mixed in.
    base = bytes((i * 37 + 11) % 251 for i in range(a.size))
    for i in range(a.count):
        stamp = i.to_bytes(8, "little")
        value = (stamp + base)[:a.size] if a.size >= 8 else base
        yield a.topic, {"value": value, "partition": i % a.partitions}


def main():
    a = parse_args()
    signal.alarm(WATCHDOG_SECS)
    producer = Producer({
        "bootstrap.servers": a.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": a.linger_ms,
        "batch.size": a.batch_bytes,
        "batch.num.messages": a.batch_records,
        "compression.type": a.compression,
        "partitioner": a.partitioner,
        "queue.buffering.max.messages": QUEUE_MAX_MESSAGES,
        "queue.buffering.max.kbytes": QUEUE_MAX_KBYTES,
        # Keep the order of each partition: one request in flight would be the strict way;
        # retries off means a failed batch is reported, never re-sent out of order.
        "retries": 0,
    })
    reports = Reports(keep_offsets=a.jsonl)
    records = jsonl_records() if a.jsonl else bench_records(a)
    n = 0
    start = time.monotonic()
    for topic, kw in records:
        produce(producer, topic, on_delivery=reports, **kw)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    left = producer.flush(FLUSH_TIMEOUT)
    elapsed = time.monotonic() - start
    out = {
        "records": n,
        "delivered": reports.delivered,
        "errors": reports.errors + left,
        "first_error": reports.first_error or (f"{left} not delivered in {FLUSH_TIMEOUT}s" if left else None),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(reports.delivered / elapsed, 1) if elapsed > 0 else None,
    }
    if a.jsonl:
        out["offsets"] = reports.offsets
    print(json.dumps(out), flush=True)
    sys.exit(0 if reports.delivered == n and left == 0 else 1)


if __name__ == "__main__":
    main()
