//! Tree ensembles (`ai.onnx.ml` `TreeEnsembleClassifier` / `TreeEnsembleRegressor`) compiled
//! from the ONNX file into flat arrays and evaluated natively.
//!
//! ONNX Runtime spends 1.2–2.3 µs per row on the 100-tree GBT even in batches (~4 µs for one
//! row), most of it in the per-call and per-node overhead of a general operator; the walk
//! itself is ~300 compares. The compiled form keeps each tree's nodes contiguous (16 bytes
//! each: feature, threshold or leaf weight, two children), walks every tree to its fixed
//! depth without data-dependent branches (a leaf points at itself), and walks eight rows of a
//! batch side by side so their dependent loads overlap.
//!
//! # Exactly what ONNX Runtime computes
//! The arithmetic follows ONNX Runtime's single-threaded kernel (nowcast runs every session
//! with one thread), which this module reproduces bit for bit on the committed GBT:
//! - a row's score is the `f32` sum of its leaf weights in tree order, then the base value;
//! - `LOGISTIC` is `v = 1 / (1 + exp(-|s|))`, `p = v` if `s ≥ 0` else `1 − v`, in `f32`;
//! - a node sends a row to its true child when `x CMP threshold` holds (`BRANCH_LEQ` is
//!   `x <= t`, …), or when `x` is NaN and the node's `missing_value_tracks_true` is set;
//! - a tree's root is its first listed node (a file listing it elsewhere does not compile).
//!
//! Only the shapes whose semantics are unambiguous compile: a binary classifier whose leaves
//! carry one weight each, all for class 0, with mixed-sign weights (ONNX Runtime's convention
//! for all-positive weights differs), `post_transform` `NONE` or `LOGISTIC`, at most one base
//! value; or a one-target regressor with `SUM` or `AVERAGE` and no post transform. Anything
//! else — other operators, `*_as_tensor` attributes, multi-class — stays on ONNX Runtime,
//! with the reason reported. A compiled model is also checked against ONNX Runtime at load
//! (see [`crate::onnx`]) before it is used.

use std::collections::HashMap;

use prost::Message;

use crate::onnx_proto::{Attribute, ModelProto, NodeProto};

/// Rows walked together in a batch. Measured on the committed GBT (`examples`-style loop over
/// batches of 512): 4 lanes ~450 ns/row, 8 lanes ~370, 16 lanes ~700 (register spills), and
/// walking the whole batch tree by tree ~600–1000.
const LANES: usize = 8;

/// One node: a branch on `x[feature] CMP value`, or a leaf of weight `value` whose two
/// children are itself (so walking on from a leaf stays there).
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    value: f32,
    /// `[false child, true child]`, global indices.
    child: [u32; 2],
}

/// Comparison of a branch node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

impl Mode {
    fn parse(s: &[u8]) -> Option<Option<Mode>> {
        Some(Some(match s {
            b"BRANCH_LEQ" => Mode::Leq,
            b"BRANCH_LT" => Mode::Lt,
            b"BRANCH_GTE" => Mode::Gte,
            b"BRANCH_GT" => Mode::Gt,
            b"BRANCH_EQ" => Mode::Eq,
            b"BRANCH_NEQ" => Mode::Neq,
            b"LEAF" => return Some(None),
            _ => return None,
        }))
    }

    #[inline]
    fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
        }
    }
}

/// How the summed score becomes the output read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Finish {
    /// Classifier `probabilities[:, 1]` with `LOGISTIC`.
    Logistic,
    /// Classifier with `NONE`, or a `SUM` regressor: the score itself.
    Identity,
    /// `AVERAGE` regressor: score / number of trees.
    Average(f32),
}

/// A compiled ensemble.
#[derive(Debug, Clone)]
pub(crate) struct TreeEnsemble {
    nodes: Vec<Node>,
    /// Per tree: its root and its depth (branches on the longest root-to-leaf path).
    roots: Vec<(u32, u32)>,
    /// Per node, its mode and whether NaN goes to the true child (only for the general walk).
    modes: Vec<(Mode, bool)>,
    /// Every branch is `BRANCH_LEQ` without missing-value tracking.
    all_leq: bool,
    base: f32,
    finish: Finish,
    n_inputs: usize,
    /// `"TreeEnsembleClassifier"` or `"TreeEnsembleRegressor"`.
    op: &'static str,
    /// Per input, the thresholds branches compare it with (for probe rows).
    thresholds: Vec<Vec<f32>>,
}

