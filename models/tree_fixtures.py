#!/usr/bin/env python3
"""Writes the small tree-ensemble ONNX files under models/fixtures/ that test the compiled
tree evaluator (crates/nowcast-model/src/trees.rs) against ONNX Runtime on shapes the
committed GBT does not have.

    scripts/setup-python.sh --train && .venv/bin/python models/tree_fixtures.py

- trees_modes.onnx: a TreeEnsembleRegressor over 12 inputs with every branch mode
  (LEQ, LT, GTE, GT, EQ, NEQ), NaN routed to the true child on some nodes, AVERAGE
  aggregation and a base value; output `variable` [N, 1].
- trees_positive.onnx: a binary TreeEnsembleClassifier whose leaf weights are all
  non-negative (ONNX Runtime's other binary convention); it must stay on ONNX Runtime.
"""
import pathlib

import onnx
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent / "fixtures"
N = 12


def tree_attrs(trees):
    """trees: list of lists of (node_id, mode, feature, value, true_id, false_id, missing_true)."""
    a = {k: [] for k in ["treeids", "nodeids", "modes", "featureids", "values",
                         "truenodeids", "falsenodeids", "missing"]}
    for t, nodes in enumerate(trees):
        for nid, mode, feat, value, yes, no, miss in nodes:
            a["treeids"].append(t)
            a["nodeids"].append(nid)
            a["modes"].append(mode)
            a["featureids"].append(feat)
            a["values"].append(value)
            a["truenodeids"].append(yes)
            a["falsenodeids"].append(no)
            a["missing"].append(miss)
    return dict(
        nodes_treeids=a["treeids"], nodes_nodeids=a["nodeids"], nodes_modes=a["modes"],
        nodes_featureids=a["featureids"], nodes_values=a["values"],
        nodes_truenodeids=a["truenodeids"], nodes_falsenodeids=a["falsenodeids"],
        nodes_missing_value_tracks_true=a["missing"],
    )


def leaves(trees):
    return [(t, nid) for t, nodes in enumerate(trees) for nid, mode, *_ in nodes if mode == "LEAF"]


def modes_trees():
    modes = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
    trees = []
    for t in range(24):
        m0, m1, m2 = modes[t % 6], modes[(t + 1) % 6], modes[(t + 3) % 6]
        f = t % N
        # Tree 3 lists its nodes out of id order (the root stays first, as ONNX Runtime takes
        # a tree's first node as its root).
        nodes = [
            (0, m0, f, float(t % 4), 1, 2, t % 2),
            (1, m1, (f + 5) % N, 0.5 * t, 3, 4, 0),
            (2, m2, (f + 7) % N, 2.0, 5, 6, (t + 1) % 2),
            (3, "LEAF", 0, 0.0, 0, 0, 0),
            (4, "LEAF", 0, 0.0, 0, 0, 0),
            (5, "LEAF", 0, 0.0, 0, 0, 0),
            (6, "LEAF", 0, 0.0, 0, 0, 0),
        ]
        if t == 3:
            nodes = nodes[:1] + nodes[:0:-1]
        trees.append(nodes)
    return trees


def write_modes():
    trees = modes_trees()
    lv = leaves(trees)
    node = helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml",
        n_targets=1, aggregate_function="AVERAGE", base_values=[0.25], post_transform="NONE",
        target_ids=[0] * len(lv), target_treeids=[t for t, _ in lv],
        target_nodeids=[n for _, n in lv],
        target_weights=[((i * 37) % 11 - 5) / 3.0 for i in range(len(lv))],
        **tree_attrs(trees),
    )
    graph = helper.make_graph(
        [node], "trees_modes",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
    )
    save(graph, "trees_modes.onnx")


def write_positive():
    trees = [[
        (0, "BRANCH_LEQ", t % N, float(t), 1, 2, 0),
        (1, "LEAF", 0, 0.0, 0, 0, 0),
        (2, "LEAF", 0, 0.0, 0, 0, 0),
    ] for t in range(10)]
    lv = leaves(trees)
    node = helper.make_node(
        "TreeEnsembleClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
        classlabels_int64s=[0, 1], post_transform="NONE",
        class_ids=[0] * len(lv), class_treeids=[t for t, _ in lv],
        class_nodeids=[n for _, n in lv], class_weights=[0.05 * (i % 3) for i in range(len(lv))],
        **tree_attrs(trees),
    )
    graph = helper.make_graph(
        [node], "trees_positive",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    save(graph, "trees_positive.onnx")


def save(graph, name):
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, OUT / name)
    print("wrote", OUT / name)


if __name__ == "__main__":
    write_modes()
    write_positive()
