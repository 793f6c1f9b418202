#!/usr/bin/env python3
"""The reference of scripts/bench-kafka.sh: librdkafka (confluent-kafka) producing the same
records the bridge forwards, to the same broker, and how long it took.

Reads one record value per line from a file; every record gets the same origin headers the
bridge adds (outpost-gateway, outpost-topic, outpost-partition, outpost-offset), so the bytes
that land in Kafka match the bridge's. Prints one JSON object: records, seconds (first produce
to last delivery report), records_per_s, errors.

Usage: kafka-reference-producer.py BOOTSTRAP TOPIC FILE COMPRESSION [LINGER_MS] [BATCH_BYTES]
"""
import json
import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, topic, path, compression = sys.argv[1:5]
    linger_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    batch_bytes = int(sys.argv[6]) if len(sys.argv) > 6 else 1 << 20
    with open(path, "rb") as f:
        values = f.read().splitlines()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": linger_ms,
            "batch.size": batch_bytes,
            "compression.type": compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20,
            "message.timeout.ms": 600_000,
        }
    )
    done = {"ok": 0, "errors": 0}

    def report(err, _msg):
        if err is None:
            done["ok"] += 1
        else:
            done["errors"] += 1

    start = time.monotonic()
    for offset, value in enumerate(values):
        headers = [
            ("outpost-gateway", b"bench"),
            ("outpost-offset", str(offset).encode()),
            ("outpost-partition", b"0"),
            ("outpost-topic", b"bench"),
        ]
        # Bounded: the local queue drains while we poll; give up after 10 minutes.
        deadline = time.monotonic() + 600
        while True:
            try:
                producer.produce(topic, value=value, partition=0, headers=headers, on_delivery=report)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(600)
    seconds = time.monotonic() - start
    print(
        json.dumps(
            {
                "records": done["ok"],
                "errors": done["errors"] + remaining,
                "seconds": round(seconds, 3),
                "records_per_s": round(done["ok"] / seconds) if seconds > 0 else 0,
            }
        )
    )


if __name__ == "__main__":
    main()