impl TreeEnsemble {
    /// Compiles the ONNX model in `bytes`, whose output `output` is read (`probabilities` of a
    /// classifier or the value of a regressor). `Err` says why it is not compilable.
    pub(crate) fn compile(
        bytes: &[u8],
        n_inputs: usize,
        output: &str,
    ) -> Result<TreeEnsemble, String> {
        let model =
            ModelProto::decode(bytes).map_err(|e| format!("cannot decode the protobuf: {e}"))?;
        if let Some(ml) = model.opset_import.iter().find(|o| o.domain == "ai.onnx.ml") {
            if ml.version > 4 {
                return Err(format!(
                    "ai.onnx.ml opset {} (only 1–4 compile)",
                    ml.version
                ));
            }
        }
        let graph = model.graph.ok_or("the file has no graph")?;
        if !graph.initializer.is_empty() {
            return Err("the graph has initializers".into());
        }
        let [input] = &graph.input[..] else {
            return Err(format!("the graph has {} inputs", graph.input.len()));
        };
        let mut tree = None;
        for node in &graph.node {
            match (node.domain.as_str(), node.op_type.as_str()) {
                ("ai.onnx.ml", "TreeEnsembleClassifier" | "TreeEnsembleRegressor") => {
                    if tree.replace(node).is_some() {
                        return Err("the graph has more than one tree ensemble".into());
                    }
                }
                ("" | "ai.onnx", "Identity") => {}
                (domain, op) => {
                    return Err(format!(
                        "operator `{op}` (domain `{domain}`) besides the tree ensemble"
                    ))
                }
            }
        }
        let tree = tree.ok_or("no TreeEnsembleClassifier or TreeEnsembleRegressor")?;
        if tree.input.first() != Some(&input.name) {
            return Err("the tree ensemble does not read the graph input".into());
        }
        let classifier = tree.op_type == "TreeEnsembleClassifier";
        let want = if classifier { 1 } else { 0 };
        let source = trace(&graph.node, output)?;
        if tree.output.get(want) != Some(&source) {
            return Err(format!(
                "output `{output}` is not the ensemble's {}",
                if classifier { "probabilities" } else { "value" }
            ));
        }
        build(tree, classifier, n_inputs)
    }

