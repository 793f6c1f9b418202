"""Adds an index on tansu's header table (topition, offset_id) in its sqlite database.

Usage: tansu_header_index.py DB_PATH

tansu 0.6.0's sqlite schema has no index on the headers' record key, so each record it fetches
scans the whole header table (one row per header of every record ever produced): consuming a
few thousand records with headers takes minutes and blocks the broker. The index changes no
result, only the query plan. It is created while tansu runs (sqlite locks the file; tansu's
statements are re-prepared after the schema change). Waits, bounded, until tansu has created
the table. Exit 0 on success, 1 otherwise.
"""

import sqlite3
import sys
import time

ATTEMPTS = 100
PAUSE_SECS = 0.1
BUSY_TIMEOUT_SECS = 10.0
INDEX = "create index if not exists outpost_test_header_record on header (topition, offset_id)"


def main():
    if len(sys.argv) != 2:
        print("usage: tansu_header_index.py DB_PATH", file=sys.stderr)
        sys.exit(2)
    last = None
    for _ in range(ATTEMPTS):
        try:
            db = sqlite3.connect(sys.argv[1], timeout=BUSY_TIMEOUT_SECS)
            try:
                db.execute(INDEX)
                db.commit()
                return
            finally:
                db.close()
        except sqlite3.Error as e:  # no such table yet, or locked
            last = e
            time.sleep(PAUSE_SECS)
    print(f"FAIL: cannot index {sys.argv[1]}: {last}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
