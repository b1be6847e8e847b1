#!/usr/bin/env python3
"""Builds training rows from nowcast's own output: the feature vectors nowcast emitted for each
event (`nowcast run --features`, files out/features/p-*.jsonl) joined by event id with the input
events (for the label `is_fraud` and the request-time field `amount`).

Because the stream features come from nowcast's own feature code, with the same rule it uses
online (features at the event's time over the events before it), training and serving cannot
skew. Null features get the same defaults the demo spec gives the model (`defaults` in
examples/demo/pipeline.toml: `secs_since_last_1d` = -1, everything else 0).

usage: join_features.py EVENTS.jsonl FEATURES_DIR OUT.jsonl
"""
import json
import sys
from pathlib import Path

STREAM = [
    "txn_count_5m", "txn_count_1h", "amount_sum_5m", "amount_sum_1h", "amount_mean_1d",
    "amount_max_1h", "distinct_merchants_1h", "distinct_countries_1d", "foreign_count_1h",
    "secs_since_last_1d", "amount_p95_1d",
]
DEFAULTS = {"secs_since_last_1d": -1.0}


def main(events_path: str, features_dir: str, out_path: str) -> None:
    events = {}
    with open(events_path) as f:
        for line in f:
            try:
                e = json.loads(line)
                events[e["txn_id"]] = (float(e["amount"]), bool(e["is_fraud"]))
            except (ValueError, KeyError, TypeError):
                continue  # the records nowcast dead-lettered
    n = 0
    with open(out_path, "w") as out:
        for path in sorted(Path(features_dir).glob("p-*.jsonl")):
            with path.open() as f:
                for line in f:
                    rec = json.loads(line)
                    ev = events.get(rec["event_id"])
                    if ev is None:
                        continue
                    feats = rec["features"]
                    row = {"amount": ev[0]}
                    for k in STREAM:
                        v = feats[k]
                        row[k] = DEFAULTS.get(k, 0.0) if v is None else float(v)
                    row["label"] = ev[1]
                    out.write(json.dumps(row) + "\n")
                    n += 1
    print(f"join_features.py: {n} rows -> {out_path}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
