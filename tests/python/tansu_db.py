"""Reads and indexes tansu 0.6.0's sqlite database, for the Kafka tests.

Usage: tansu_db.py index DB_PATH
       tansu_db.py codecs DB_PATH TOPIC
       tansu_db.py records DB_PATH TOPIC

index: adds an index on the header table's (topition, offset_id). tansu's sqlite schema has
none, so each record it fetches scans the whole header table (one row per header of every
record ever produced): consuming a few thousand records with headers takes minutes and blocks
the broker. The index changes no result, only the query plan. It is created while tansu runs
(sqlite locks the file; tansu's statements are re-prepared after the schema change). Waits,
bounded, until tansu has created the table.

codecs: prints {"codec id": records} for TOPIC as JSON: the compression codec (attributes &
7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd) of the batches its records arrived in. tansu keeps
one row per record with its batch's attributes; a Kafka consumer cannot see the codec.

records: prints every stored record of TOPIC, by partition and offset, as one JSON line each
in the format of kafka_consume.py (key, value and header values base64 or null). tansu 0.6.0
stores snappy-compressed batches but cannot fetch them (it fails with UnexpectedType("Snappy")
and closes the connection), so a Kafka consumer cannot read them back: this reads what it
stored instead.

Exit 0 on success, 1 on failure, 2 on bad arguments.
"""

import base64
import json
import sqlite3
import sys
import time

ATTEMPTS = 100
PAUSE_SECS = 0.1
BUSY_TIMEOUT_SECS = 10.0
INDEX = "create index if not exists outpost_test_header_record on header (topition, offset_id)"
CODECS = """
select r.attributes & 7, count(*)
from record r join topition tp on r.topition = tp.id join topic t on tp.topic = t.id
where t.name = ? group by 1
"""
RECORDS = """
select tp.partition, r.offset_id, r.attributes, r.timestamp, r.k, r.v, r.topition
from record r join topition tp on r.topition = tp.id join topic t on tp.topic = t.id
where t.name = ? order by tp.partition, r.offset_id
"""
HEADERS = "select k, v from header where topition = ? and offset_id = ? order by rowid"
LOG_APPEND_TIME = 0x08


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def index(db_path):
    last = None
    for _ in range(ATTEMPTS):
        try:
            db = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_SECS)
            try:
                db.execute(INDEX)
                db.commit()
                return
            finally:
                db.close()
        except sqlite3.Error as e:  # no such table yet, or locked
            last = e
            time.sleep(PAUSE_SECS)
    print(f"FAIL: cannot index {db_path}: {last}", file=sys.stderr)
    sys.exit(1)


def codecs(db_path, topic):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECS)
    try:
        rows = db.execute(CODECS, (topic,)).fetchall()
    finally:
        db.close()
    print(json.dumps({str(codec): n for codec, n in rows}))


def records(db_path, topic):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECS)
    try:
        for partition, offset, attributes, ts, k, v, topition in db.execute(RECORDS, (topic,)).fetchall():
            headers = db.execute(HEADERS, (topition, offset)).fetchall()
            print(json.dumps({
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp_type": "log_append" if (attributes or 0) & LOG_APPEND_TIME else "create",
                "timestamp_ms": ts,
                "headers": [[hk.decode(), b64(hv)] for hk, hv in headers],
                "key": b64(k),
                "value": b64(v),
            }))
    finally:
        db.close()


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "index":
        index(args[1])
    elif len(args) == 3 and args[0] == "codecs":
        codecs(args[1], args[2])
    elif len(args) == 3 and args[0] == "records":
        records(args[1], args[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