    /// `"TreeEnsembleClassifier, 100 trees, 1490 nodes"`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, {} trees, {} nodes",
            self.op,
            self.roots.len(),
            self.nodes.len()
        )
    }

    /// Appends one score per row of `rows` (`n_inputs` values each).
    pub(crate) fn score(&self, rows: &[f32], out: &mut Vec<f64>) {
        let n = self.n_inputs;
        let mut chunks = rows.chunks_exact(n * LANES);
        for chunk in chunks.by_ref() {
            let sums = if self.all_leq {
                self.sum_lanes(chunk, |_, x, t| x <= t)
            } else {
                self.sum_lanes(chunk, |i, x, t| self.general(i, x, t))
            };
            out.extend(sums.iter().map(|&s| f64::from(self.finish(s))));
        }
        for row in chunks.remainder().chunks_exact(n) {
            let s = if self.all_leq {
                self.sum_row(row, |_, x, t| x <= t)
            } else {
                self.sum_row(row, |i, x, t| self.general(i, x, t))
            };
            out.push(f64::from(self.finish(s)));
        }
    }

    /// Whether node `i` sends `x` to its true child, for any mode.
    #[inline]
    fn general(&self, i: usize, x: f32, t: f32) -> bool {
        let (mode, missing) = self.modes[i];
        mode.holds(x, t) || (missing && x.is_nan())
    }

    /// Sum of the leaf weights of one row, in tree order. Every tree is walked exactly its
    /// depth: a leaf points at itself, so the walk has no data-dependent branch.
    #[inline]
    fn sum_row(&self, row: &[f32], go: impl Fn(usize, f32, f32) -> bool) -> f32 {
        let mut sum = 0.0f32;
        for &(root, depth) in &self.roots {
            let mut i = root as usize;
            for _ in 0..depth {
                let node = self.nodes[i];
                let yes = go(i, row[node.feature as usize], node.value);
                i = node.child[yes as usize] as usize;
            }
            sum += self.nodes[i].value;
        }
        sum
    }

    /// [`Self::sum_row`] for `LANES` rows at once: the lanes' walks are independent, so the
    /// core overlaps their dependent loads.
    #[inline]
    fn sum_lanes(&self, rows: &[f32], go: impl Fn(usize, f32, f32) -> bool) -> [f32; LANES] {
        let n = self.n_inputs;
        let mut sums = [0.0f32; LANES];
        for &(root, depth) in &self.roots {
            let mut at = [root as usize; LANES];
            for _ in 0..depth {
                for (lane, i) in at.iter_mut().enumerate() {
                    let node = self.nodes[*i];
                    let x = rows[lane * n + node.feature as usize];
                    *i = node.child[go(*i, x, node.value) as usize] as usize;
                }
            }
            for (sum, &i) in sums.iter_mut().zip(&at) {
                *sum += self.nodes[i].value;
            }
        }
        sums
    }

    #[inline]
    fn finish(&self, sum: f32) -> f32 {
        match self.finish {
            Finish::Logistic => {
                let s = sum + self.base;
                let v = 1.0 / (1.0 + (-s.abs()).exp());
                if s < 0.0 {
                    1.0 - v
                } else {
                    v
                }
            }
            Finish::Identity => sum + self.base,
            Finish::Average(n) => sum / n + self.base,
        }
    }

    /// `n` deterministic rows that exercise every branch: each value is one of its input's
    /// thresholds, the next `f32` above or below one, 0, −1, a large value or NaN.
    pub(crate) fn probe_rows(&self, n: usize) -> Vec<f32> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut rows = Vec::with_capacity(n * self.n_inputs);
        for _ in 0..n {
            for th in &self.thresholds {
                let r = next();
                let pick = if th.is_empty() {
                    0.0
                } else {
                    th[(r >> 8) as usize % th.len()]
                };
                rows.push(match r % 16 {
                    0..=4 => pick,
                    5..=8 => pick.next_up(),
                    9..=12 => pick.next_down(),
                    13 => 0.0,
                    14 => [-1.0, 1e9][(r >> 40) as usize % 2],
                    _ => f32::NAN,
                });
            }
        }
        rows
    }
}

/// Follows `Identity` nodes back from graph value `name` to the value they copy.
fn trace(nodes: &[NodeProto], name: &str) -> Result<String, String> {
    let mut name = name.to_string();
    for _ in 0..=nodes.len() {
        match nodes
            .iter()
            .find(|n| n.op_type == "Identity" && n.output.first() == Some(&name))
        {
            Some(id) => {
                name = id
                    .input
                    .first()
                    .cloned()
                    .ok_or("an Identity without input")?
            }
            None => return Ok(name),
        }
    }
    Err("the Identity nodes form a cycle".into())
}

const CLASSIFIER_ATTRS: &[&str] = &[
    "base_values",
    "class_ids",
    "class_nodeids",
    "class_treeids",
    "class_weights",
    "classlabels_int64s",
    "classlabels_strings",
];
const REGRESSOR_ATTRS: &[&str] = &[
    "aggregate_function",
    "base_values",
    "n_targets",
    "target_ids",
    "target_nodeids",
    "target_treeids",
    "target_weights",
];
const NODE_ATTRS: &[&str] = &[
    "nodes_falsenodeids",
    "nodes_featureids",
    "nodes_hitrates",
    "nodes_missing_value_tracks_true",
    "nodes_modes",
    "nodes_nodeids",
    "nodes_treeids",
    "nodes_truenodeids",
    "nodes_values",
    "post_transform",
];

