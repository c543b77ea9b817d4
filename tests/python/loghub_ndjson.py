"""loghub's 2,000-line samples of 16 real systems as logjet events: one NDJSON file per system,
for `ARCHIVE_NDJSON_DIR=<out> cargo run --release -p logjet-core --features archive --example
archive_compression` (docs/archive.md, *Compression on real logs*).

    python3 tests/python/loghub_ndjson.py <loghub checkout> <out dir>

loghub: https://github.com/logpai/loghub (each `<System>/<System>_2k.log_structured.csv` is the
raw `<System>_2k.log` parsed into columns). Each row becomes an event: `message` = the line's
content, `level` from its level column (info when it has none or an unknown one), the other
columns as fields (digit-only values as integers, as a JSON shipper would send pids), `ts`
synthetic with millisecond precision, one line every ~1 s (the CSVs' times come in a dozen
formats; the ts column is ~2 bytes per event either way). Prints each system's line count and
the size of its raw text log, to compare the archive with the logs as written.
"""

import csv
import json
import os
import sys
from datetime import datetime, timedelta, timezone

SYSTEMS = (
    "Android Apache BGL HDFS HPC Hadoop HealthApp Linux Mac OpenSSH OpenStack Proxifier Spark "
    "Thunderbird Windows Zookeeper"
).split()
# Columns that are not fields: the line's id and content, its level, the parser's template,
# and the time (replaced by `ts`).
NOT_FIELDS = {
    "LineId", "Level", "Content", "EventId", "EventTemplate",
    "Date", "Time", "Timestamp", "Month", "Day",
}
LEVELS = {
    "info": "info", "i": "info", "notice": "info",
    "warn": "warn", "warning": "warn", "w": "warn",
    "error": "error", "e": "error", "err": "error", "severe": "error",
    "fatal": "fatal", "failure": "fatal",
    "debug": "debug", "d": "debug",
    "trace": "trace", "v": "trace",
}
T0 = datetime(2026, 11, 30, tzinfo=timezone.utc)


def event(system, i, row):
    ts = T0 + timedelta(milliseconds=i * 1000 + (i * 37) % 1000)
    fields = {}
    for key, value in row.items():
        if key in NOT_FIELDS or not value:
            continue
        fields[key.lower()] = int(value) if value.isdigit() and len(value) < 18 else value
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "service": system.lower(),
        "level": LEVELS.get((row.get("Level") or "").strip().lower(), "info"),
        "message": row["Content"],
        "fields": dict(sorted(fields.items())),
    }


def main(repo, out):
    os.makedirs(out, exist_ok=True)
    for system in SYSTEMS:
        base = os.path.join(repo, system, f"{system}_2k.log")
        with open(base + "_structured.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        with open(os.path.join(out, f"{system.lower()}.ndjson"), "w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                f.write(json.dumps(event(system, i, row), separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
        print(system.lower(), len(rows), os.path.getsize(base))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
