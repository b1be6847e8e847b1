#!/usr/bin/env python3
"""Train nowcast's two card-fraud classifiers and export them to ONNX.

    scripts/setup-python.sh --train
    .venv/bin/python models/train.py --synthetic            # what the committed models were built with
    .venv/bin/python models/train.py --features feats.jsonl # from features nowcast emitted

Inputs (12 float32 columns, in this order; see FEATURES):
    amount                 the current transaction's amount
    ... 11 stream features computed over the user's PRIOR transactions (the current one excluded).
Empty-window conventions (nowcast must feed the same): counts/sums/distincts 0, mean/max/p95 0,
secs_since_last_1d -1 when there is no prior transaction within one day.

Writes (to --out, default: the directory of this script):
    fraud_logreg.onnx   StandardScaler + LogisticRegression
    fraud_gbt.onnx      GradientBoostingClassifier, 100 trees, depth 3
    fixtures/scoring.json    held-out rows + probabilities from onnxruntime (Python), for the Rust tests
    fixtures/linreg_tiny.onnx a 12-input LinearRegression (regressor output path in the Rust tests)
    README.md           inputs, outputs, training summary, AUCs, regenerate command
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FEATURES = [
    "amount",
    "txn_count_5m",
    "txn_count_1h",
    "amount_sum_5m",
    "amount_sum_1h",
    "amount_mean_1d",
    "amount_max_1h",
    "distinct_merchants_1h",
    "distinct_countries_1d",
    "foreign_count_1h",
    "secs_since_last_1d",
    "amount_p95_1d",
]
N_FEATURES = len(FEATURES)
MIN5, HOUR, DAY = 300.0, 3600.0, 86400.0


# ----------------------------------------------------------------------------------------------
# Synthetic card traffic
# ----------------------------------------------------------------------------------------------
def synthetic_transactions(rng: np.random.Generator, n_users: int, days: float, fraud_share: float):
    """Simulate card transactions; returns a list of per-user dicts of sorted arrays.

    Normal users: a Poisson number of transactions per day (rate drawn per user, 0.5-8/day) spread
    over waking hours, small log-normal amounts around a per-user median (8-80), merchants from a
    personal set of ~12 favourites (20% anywhere), one home country (3% of transactions abroad;
    10% of users are travelling for a day and pay abroad then). Some normal users shop in short
    sessions (2-4 transactions a few minutes apart) so that bursts alone do not mean fraud.

    Fraud: for `fraud_share` of users the card is compromised once at a random time: a burst of
    4-25 transactions within 2-30 minutes, amounts 3-15x the user's median (or small "card
    testing" amounts for the first few), random merchants, 1-4 countries (mostly foreign).
    Only the burst's transactions are labelled 1.
    """
    users = []
    n_countries = 40
    for u in range(n_users):
        home = int(rng.integers(0, n_countries))
        rate = float(rng.uniform(0.5, 8.0))
        median = float(np.exp(rng.uniform(np.log(8), np.log(80))))
        favourites = rng.integers(0, 5000, size=12)
        n = int(rng.poisson(rate * days))
        day_idx = rng.integers(0, int(np.ceil(days)), size=n)
        t = day_idx * DAY + rng.normal(14 * HOUR, 3.5 * HOUR, size=n).clip(6 * HOUR, 23.5 * HOUR)
        # shopping sessions: some transactions spawn 1-3 follow-ups minutes later
        sess = rng.random(n) < 0.08
        extra = []
        for base in t[sess]:
            k = int(rng.integers(1, 4))
            extra.append(base + np.cumsum(rng.uniform(20, 240, size=k)))
        if extra:
            t = np.concatenate([t, *extra])
        n = len(t)
        amount = np.round(median * rng.lognormal(0.0, 0.7, size=n), 2)
        merchant = np.where(rng.random(n) < 0.8, rng.choice(favourites, size=n), rng.integers(0, 100000, size=n))
        country = np.full(n, home)
        abroad = rng.random(n) < 0.03
        if rng.random() < 0.10 and n > 0:  # a travel day
            travel_day = rng.integers(0, int(np.ceil(days)))
            abroad |= (t >= travel_day * DAY) & (t < (travel_day + 1) * DAY)
        country = np.where(abroad, (home + rng.integers(1, n_countries, size=n)) % n_countries, country)
        label = np.zeros(n, dtype=np.int8)

        if rng.random() < fraud_share:
            k = int(rng.integers(4, 26))
            start = float(rng.uniform(0, days * DAY))
            span = float(rng.uniform(120, 1800))
            ft = start + np.sort(rng.uniform(0, span, size=k))
            fa = np.round(median * rng.uniform(3, 15, size=k) * rng.lognormal(0, 0.3, size=k), 2)
            n_test = int(rng.integers(0, 3))
            fa[:n_test] = np.round(rng.uniform(0.5, 3.0, size=n_test), 2)
            fm = rng.integers(0, 100000, size=k)
            fraud_countries = rng.integers(0, n_countries, size=int(rng.integers(1, 5)))
            if rng.random() < 0.8:
                fraud_countries = fraud_countries[fraud_countries != home]
                if len(fraud_countries) == 0:
                    fraud_countries = np.array([(home + 1) % n_countries])
            fc = rng.choice(fraud_countries, size=k)
            t = np.concatenate([t, ft])
            amount = np.concatenate([amount, fa])
            merchant = np.concatenate([merchant, fm])
            country = np.concatenate([country, fc])
            label = np.concatenate([label, np.ones(k, dtype=np.int8)])

        order = np.argsort(t, kind="stable")
        users.append(
            dict(
                user=u,
                home=home,
                t=t[order],
                amount=amount[order],
                merchant=merchant[order],
                country=country[order],
                label=label[order],
            )
        )
    return users


def stream_features(user) -> np.ndarray:
    """The 12 inputs for each of one user's transactions, from the prior transactions only.

    Windows are half-open (t - w, t) over strictly earlier positions in time order.
    amount_p95_1d uses numpy's default (linear interpolation) percentile.
    """
    t, amt, mer, cty, home = user["t"], user["amount"], user["merchant"], user["country"], user["home"]
    n = len(t)
    out = np.zeros((n, N_FEATURES), dtype=np.float64)
    lo5 = np.searchsorted(t, t - MIN5, side="right")
    lo1h = np.searchsorted(t, t - HOUR, side="right")
    lo1d = np.searchsorted(t, t - DAY, side="right")
    csum = np.concatenate([[0.0], np.cumsum(amt)])
    foreign = np.concatenate([[0], np.cumsum(cty != home)])
    for i in range(n):
        a5, a1h, a1d = min(lo5[i], i), min(lo1h[i], i), min(lo1d[i], i)
        day = amt[a1d:i]
        out[i, 0] = amt[i]
        out[i, 1] = i - a5
        out[i, 2] = i - a1h
        out[i, 3] = csum[i] - csum[a5]
        out[i, 4] = csum[i] - csum[a1h]
        out[i, 5] = day.mean() if len(day) else 0.0
        out[i, 6] = amt[a1h:i].max() if i > a1h else 0.0
        out[i, 7] = len(np.unique(mer[a1h:i]))
        out[i, 8] = len(np.unique(cty[a1d:i]))
        out[i, 9] = foreign[i] - foreign[a1h]
        out[i, 10] = t[i] - t[i - 1] if i > a1d else -1.0
        out[i, 11] = np.percentile(day, 95) if len(day) else 0.0
    return out


def synthetic_dataset(seed: int, n_users: int, days: float, fraud_share: float):
    rng = np.random.default_rng(seed)
    users = synthetic_transactions(rng, n_users, days, fraud_share)
    X = np.concatenate([stream_features(u) for u in users]).astype(np.float32)
    y = np.concatenate([u["label"] for u in users]).astype(np.int64)
    groups = np.concatenate([np.full(len(u["t"]), u["user"]) for u in users])
    return X, y, groups


def read_features(path: Path):
    rows, labels = [], []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            missing = [k for k in FEATURES + ["label"] if k not in rec]
            if missing:
                sys.exit(f"{path}:{lineno}: missing keys {missing}")
            rows.append([(-1.0 if rec[k] is None and k == "secs_since_last_1d" else float(rec[k])) for k in FEATURES])
            labels.append(int(bool(rec["label"])))
    X = np.asarray(rows, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    return X, y, np.arange(len(y))  # no user ids: split by row


def write_features(path: Path, X: np.ndarray, y: np.ndarray):
    with path.open("w") as f:
        for row, label in zip(X, y):
            rec = {k: float(f"{v:.7g}") for k, v in zip(FEATURES, row)}
            rec["label"] = bool(label)
            f.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------------------------
# Training and export
# ----------------------------------------------------------------------------------------------
def export(model, path: Path, n_inputs: int = N_FEATURES, classifier=True):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if classifier else None
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, n_inputs]))],
        options=options,
        # Conservative opsets: plain TreeEnsembleClassifier (ai.onnx.ml 3) is what older and
        # non-Microsoft runtimes implement too.
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onx.doc_string = "nowcast card-fraud model; see models/README.md"
    onx.graph.name = path.stem  # skl2onnx puts a random UUID here; keep the bytes reproducible
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def ort_scores(path: Path, X: np.ndarray, output: str = "probabilities") -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (res,) = sess.run([output], {"input": X.astype(np.float32)})
    return res[:, 1] if output == "probabilities" else res.reshape(-1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--features", type=Path, help="JSON lines with the 12 feature keys and a label")
    src.add_argument("--synthetic", action="store_true", help="generate synthetic card traffic (default)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--days", type=float, default=5.0)
    ap.add_argument("--fraud-share", type=float, default=0.04, help="share of users whose card is compromised")
    ap.add_argument("--dump-features", type=Path, help="also write the (synthetic) dataset as JSON lines")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupShuffleSplit
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if args.features:
        X, y, groups = read_features(args.features)
        source = f"features from `{args.features.name}`"
    else:
        X, y, groups = synthetic_dataset(args.seed, args.users, args.days, args.fraud_share)
        source = (
            f"synthetic traffic (`--seed {args.seed} --users {args.users} --days {args.days:g} "
            f"--fraud-share {args.fraud_share:g}`)"
        )
    if args.dump_features:
        write_features(args.dump_features, X, y)
    if len(np.unique(y)) < 2:
        sys.exit("need both labels in the data")

    # Hold out whole users so that the test set measures generalisation to unseen cards.
    split = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=args.seed)
    train_idx, test_idx = next(split.split(X, y, groups))
    Xtr, ytr, Xte, yte = X[train_idx], y[train_idx], X[test_idx], y[test_idx]
    print(f"{source}: {len(y)} rows, {y.mean():.2%} fraud; train {len(ytr)}, test {len(yte)}", file=sys.stderr)

    logreg = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000, C=1.0))]
    ).fit(Xtr, ytr)
    gbt = GradientBoostingClassifier(
        n_estimators=100, max_depth=3, learning_rate=0.1, random_state=args.seed
    ).fit(Xtr, ytr)

    out = args.out
    results = {}
    for name, model in [("fraud_logreg", logreg), ("fraud_gbt", gbt)]:
        path = export(model, out / f"{name}.onnx")
        p_ort = ort_scores(path, Xte)
        p_skl = model.predict_proba(Xte)[:, 1]
        results[name] = dict(
            path=path,
            auc=roc_auc_score(yte, p_ort),
            max_diff=float(np.abs(p_ort - p_skl).max()),
            size=path.stat().st_size,
        )
        print(f"{name}: AUC {results[name]['auc']:.4f}, |ort - sklearn| <= {results[name]['max_diff']:.1e}, "
              f"{results[name]['size']} bytes", file=sys.stderr)

    # Tiny regressor, only for the Rust tests of the regressor output path.
    lin = LinearRegression().fit(Xtr[:2000], Xtr[:2000, 0] * 0.01 + Xtr[:2000, 1])
    lin_path = export(lin, out / "fixtures" / "linreg_tiny.onnx", classifier=False)

    # Fixture: a few held-out rows of each label plus edge rows, with onnxruntime's scores.
    rng = np.random.default_rng(args.seed + 1)
    pick = np.concatenate([
        rng.choice(np.flatnonzero(yte == 1), size=min(12, int((yte == 1).sum())), replace=False),
        rng.choice(np.flatnonzero(yte == 0), size=min(20, int((yte == 0).sum())), replace=False),
    ])
    edge = np.array([
        [0] * 10 + [-1, 0],                                            # first transaction ever
        [5000, 30, 30, 60000, 60000, 2000, 4000, 30, 5, 30, 1, 4900],  # extreme burst
    ], dtype=np.float32)
    rows = np.concatenate([Xte[pick], edge]).astype(np.float32)
    fixture = {
        "features": FEATURES,
        "rows": rows.tolist(),
        "labels": [int(v) for v in yte[pick]] + [None, None],
        "onnxruntime_version": __import__("onnxruntime").__version__,
        "expected": {name: ort_scores(r["path"], rows).tolist() for name, r in results.items()},
        "expected_linreg_tiny": ort_scores(lin_path, rows, output="variable").tolist(),
    }
    (out / "fixtures").mkdir(exist_ok=True)
    (out / "fixtures" / "scoring.json").write_text(json.dumps(fixture, indent=1) + "\n")

    write_readme(out / "README.md", source, len(y), float(y.mean()), len(ytr), len(yte), results, args)
    return 0


def write_readme(path: Path, source, n, fraud_rate, n_train, n_test, results, args):
    import onnx
    import onnxruntime
    import sklearn
    import skl2onnx

    cmd = ".venv/bin/python models/train.py " + (
        f"--features {args.features}" if args.features else
        f"--synthetic --seed {args.seed} --users {args.users} --days {args.days:g} --fraud-share {args.fraud_share:g}"
    )
    opsets = "; ".join(
        f"`{r['path'].name}` " + ", ".join(sorted({f"{o.domain or 'ai.onnx'} {o.version}" for o in onnx.load(r["path"]).opset_import}))
        for r in results.values()
    )
    feature_doc = {
        "amount": "amount of the transaction being scored",
        "txn_count_5m": "number of prior transactions in the last 5 minutes",
        "txn_count_1h": "number of prior transactions in the last hour",
        "amount_sum_5m": "sum of prior amounts in the last 5 minutes",
        "amount_sum_1h": "sum of prior amounts in the last hour",
        "amount_mean_1d": "mean of prior amounts in the last day (0 if none)",
        "amount_max_1h": "max of prior amounts in the last hour (0 if none)",
        "distinct_merchants_1h": "distinct merchants among prior transactions in the last hour",
        "distinct_countries_1d": "distinct countries among prior transactions in the last day",
        "foreign_count_1h": "prior transactions outside the user's home country in the last hour",
        "secs_since_last_1d": "seconds since the previous transaction, if within a day; else -1",
        "amount_p95_1d": "95th percentile (linear interpolation) of prior amounts in the last day (0 if none)",
    }
    lines = [
        "# models",
        "",
        "Card-fraud classifiers scored by `nowcast-model`: the GBT compiled to native code (checked at",
        "load against ONNX Runtime, see `crates/nowcast-model/src/trees.rs`), the logistic regression",
        "through ONNX Runtime (`ort`).",
        "",
        "| file | what |",
        "|---|---|",
        "| `fraud_logreg.onnx` | StandardScaler + LogisticRegression |",
        "| `fraud_gbt.onnx` | GradientBoostingClassifier, 100 trees, max depth 3, learning rate 0.1 |",
        "| `train.py` | generates/reads data, trains, exports, writes the fixture and this README |",
        "| `fixtures/scoring.json` | held-out rows + onnxruntime (Python) probabilities; the Rust tests compare against it |",
        "| `fixtures/linreg_tiny.onnx` | a 12-input LinearRegression, only for testing the regressor output path |",
        "| `fixtures/trees_modes.onnx`, `fixtures/trees_positive.onnx` | small hand-built tree ensembles (every branch mode, NaN routing, AVERAGE; all-positive weights) for the compiled-tree tests; written by `tree_fixtures.py` |",
        "| `tree_fixtures.py` | writes those two files (`.venv/bin/python models/tree_fixtures.py` after `scripts/setup-python.sh --train`) |",
        "",
        "## Inputs",
        "",
        "One float32 tensor named `input`, shape `[N, 12]`, columns in this order. Everything but",
        "`amount` is computed over the user's **prior** transactions (the one being scored excluded),",
        "windows ending at the current event time.",
        "",
        "| # | name | meaning |",
        "|---|---|---|",
        *[f"| {i} | `{k}` | {feature_doc[k]} |" for i, k in enumerate(FEATURES)],
        "",
        "## Outputs",
        "",
        "Exported with `options={id(model): {'zipmap': False}}`, target opsets ai.onnx 17 and",
        f"ai.onnx.ml 3 (the files import: {opsets}):",
        "",
        "- `label`: int64 `[N]`, the predicted class (0/1)",
        "- `probabilities`: float32 `[N, 2]`; column 1 is P(fraud), the score nowcast emits",
        "",
        "## How they were trained",
        "",
        f"Data: {source};",
        f"{n} transactions, {fraud_rate:.2%} labelled fraud. The generator (see",
        "`synthetic_transactions` in `train.py`) mimics card traffic: normal users make a few",
        "transactions a day of small amounts in their home country at favourite merchants, sometimes in",
        "short shopping sessions or on a trip abroad; a compromised card makes a burst of many",
        "transactions within minutes, at higher amounts (sometimes after tiny card-testing ones), at",
        "random merchants in several, mostly foreign, countries.",
        "",
        f"Split: 75/25 by user (held-out users never seen in training): {n_train} train, {n_test} test rows.",
        "",
        "| model | held-out ROC AUC | max abs(onnxruntime - scikit-learn) | size |",
        "|---|---|---|---|",
        *[f"| `{k}` | {r['auc']:.4f} | {r['max_diff']:.1e} | {r['size'] / 1024:.1f} KiB |" for k, r in results.items()],
        "",
        f"Versions: scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnxruntime {onnxruntime.__version__},",
        f"numpy {np.__version__}.",
        "",
        "## Regenerate",
        "",
        "```sh",
        "scripts/setup-python.sh --train",
        cmd,
        "```",
        "",
        "Training from nowcast's own features: `--features FILE` reads JSON lines with the 12 keys",
        "above plus `label` (bool or 0/1); `secs_since_last_1d` may be `null` (fed as -1). Without user",
        "ids that split is by row. `--dump-features FILE` writes the synthetic dataset in that format.",
        "",
        "The generator is seeded and deterministic for given versions of numpy and scikit-learn.",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