fn build(node: &NodeProto, classifier: bool, n_inputs: usize) -> Result<TreeEnsemble, String> {
    let own = if classifier {
        CLASSIFIER_ATTRS
    } else {
        REGRESSOR_ATTRS
    };
    let mut attrs: HashMap<&str, &Attribute> = HashMap::new();
    for a in &node.attribute {
        if !own.contains(&a.name.as_str()) && !NODE_ATTRS.contains(&a.name.as_str()) {
            return Err(format!("attribute `{}`", a.name));
        }
        attrs.insert(&a.name, a);
    }
    let ints = |k: &str| attrs.get(k).map_or(&[][..], |a| &a.ints[..]);
    let floats = |k: &str| attrs.get(k).map_or(&[][..], |a| &a.floats[..]);
    let text = |k: &str| attrs.get(k).map_or(&[][..], |a| &a.s[..]);

    let tree_ids = ints("nodes_treeids");
    let node_ids = ints("nodes_nodeids");
    let count = tree_ids.len();
    let same_len = |k: &str, len: usize| {
        if len == count {
            Ok(())
        } else {
            Err(format!("`{k}` has {len} entries, `nodes_treeids` {count}"))
        }
    };
    same_len("nodes_nodeids", node_ids.len())?;
    let features = ints("nodes_featureids");
    same_len("nodes_featureids", features.len())?;
    let values = floats("nodes_values");
    same_len("nodes_values", values.len())?;
    let yes_ids = ints("nodes_truenodeids");
    same_len("nodes_truenodeids", yes_ids.len())?;
    let no_ids = ints("nodes_falsenodeids");
    same_len("nodes_falsenodeids", no_ids.len())?;
    let mode_names = attrs.get("nodes_modes").map_or(&[][..], |a| &a.strings[..]);
    same_len("nodes_modes", mode_names.len())?;
    let missing = ints("nodes_missing_value_tracks_true");
    if !missing.is_empty() {
        same_len("nodes_missing_value_tracks_true", missing.len())?;
    }
    let mut modes = Vec::with_capacity(count);
    for m in mode_names {
        modes.push(
            Mode::parse(m).ok_or_else(|| format!("node mode `{}`", String::from_utf8_lossy(m)))?,
        );
    }

    if n_inputs == 0 {
        return Err("the model takes no inputs".into());
    }
    let post = text("post_transform");
    let base = floats("base_values");
    if base.len() > 1 {
        return Err(format!("{} base values", base.len()));
    }
    let (prefix, finish) = if classifier {
        let labels = ints("classlabels_int64s").len().max(
            attrs
                .get("classlabels_strings")
                .map_or(0, |a| a.strings.len()),
        );
        if labels != 2 {
            return Err(format!(
                "{labels} class labels (only binary classifiers compile)"
            ));
        }
        if ints("class_ids").iter().any(|&c| c != 0) {
            return Err("leaf weights for more than class 0".into());
        }
        if floats("class_weights").iter().all(|&w| w >= 0.0) {
            return Err("all leaf weights are non-negative".into());
        }
        let finish = match post {
            b"" | b"NONE" => Finish::Identity,
            b"LOGISTIC" => Finish::Logistic,
            other => {
                return Err(format!(
                    "post_transform `{}`",
                    String::from_utf8_lossy(other)
                ))
            }
        };
        ("class", finish)
    } else {
        let targets = attrs.get("n_targets").map_or(1, |a| a.i);
        if targets != 1 || ints("target_ids").iter().any(|&t| t != 0) {
            return Err(format!("{targets} targets (only one compiles)"));
        }
        if !matches!(post, b"" | b"NONE") {
            return Err(format!(
                "post_transform `{}`",
                String::from_utf8_lossy(post)
            ));
        }
        let finish = match text("aggregate_function") {
            b"" | b"SUM" => Finish::Identity,
            b"AVERAGE" => Finish::Average(0.0),
            other => {
                return Err(format!(
                    "aggregate_function `{}`",
                    String::from_utf8_lossy(other)
                ))
            }
        };
        ("target", finish)
    };
    let w_trees = ints(&format!("{prefix}_treeids"));
    let w_nodes = ints(&format!("{prefix}_nodeids"));
    let w_values = floats(&format!("{prefix}_weights"));
    if w_nodes.len() != w_trees.len() || w_values.len() != w_trees.len() {
        return Err(format!("`{prefix}_*` attributes differ in length"));
    }

    // (tree, node id) → position in the attribute arrays; trees in order of first appearance.
    let mut position: HashMap<(i64, i64), usize> = HashMap::with_capacity(count);
    let mut tree_order: Vec<i64> = Vec::new();
    let mut per_tree: HashMap<i64, Vec<usize>> = HashMap::new();
    for k in 0..count {
        if position.insert((tree_ids[k], node_ids[k]), k).is_some() {
            return Err(format!(
                "tree {} has node id {} twice",
                tree_ids[k], node_ids[k]
            ));
        }
        per_tree
            .entry(tree_ids[k])
            .or_insert_with(|| {
                tree_order.push(tree_ids[k]);
                Vec::new()
            })
            .push(k);
    }
    let mut weight: Vec<Option<f32>> = vec![None; count];
    for ((&t, &n), &w) in w_trees.iter().zip(w_nodes).zip(w_values) {
        let k = *position
            .get(&(t, n))
            .ok_or_else(|| format!("a weight for node {n} of tree {t}, which does not exist"))?;
        if modes[k].is_some() {
            return Err(format!("a weight on branch node {n} of tree {t}"));
        }
        if weight[k].replace(w).is_some() {
            return Err(format!("leaf {n} of tree {t} has several weights"));
        }
    }

    let mut thresholds = vec![Vec::new(); n_inputs];
    let mut nodes = Vec::with_capacity(count);
    let mut node_modes = Vec::with_capacity(count);
    let mut roots = Vec::with_capacity(tree_order.len());
    let mut all_leq = true;
    for t in &tree_order {
        let members = &per_tree[t];
        // The root is the one node no other node of the tree points at.
        let mut pointed: HashMap<i64, usize> = HashMap::new();
        for &k in members {
            if modes[k].is_some() {
                for child in [yes_ids[k], no_ids[k]] {
                    if !position.contains_key(&(*t, child)) {
                        return Err(format!("tree {t} points at missing node {child}"));
                    }
                    *pointed.entry(child).or_default() += 1;
                }
            }
        }
        if pointed.values().any(|&c| c > 1) {
            return Err(format!("tree {t} is not a tree (a node has two parents)"));
        }
        let mut candidates = members
            .iter()
            .filter(|&&k| !pointed.contains_key(&node_ids[k]));
        let (Some(&root), None) = (candidates.next(), candidates.next()) else {
            return Err(format!("tree {t} does not have exactly one root"));
        };
        if root != members[0] {
            // ONNX Runtime takes a tree's first listed node as its root.
            return Err(format!("tree {t} does not list its root first"));
        }
        // Pre-order layout; children are patched once their index is known.
        let start = nodes.len();
        let mut depth = 0u32;
        let mut stack = vec![(root, None::<(usize, usize)>, 0u32)];
        while let Some((k, parent, level)) = stack.pop() {
            let at = nodes.len();
            if at - start >= members.len() {
                return Err(format!("tree {t} has a cycle"));
            }
            if let Some((p, side)) = parent {
                let node: &mut Node = &mut nodes[p];
                node.child[side] = at as u32;
            }
            match modes[k] {
                None => {
                    let w = weight[k]
                        .ok_or_else(|| format!("leaf {} of tree {t} has no weight", node_ids[k]))?;
                    nodes.push(Node {
                        feature: 0,
                        value: w,
                        child: [at as u32; 2],
                    });
                    depth = depth.max(level);
                    node_modes.push((Mode::Leq, false));
                }
                Some(mode) => {
                    let f = usize::try_from(features[k])
                        .ok()
                        .filter(|&f| f < n_inputs)
                        .ok_or_else(|| {
                            format!(
                                "node {} of tree {t} reads input {} of {n_inputs}",
                                node_ids[k], features[k]
                            )
                        })?;
                    let tracks = missing.get(k).is_some_and(|&m| m != 0);
                    all_leq &= mode == Mode::Leq && !tracks;
                    thresholds[f].push(values[k]);
                    nodes.push(Node {
                        feature: f as u32,
                        value: values[k],
                        child: [0, 0],
                    });
                    node_modes.push((mode, tracks));
                    stack.push((position[&(*t, no_ids[k])], Some((at, 0)), level + 1));
                    stack.push((position[&(*t, yes_ids[k])], Some((at, 1)), level + 1));
                }
            }
        }
        if nodes.len() - start != members.len() {
            return Err(format!("tree {t} has nodes its root does not reach"));
        }
        roots.push((start as u32, depth));
    }
    if roots.is_empty() {
        return Err("the ensemble has no trees".into());
    }
    let finish = match finish {
        Finish::Average(_) => Finish::Average(roots.len() as f32),
        f => f,
    };
    for th in thresholds.iter_mut() {
        th.sort_unstable_by(f32::total_cmp);
        th.dedup();
    }
    Ok(TreeEnsemble {
        nodes,
        roots,
        modes: node_modes,
        all_leq,
        base: base.first().copied().unwrap_or(0.0),
        finish,
        n_inputs,
        op: if classifier {
            "TreeEnsembleClassifier"
        } else {
            "TreeEnsembleRegressor"
        },
        thresholds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx_proto::{GraphProto, OperatorSetId, ValueInfo};

    /// One tree node: (node id, mode, feature, threshold, true id, false id).
    type Spec = (i64, &'static str, i64, f32, i64, i64);

    fn attr_ints(name: &str, ints: Vec<i64>) -> Attribute {
        Attribute {
            name: name.into(),
            ints,
            ..Attribute::default()
        }
    }

    fn attr_floats(name: &str, floats: Vec<f32>) -> Attribute {
        Attribute {
            name: name.into(),
            floats,
            ..Attribute::default()
        }
    }

    /// A one-tree `TreeEnsembleRegressor` (SUM, base 0.5) over 2 inputs; leaves weigh
    /// `10 + node id`.
    fn regressor(nodes: &[Spec], extra: Vec<Attribute>, ops: &[&str]) -> Vec<u8> {
        let leaves: Vec<i64> = nodes
            .iter()
            .filter(|n| n.1 == "LEAF")
            .map(|n| n.0)
            .collect();
        let mut attribute = vec![
            attr_ints("nodes_treeids", vec![0; nodes.len()]),
            attr_ints("nodes_nodeids", nodes.iter().map(|n| n.0).collect()),
            Attribute {
                name: "nodes_modes".into(),
                strings: nodes.iter().map(|n| n.1.as_bytes().to_vec()).collect(),
                ..Attribute::default()
            },
            attr_ints("nodes_featureids", nodes.iter().map(|n| n.2).collect()),
            attr_floats("nodes_values", nodes.iter().map(|n| n.3).collect()),
            attr_ints("nodes_truenodeids", nodes.iter().map(|n| n.4).collect()),
            attr_ints("nodes_falsenodeids", nodes.iter().map(|n| n.5).collect()),
            attr_ints("target_treeids", vec![0; leaves.len()]),
            attr_ints("target_nodeids", leaves.clone()),
            attr_ints("target_ids", vec![0; leaves.len()]),
            attr_floats(
                "target_weights",
                leaves.iter().map(|&n| 10.0 + n as f32).collect(),
            ),
            attr_floats("base_values", vec![0.5]),
        ];
        attribute.extend(extra);
        let mut node = vec![NodeProto {
            input: vec!["input".into()],
            output: vec!["variable".into()],
            op_type: "TreeEnsembleRegressor".into(),
            domain: "ai.onnx.ml".into(),
            attribute,
        }];
        for op in ops {
            node.push(NodeProto {
                input: vec!["variable".into()],
                output: vec!["variable".into()],
                op_type: (*op).into(),
                ..NodeProto::default()
            });
        }
        ModelProto {
            opset_import: vec![OperatorSetId {
                domain: "ai.onnx.ml".into(),
                version: 3,
            }],
            graph: Some(GraphProto {
                node,
                initializer: Vec::new(),
                input: vec![ValueInfo {
                    name: "input".into(),
                }],
                output: vec![ValueInfo {
                    name: "variable".into(),
                }],
            }),
        }
        .encode_to_vec()
    }

    /// `x0 <= 1 ? (x1 < 5 ? leaf 3 : leaf 4) : leaf 2`.
    const TREE: &[Spec] = &[
        (0, "BRANCH_LEQ", 0, 1.0, 1, 2),
        (1, "BRANCH_LT", 1, 5.0, 3, 4),
        (2, "LEAF", 0, 0.0, 0, 0),
        (3, "LEAF", 0, 0.0, 0, 0),
        (4, "LEAF", 0, 0.0, 0, 0),
    ];

    fn compile_err(bytes: &[u8]) -> String {
        TreeEnsemble::compile(bytes, 2, "variable").unwrap_err()
    }

    #[test]
    fn small_tree_scores_by_hand() {
        let trees = TreeEnsemble::compile(&regressor(TREE, vec![], &[]), 2, "variable").unwrap();
        assert_eq!(trees.describe(), "TreeEnsembleRegressor, 1 trees, 5 nodes");
        let mut out = Vec::new();
        // 9 rows: one batch of 8 lanes and one remainder row, NaN going to the false child.
        let rows = [
            0.0,
            0.0,
            0.0,
            7.0,
            3.0,
            0.0,
            1.0,
            5.0,
            f32::NAN,
            0.0,
            1.0,
            f32::NAN,
            2.0,
            2.0,
            0.0,
            4.9,
            1.0,
            4.0,
        ];
        trees.score(&rows, &mut out);
        assert_eq!(out, [13.5, 14.5, 12.5, 14.5, 12.5, 14.5, 12.5, 13.5, 13.5]);
        let probes = trees.probe_rows(50);
        assert_eq!(probes.len(), 100);
        assert!(probes.iter().any(|x| x.is_nan()));
        assert!(probes.contains(&1.0) && probes.contains(&5.0f32.next_down()));
    }

    #[test]
    fn identity_nodes_after_the_ensemble_are_followed() {
        let bytes = regressor(TREE, vec![], &[]);
        let mut model = ModelProto::decode(&bytes[..]).unwrap();
        let graph = model.graph.as_mut().unwrap();
        graph.node[0].output = vec!["raw".into()];
        graph.node.push(NodeProto {
            input: vec!["raw".into()],
            output: vec!["variable".into()],
            op_type: "Identity".into(),
            ..NodeProto::default()
        });
        assert!(TreeEnsemble::compile(&model.encode_to_vec(), 2, "variable").is_ok());
    }

    #[test]
    fn unsupported_shapes_name_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                regressor(&[TREE[1], TREE[0], TREE[2], TREE[3], TREE[4]], vec![], &[]),
                "tree 0 does not list its root first",
            ),
            (
                regressor(
                    &[
                        (0, "BRANCH_LEQ", 0, 1.0, 1, 1),
                        TREE[2],
                        TREE[3],
                        (1, "LEAF", 0, 0.0, 0, 0),
                    ],
                    vec![],
                    &[],
                ),
                "tree 0 is not a tree (a node has two parents)",
            ),
            (
                regressor(
                    &[(0, "BRANCH_LEQ", 0, 1.0, 1, 9), (1, "LEAF", 0, 0.0, 0, 0)],
                    vec![],
                    &[],
                ),
                "tree 0 points at missing node 9",
            ),
            (
                regressor(
                    &[
                        (0, "BRANCH_LEQ", 2, 1.0, 1, 2),
                        TREE[2],
                        (1, "LEAF", 0, 0.0, 0, 0),
                    ],
                    vec![],
                    &[],
                ),
                "node 0 of tree 0 reads input 2 of 2",
            ),
            (
                regressor(TREE, vec![attr_ints("nodes_values_as_tensor", vec![])], &[]),
                "attribute `nodes_values_as_tensor`",
            ),
            (
                regressor(TREE, vec![], &["Sigmoid"]),
                "operator `Sigmoid` (domain ``) besides the tree ensemble",
            ),
            (
                regressor(
                    &[(0, "BRANCH_XOR", 0, 1.0, 1, 2), TREE[2], TREE[3]],
                    vec![],
                    &[],
                ),
                "node mode `BRANCH_XOR`",
            ),
            (
                regressor(TREE, vec![attr_ints("n_targets", vec![])], &[]),
                "0 targets (only one compiles)",
            ),
            (b"not onnx at all".to_vec(), "cannot decode the protobuf"),
        ];
        for (bytes, want) in cases {
            let got = compile_err(&bytes);
            assert!(got.starts_with(want), "got `{got}`, want `{want}`");
        }
        assert_eq!(
            TreeEnsemble::compile(&regressor(TREE, vec![], &[]), 2, "label").unwrap_err(),
            "output `label` is not the ensemble's value"
        );
    }
}
