"""The ``ai.onnx.ml`` tree ensembles, vectorised: TreeEnsembleRegressor and
TreeEnsembleClassifier (ml opsets 1 and 3) and TreeEnsemble (ml opset 5).

onnx's reference ops walk every tree for every sample in a Python loop (a 100-tree forest on
1,000 samples takes seconds). Here the node tables are built once per node, when the plan is
built, and all samples walk all trees together: an array of node positions (trees x samples)
takes one vectorised step per tree level (gather feature, threshold and mode, compare, gather
the child); leaves point at themselves, so finished walks stay put. The leaf weights are then
gathered and reduced over the trees, tree after tree in order, as onnxruntime adds them.

The semantics are onnxruntime's CPU kernels (checked against onnxruntime 1.31), which differ
from onnx's reference ops in these points (each has a test):

- a NaN feature takes the true branch when ``nodes_missing_value_tracks_true`` is 1 (exactly
  1: onnx takes any value >= 1); otherwise the comparison decides, so BRANCH_NEQ sends NaN to
  the true branch (NaN != t) where onnx's ml-3 op sends it to the false one; onnx's ml-3 op
  fails on NaN when the attribute is absent;
- a target (or class) that no reached leaf votes for scores 0 before the post-transform,
  whatever its ``base_values`` and the aggregate function (onnx: the base value, or the float
  limits for MIN and MAX);
- with one target (one class), each leaf counts its first weight only (a leaf with no weight,
  its ``nodes_values`` entry) and the post-transform is ignored except PROBIT; TreeEnsemble-5
  is computed the same way (onnx ignores its post_transform altogether and sums every weight);
- a tree is a run of consecutive nodes with one tree id, rooted at its first node (trees whose
  nodes are interleaved with another's become several trees, as in onnxruntime);
- classifier labels come from the raw scores (before the post-transform), the best scored
  class winning; two classes follow onnxruntime's binary rules (``binary`` below), including
  the label 0/1 (not the class label) it returns when both class ids carry weights, and the
  score columns it writes for one-score binaries; a single class returns label 1 or 0 (score
  above 0 or not) and a one-column score;
- BRANCH_MEMBER sets may hold 0.0 (onnx's op stops reading a set at a 0.0 member); a set
  holding values outside [0, 30] (integers) is compared with the feature cast to int32, as
  onnxruntime does (sets of non-integers outside [0, 30], which it refuses, compare exactly);
- TreeEnsemble-5's post_transform 1 is LOGISTIC and 2 SOFTMAX (onnxruntime's reading; the
  spec says the reverse), and a one-leaf tree's leaf is the one its root's branches name
  (onnx's op takes the leaf at the root's position);
- the post-transforms are onnxruntime's float32 formulas (its PROBIT approximation, its
  SOFTMAX_ZERO that leaves scores of |s| <= 1e-7 out of the sum, NaN for an all-zero row).

Computation types are onnxruntime's: thresholds, weights and sums in float32 for float32 and
integer inputs (integers compared as float32), float64 for float64 inputs; TreeEnsemble-5 in
its input's type. The ``*_as_tensor`` (float64) attributes make it float64 for every input
(onnxruntime refuses them with float32 inputs; onnx's ops ignore them and fail).

Declined (onnx's op runs them): float16 TreeEnsemble (onnxruntime has no kernel either),
unknown modes, aggregate functions or transforms, attribute lists of mismatched lengths,
base_values of a length onnxruntime refuses, a single string class, and the two binary
forms whose second score column onnxruntime leaves unwritten (PROBIT on one score, and one
base value with weights for both classes).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxep.graph import NodeInfo
from onnxep.reference._common import factory, quiet
from onnxep.reference._ml_transforms import TRANSFORMS, logistic, probit, transform
from onnxep.reference._registry import kernels

__all__: list[str] = []

ML = "ai.onnx.ml"
LEQ, LT, GTE, GT, EQ, NEQ, MEMBER, LEAF = range(8)
_MODES = {
    "BRANCH_LEQ": LEQ,
    "BRANCH_LT": LT,
    "BRANCH_GTE": GTE,
    "BRANCH_GT": GT,
    "BRANCH_EQ": EQ,
    "BRANCH_NEQ": NEQ,
    "LEAF": LEAF,
}
#: TreeEnsemble-5 numbers these by position.
AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
#: onnxruntime reads TreeEnsemble-5's post_transform in its own enum's order, 1 and 2 swapped
#: from the spec's (1 SOFTMAX, 2 LOGISTIC): its 1 is LOGISTIC and its 2 SOFTMAX.
TRANSFORMS_ORT = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
_FILL = {"AVERAGE": 0.0, "SUM": 0.0, "MIN": np.inf, "MAX": -np.inf}
_REDUCE = {"AVERAGE": np.add, "SUM": np.add, "MIN": np.minimum, "MAX": np.maximum}
#: (sample, tree) pairs walked at once: bounds the work arrays, keeps them in cache.
CHUNK = 1 << 15
_INPUTS = ("float32", "float64", "int64", "int32")


def _outcomes() -> np.ndarray:
    """Branch taken per (mode, comparison code), code = (x<t) | (x==t) << 1 | (x>t) << 2.

    Code 0 is a NaN feature: only BRANCH_NEQ is true there (NaN != t), as in C++.
    """
    table = np.zeros((8, 8), dtype=bool)
    for code in range(8):
        lt, eq, gt = bool(code & 1), bool(code & 2), bool(code & 4)
        table[LEQ, code], table[LT, code] = lt or eq, lt
        table[GTE, code], table[GT, code] = gt or eq, gt
        table[EQ, code], table[NEQ, code] = eq, not eq
    return table.reshape(-1)


_OUTCOMES = _outcomes()
_COMPARE = {LEQ: np.less_equal, LT: np.less, GTE: np.greater_equal, GT: np.greater}
_COMPARE.update({EQ: np.equal, NEQ: np.not_equal})


# --- the walk -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Members:
    """BRANCH_MEMBER sets: a (node, value) pair is a member when its key is in ``keys``.

    onnxruntime compares a set holding values outside [0, 30] (integers, else it refuses the
    model) with the feature cast to int32 (``truncate``); sets within [0, 30] exactly.
    """

    rank: np.ndarray  # (n_nodes,) the node's set number, -1 for other nodes
    values: np.ndarray  # every distinct member value, sorted
    keys: np.ndarray  # sorted rank * len(values) + position in values, one per member
    truncate: np.ndarray  # (n_nodes,) compare the feature cast to int32

    def contains(self, nodes: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Whether each ``x`` is in the set of its node (NaN never is, unless cast)."""
        cast = self.truncate[nodes]
        if cast.any():
            x = np.where(cast, _int32(x), x)
        where = np.searchsorted(self.values, x)
        found = self.values[np.minimum(where, len(self.values) - 1)] == x
        key = self.rank[nodes] * len(self.values) + where
        at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        return found & (self.keys[at] == key)


def _int32(x: np.ndarray) -> np.ndarray:
    """``x`` cast to int32 as x86 does it (kept in x's type): truncated; NaN, infinities and
    values out of range become -2**31."""
    inside = (x > -(2.0**31) - 1) & (x < 2.0**31)
    return np.where(inside, np.trunc(x), -(2.0**31)).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Forest:
    """Node tables of every tree, built once; ``walk`` finds the leaf of every pair."""

    feature: np.ndarray  # (n_nodes,) feature compared at the node (0 at leaves)
    threshold: np.ndarray  # (n_nodes,) in the type features are compared in
    mode: np.ndarray  # (n_nodes,) uint8 LEQ .. LEAF
    children: np.ndarray  # (2 * n_nodes,): [2i] the false child, [2i + 1] the true one
    missing: np.ndarray | None  # (n_nodes,) NaN goes true; None when no node says so
    roots: np.ndarray  # (n_trees,) the node each walk starts from
    depth: int  # steps to reach every leaf
    members: Members | None
    width: int  # features read: 1 + the largest feature id of a branch node

    def walk(self, x: np.ndarray) -> np.ndarray:
        """The leaf each tree reaches for each row of ``x``: (n_trees, n_rows) node indices."""
        rows, width = x.shape
        flat = x.reshape(-1)
        offsets = np.arange(rows, dtype=np.intp) * width
        at = np.repeat(self.roots[:, None], rows, axis=1)
        decide = self.decide
        for _ in range(self.depth):
            value = flat[self.feature[at] + offsets]
            at = self.children[2 * at + decide(value, at)]
        return at

    @functools.cached_property
    def decide(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The branch taken (True: the true child), from the features and the nodes."""
        modes = frozenset(int(m) for m in np.unique(self.mode)) - {LEAF}
        if len(modes) == 1 and MEMBER not in modes:
            compare = _COMPARE[next(iter(modes))]

            def branch(value: np.ndarray, at: np.ndarray) -> np.ndarray:
                return compare(value, self.threshold[at])

        else:
            branch = self._mixed
        if self.missing is None:
            return branch

        def tracked(value: np.ndarray, at: np.ndarray) -> np.ndarray:
            go = branch(value, at)
            go |= self.missing[at] & np.isnan(value)
            return go

        return tracked

    def _mixed(self, value: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The branch for nodes of several modes: one lookup in the outcome table."""
        threshold = self.threshold[at]
        code = np.less(value, threshold).view(np.uint8)
        code |= np.equal(value, threshold).view(np.uint8) << 1
        code |= np.greater(value, threshold).view(np.uint8) << 2
        mode = self.mode[at]
        go = _OUTCOMES[(mode.astype(np.intp) << 3) | code]
        if self.members is not None:
            member = np.flatnonzero(mode == MEMBER)
            if member.size:
                nodes, values = at.reshape(-1)[member], value.reshape(-1)[member]
                go.reshape(-1)[member] = self.members.contains(nodes, values)
        return go


def _depth(mode: np.ndarray, children: np.ndarray, roots: np.ndarray) -> tuple[int, np.ndarray]:
    """Steps to reach every leaf from the roots, and the (tree, leaf) pairs reachable.

    Raises on a cycle (onnxruntime loops forever or refuses the model).
    """
    n_nodes = len(mode)
    tree, node = np.arange(len(roots)), roots.astype(np.intp)
    depth, leaves = 0, []
    while node.size:
        leaf = mode[node] == LEAF
        leaves.append((tree[leaf], node[leaf]))
        tree, node = tree[~leaf], node[~leaf]
        if not node.size:
            break
        depth += 1
        if depth > n_nodes:
            raise ValueError("the trees have a cycle: a node is its own descendant")
        tree = np.repeat(tree, 2)
        node = children[(2 * node[:, None] + np.arange(2)).reshape(-1)]
        pair = np.unique(tree.astype(np.int64) * n_nodes + node)
        tree, node = pair // n_nodes, (pair % n_nodes).astype(np.intp)
    trees = np.concatenate([t for t, _ in leaves]) if leaves else np.zeros(0, np.intp)
    nodes = np.concatenate([n for _, n in leaves]) if leaves else np.zeros(0, np.intp)
    return depth, np.stack([trees, nodes])


# --- leaf weights -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Votes:
    """What each leaf adds, per node: ``value[node]`` (and ``has``: whether it votes).

    Dense: (n_nodes, n_targets) tables. Grouped (every tree votes for one target, as in
    boosted ensembles; one target): (n_nodes,) tables, the trees ordered by target, tree
    ``starts[g]`` opening the trees of target ``targets[g]``.
    """

    value: np.ndarray
    has: np.ndarray | None  # None: every reachable leaf votes for every target
    n_targets: int
    starts: np.ndarray | None = None
    targets: np.ndarray | None = None

    def gather(self, leaves: np.ndarray, reduce: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
        """(n_rows, n_targets) scores and whether any leaf voted, for (n_trees, n_rows)."""
        n_rows = leaves.shape[1]
        if not leaves.shape[0]:  # no tree: nothing votes
            empty = np.zeros((n_rows, self.n_targets), self.value.dtype)
            return empty, np.zeros(empty.shape, dtype=bool)
        if self.starts is None:
            scores = reduce.reduce(self.value[leaves], axis=0)
            if self.has is None:
                return scores, np.ones(scores.shape, dtype=bool)
            return scores, np.logical_or.reduce(self.has[leaves], axis=0)
        scores = np.zeros((n_rows, self.n_targets), self.value.dtype)
        has = np.zeros((n_rows, self.n_targets), dtype=bool)
        value = self.value[leaves]
        voted = None if self.has is None else self.has[leaves]
        ends = [*self.starts[1:].tolist(), len(leaves)]
        for target, start, end in zip(self.targets.tolist(), self.starts.tolist(), ends):
            # reduce over axis 0 adds tree after tree (reduceat may not: onnxruntime's order)
            scores[:, target] = reduce.reduce(value[start:end], axis=0)
            has[:, target] = True if voted is None else voted[start:end].any(axis=0)
        return scores, has


def _votes(
    n_nodes: int,
    nodes: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    n_targets: int,
    aggregate: str,
    reachable: np.ndarray,
    fallback: np.ndarray,
    n_trees: int,
) -> tuple[Votes, np.ndarray]:
    """The leaf tables for weights ``(nodes[i], targets[i], weights[i])``, and the order of
    the trees (grouped by target when each tree votes for one target).

    One target: each leaf counts its first weight, ``fallback[node]`` if it has none.
    """
    if n_targets == 1:
        value = fallback.copy()
        voting, first = np.unique(nodes, return_index=True)
        value[voting] = weights[first]
        one = np.zeros(1, dtype=np.intp)
        return Votes(value, None, 1, one, one), np.arange(n_trees)
    if targets.size and (targets.min() < 0 or targets.max() >= n_targets):
        raise ValueError(f"a weight's target is outside [0, {n_targets})")
    tree_target = _tree_targets(n_nodes, nodes, targets, reachable, n_trees)
    fill = _FILL[aggregate]
    reduce = _REDUCE[aggregate]
    if tree_target is not None and n_trees:
        value = np.full(n_nodes, fill, dtype=weights.dtype)
        reduce.at(value, nodes, weights)
        voted = np.zeros(n_nodes, dtype=bool)
        voted[nodes] = True
        order = np.argsort(tree_target, kind="stable")
        ordered = tree_target[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        has = None if voted[reachable[1]].all() else voted
        return Votes(value, has, n_targets, starts, ordered[starts]), order
    value = np.full((n_nodes, n_targets), fill, dtype=weights.dtype)
    reduce.at(value, (nodes, targets), weights)
    voted = np.zeros((n_nodes, n_targets), dtype=bool)
    voted[nodes, targets] = True
    has = None if voted[reachable[1]].all() else voted
    return Votes(value, has, n_targets), np.arange(n_trees)


def _tree_targets(
    n_nodes: int, nodes: np.ndarray, targets: np.ndarray, reachable: np.ndarray, n_trees: int
) -> np.ndarray | None:
    """The one target each tree's leaves vote for (0 for a tree without votes), or None."""
    low = np.full(n_nodes, np.iinfo(np.int64).max)
    high = np.full(n_nodes, -1)
    np.minimum.at(low, nodes, targets)
    np.maximum.at(high, nodes, targets)
    if (high[nodes] != low[nodes]).any():
        return None
    tree, leaf = reachable
    voting = high[leaf] >= 0
    tree_low = np.full(n_trees, np.iinfo(np.int64).max)
    tree_high = np.full(n_trees, -1)
    np.minimum.at(tree_low, tree[voting], high[leaf[voting]])
    np.maximum.at(tree_high, tree[voting], high[leaf[voting]])
    if (tree_high[tree_high >= 0] != tree_low[tree_high >= 0]).any():
        return None
    return np.maximum(tree_high, 0)


# --- building the tables from the attributes ----------------------------------------------
def _array(attrs: dict[str, Any], name: str, dtype: Any) -> np.ndarray:
    """Attribute ``name`` (a list, or a tensor for ``*_as_tensor``) as a flat array."""
    value = attrs.get(name)
    return np.asarray(() if value is None else value).reshape(-1).astype(dtype)


def _values(attrs: dict[str, Any], name: str, dtype: Any) -> np.ndarray:
    """``name`` or ``name_as_tensor``, in ``dtype``."""
    if attrs.get(f"{name}_as_tensor") is not None:
        return _array(attrs, f"{name}_as_tensor", np.float64).astype(dtype)
    return _array(attrs, name, np.float32).astype(dtype)


class _Ids:
    """Positions of the nodes by (tree id, node id)."""

    def __init__(self, trees: np.ndarray, ids: np.ndarray) -> None:
        self.table = {(t, i): n for n, (t, i) in enumerate(zip(trees.tolist(), ids.tolist()))}
        if len(self.table) != len(trees):
            raise ValueError("two nodes share a tree id and a node id")

    def find(self, trees: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """The position of each (tree, node id) pair; -1 where there is no such node."""
        pairs = zip(trees.reshape(-1).tolist(), ids.reshape(-1).tolist())
        found = [self.table.get(p, -1) for p in pairs]
        return np.array(found, dtype=np.intp).reshape(ids.shape)


def _forest(
    feature: np.ndarray,
    threshold: np.ndarray,
    mode: np.ndarray,
    children: np.ndarray,
    missing: np.ndarray,
    roots: np.ndarray,
    members: Members | None = None,
) -> tuple[Forest, np.ndarray]:
    """The forest (leaves made their own children), and its reachable (tree, leaf) pairs."""
    n_nodes = len(mode)
    leaf = mode == LEAF
    children[np.repeat(leaf, 2)] = np.repeat(np.flatnonzero(leaf), 2)
    if ((children < 0) | (children >= n_nodes)).any():
        raise ValueError("a node's child is not a node of its tree")
    inner = np.flatnonzero(~leaf)
    if ((children[2 * inner] == inner) | (children[2 * inner + 1] == inner)).any():
        raise ValueError("a node cannot be its own child")
    depth, reachable = _depth(mode, children, roots)
    feature = np.where(leaf, 0, feature).astype(np.intp)
    if (feature < 0).any():
        raise ValueError("a node has a negative feature id")
    tracked = missing.astype(bool) & ~leaf
    forest = Forest(
        feature=feature,
        threshold=threshold,
        mode=mode.astype(np.uint8),
        children=children.astype(np.intp),
        missing=tracked if tracked.any() else None,
        roots=roots.astype(np.intp),
        depth=depth,
        members=members,
        width=int(feature.max()) + 1 if inner.size else 0,
    )
    return forest, reachable


def v3_tables(
    attrs: dict[str, Any], prefix: str, n_targets: int, dtype: Any
) -> tuple[Forest, Votes, int]:
    """Forest, leaf votes and tree count of an ml-1/ml-3 ensemble (``prefix``: target or
    class), thresholds and weights in ``dtype``."""
    trees = _array(attrs, "nodes_treeids", np.int64)
    ids = _Ids(trees, _array(attrs, "nodes_nodeids", np.int64))
    mode = np.array([_MODES[m] for m in attrs.get("nodes_modes") or ()], dtype=np.uint8)
    threshold = _values(attrs, "nodes_values", dtype)
    n_nodes = len(trees)
    missing = np.zeros(n_nodes, dtype=bool)
    given = _array(attrs, "nodes_missing_value_tracks_true", np.int64)[:n_nodes]
    missing[: len(given)] = given == 1
    sides = [_array(attrs, f"nodes_{side}nodeids", np.int64) for side in ("false", "true")]
    inner = mode != LEAF
    children = np.zeros((n_nodes, 2), dtype=np.intp)
    children[inner] = ids.find(np.repeat(trees[inner, None], 2, 1), np.stack(sides, 1)[inner])
    roots = np.flatnonzero(np.r_[True, trees[1:] != trees[:-1]]) if n_nodes else trees
    features = _array(attrs, "nodes_featureids", np.int64)
    forest, reachable = _forest(features, threshold, mode, children.reshape(-1), missing, roots)
    weights = _values(attrs, f"{prefix}_weights", dtype)
    tree_ids = _array(attrs, f"{prefix}_treeids", np.int64)
    at = ids.find(tree_ids, _array(attrs, f"{prefix}_nodeids", np.int64))
    if (at < 0).any():
        raise ValueError(f"a {prefix} weight names a node that does not exist")
    on_leaf = mode[at] == LEAF  # onnxruntime ignores weights on branch nodes
    targets = _array(attrs, f"{prefix}_ids", np.int64)
    votes, order = _votes(
        n_nodes,
        at[on_leaf],
        targets[on_leaf],
        weights[on_leaf],
        n_targets,
        attrs.get("aggregate_function", "SUM"),
        reachable,
        threshold,
        len(roots),
    )
    forest = dataclasses.replace(forest, roots=forest.roots[order])
    return forest, votes, len(roots)


def _members(mode: np.ndarray, values: np.ndarray) -> Members | None:
    """The BRANCH_MEMBER sets: ``values`` lists each member node's set, in node order, each
    closed by a NaN."""
    member = np.flatnonzero(mode == MEMBER)
    if not member.size:
        return None
    ends = np.flatnonzero(np.isnan(values))
    starts = np.r_[0, ends[:-1] + 1][: len(member)]
    sets = [values[s:e] for s, e in zip(starts, ends)]
    distinct = np.unique(np.concatenate(sets)) if sets else values[:0]
    rank = np.full(len(mode), -1, dtype=np.int64)
    rank[member] = np.arange(len(member))
    keys = [r * len(distinct) + np.searchsorted(distinct, s) for r, s in enumerate(sets)]
    flat = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    if not flat.size:  # empty sets: no member anywhere
        distinct, flat = np.array([np.nan], values.dtype), np.array([-1], np.int64)
    truncate = np.zeros(len(mode), dtype=bool)
    truncate[member] = [_cast_set(s) for s in sets]
    return Members(rank, distinct, flat, truncate)


def _cast_set(values: np.ndarray) -> bool:
    """Whether onnxruntime compares this set in int32: it holds values outside [0, 30], all
    of them int32 integers (otherwise onnxruntime refuses it; such sets compare exactly)."""
    outside = ((values < 0) | (values > 30)).any()
    integral = (values == np.trunc(values)) & (np.abs(values) <= 2**31 - 1)
    return bool(outside and integral.all())


def v5_tables(attrs: dict[str, Any], dtype: Any) -> tuple[Forest, Votes, int]:
    """Forest, leaf votes and tree count of a TreeEnsemble-5 node, in ``dtype``.

    Interior nodes keep their positions; leaf ``j`` becomes node ``n_interior + j``. A
    one-leaf tree (a root whose branches are the same leaf) needs no special case: both ways
    lead to that leaf, as in onnxruntime (onnx's op takes the leaf at the root's position).
    """
    feature = _array(attrs, "nodes_featureids", np.int64)
    n_inner = len(feature)
    weights = _array(attrs, "leaf_weights", dtype)
    n_leaves = len(weights)
    mode = np.r_[_array(attrs, "nodes_modes", np.int64), np.full(n_leaves, LEAF)]
    threshold = np.r_[_array(attrs, "nodes_splits", dtype), np.zeros(n_leaves, dtype)]
    children = np.zeros((n_inner + n_leaves, 2), dtype=np.intp)
    for side, name in enumerate(("false", "true")):
        ids = _array(attrs, f"nodes_{name}nodeids", np.int64)
        leafs = _array(attrs, f"nodes_{name}leafs", np.int64) != 0
        children[:n_inner, side] = ids + np.where(leafs, n_inner, 0)
        bound = np.where(leafs, n_leaves, n_inner)
        if ((ids < 0) | (ids >= bound)).any():
            raise ValueError(f"a node's {name} child is out of range")
    roots = _array(attrs, "tree_roots", np.int64)
    if ((roots < 0) | (roots >= n_inner)).any():
        raise ValueError("a tree root is out of range")
    missing = np.zeros(n_inner + n_leaves, dtype=bool)
    given = _array(attrs, "nodes_missing_value_tracks_true", np.int64)[:n_inner]
    missing[: len(given)] = given == 1
    members = _members(mode, _array(attrs, "membership_values", dtype))
    forest, reachable = _forest(
        np.r_[feature, np.zeros(n_leaves, np.int64)],
        threshold,
        mode,
        children.reshape(-1),
        missing,
        roots,
        members,
    )
    n_targets = int(attrs.get("n_targets") or 0)
    votes, order = _votes(
        len(mode),
        n_inner + np.arange(n_leaves),
        _array(attrs, "leaf_targetids", np.int64),
        weights,
        n_targets,
        AGGREGATES[attrs["aggregate_function"]],
        reachable,
        threshold,
        len(roots),
    )
    return dataclasses.replace(forest, roots=forest.roots[order]), votes, len(roots)


# --- running ------------------------------------------------------------------------------
def _rows(X: Any, dtype: Any) -> np.ndarray:
    """The input as a C-contiguous 2-D array in the comparison type (1-D: one row)."""
    x = np.asarray(X)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"tree ensembles take a 1-D or 2-D input, not rank {x.ndim}")
    wide = dtype if x.dtype.kind in "iu" else np.result_type(x.dtype, dtype)
    return np.ascontiguousarray(x, dtype=wide)


def aggregate(
    forest: Forest, votes: Votes, x: np.ndarray, reduce: np.ufunc
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n_rows, n_targets) reduced over the trees, and whether any leaf voted."""
    rows, width = x.shape
    if forest.width > width:
        raise ValueError(f"a node reads feature {forest.width - 1}; the input has {width}")
    step = max(1, CHUNK // max(1, len(forest.roots)))
    if rows <= step:
        return votes.gather(forest.walk(x), reduce)
    parts = [votes.gather(forest.walk(x[i : i + step]), reduce) for i in range(0, rows, step)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def regression(
    scores: np.ndarray, has: np.ndarray, aggregate: str, post: str, base: np.ndarray, n_trees: int
) -> np.ndarray:
    """Final regression scores from the reduced votes, as onnxruntime finishes them."""
    if aggregate == "AVERAGE":
        scores = scores / scores.dtype.type(max(n_trees, 1))
    if scores.shape[1] == 1:  # one target: base value always added, only PROBIT applied
        if len(base) == 1:
            scores = scores + base
        return probit(scores) if post == "PROBIT" else scores
    if len(base):
        scores = scores + base
    return transform(np.where(has, scores, 0), post)


# --- kernels ------------------------------------------------------------------------------
def _dtype_v3(attrs: dict[str, Any], prefix: str, info: NodeInfo) -> Any:
    """float64 for float64 inputs or any ``*_as_tensor`` attribute, else float32."""
    names = ("nodes_values", f"{prefix}_weights", "base_values")
    tensors = any(attrs.get(f"{n}_as_tensor") is not None for n in names)
    x = info.input_type(0).dtype
    return np.float64 if tensors or (x is not None and x == np.float64) else np.float32


def _given(attrs: dict[str, Any], name: str) -> bool:
    """Whether the node sets ``name`` (a non-empty list or a tensor)."""
    value = attrs.get(name)
    return value is not None and np.size(value) > 0


def _size(attrs: dict[str, Any], name: str) -> int:
    """The length of list ``name``, or of ``name_as_tensor`` when that is set (0 if absent)."""
    tensor = attrs.get(f"{name}_as_tensor")
    value = attrs.get(name) if tensor is None else tensor
    return 0 if value is None else int(np.size(value))


def _lengths(attrs: dict[str, Any], groups: Sequence[Sequence[str]]) -> str | None:
    """A refusal when the lists of a group differ in length (a missing one counts as 0)."""
    for names in groups:
        sizes = {n: _size(attrs, n) for n in names}
        if len(set(sizes.values())) > 1:
            return f"attribute lists of different lengths: {sizes}"
    return None


def _check_v3(info: NodeInfo, prefix: str) -> str | None:
    """Refusals shared by the ml-1/ml-3 regressor and classifier."""
    attrs = dict(info.attrs)
    unknown = set(attrs.get("nodes_modes") or ()) - set(_MODES)
    if unknown:
        return f"unknown nodes_modes {sorted(unknown)}"
    post = attrs.get("post_transform", "NONE")
    if post not in TRANSFORMS:
        return f"post_transform={post!r} is not one of {TRANSFORMS}"
    agg = attrs.get("aggregate_function", "SUM")
    if agg not in AGGREGATES:
        return f"aggregate_function={agg!r} is not one of {AGGREGATES}"
    for name in ("nodes_values", f"{prefix}_weights", "base_values"):
        if _given(attrs, name) and _given(attrs, f"{name}_as_tensor"):
            return f"both {name} and {name}_as_tensor are set"
    nodes = ["nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes"]
    nodes += ["nodes_truenodeids", "nodes_falsenodeids", "nodes_values"]
    votes = [f"{prefix}_{n}" for n in ("ids", "nodeids", "treeids", "weights")]
    return _lengths(attrs, [nodes, votes])


def _base(attrs: dict[str, Any], dtype: Any) -> np.ndarray:
    """``base_values`` (or its tensor form) in ``dtype``."""
    return _values(attrs, "base_values", dtype)


def _check_regressor(info: NodeInfo) -> str | None:
    reason = _check_v3(info, "target")
    if reason:
        return reason
    n_targets = int(info.attrs.get("n_targets") or 0)
    if n_targets < 1:
        return "n_targets must be at least 1 (onnxruntime refuses the node)"
    n_base = np.size(_base(dict(info.attrs), np.float64))
    if n_base not in (0, n_targets):
        return f"{n_base} base_values for {n_targets} targets (onnxruntime refuses the node)"
    return None


@kernels.register(
    "TreeEnsembleRegressor",
    versions=(1, 3),
    domain=ML,
    dtypes=_INPUTS,
    check=_check_regressor,
    factory=True,
)
@factory(aggregate_function="SUM", post_transform="NONE")
def tree_ensemble_regressor(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], Any]:
    """Regression by a tree ensemble: float32 scores (n_rows, n_targets)."""
    dtype = _dtype_v3(attrs, "target", info)
    n_targets = int(attrs["n_targets"])
    forest, votes, n_trees = v3_tables(attrs, "target", n_targets, dtype)
    agg, post, base = attrs["aggregate_function"], attrs["post_transform"], _base(attrs, dtype)
    reduce = _REDUCE[agg]

    @quiet
    def run(X: Any) -> np.ndarray:
        scores, has = aggregate(forest, votes, _rows(X, dtype), reduce)
        return regression(scores, has, agg, post, base, n_trees).astype(np.float32)

    return run


# --- the classifier -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Classes:
    """What decides labels: the class labels and onnxruntime's binary-case flags."""

    labels: np.ndarray  # int64 labels, or object strings
    binary: bool  # two classes, all weights on one class id
    positive: bool  # no weight below 0
    post: str
    base: np.ndarray


def _class_info(attrs: dict[str, Any], dtype: Any) -> Classes:
    strings = attrs.get("classlabels_strings") or ()
    if strings:
        labels = np.array(list(strings), dtype=object)
    else:
        labels = np.array(attrs.get("classlabels_int64s") or (), dtype=np.int64)
    ids = _array(attrs, "class_ids", np.int64)
    weights = _values(attrs, "class_weights", np.float64)
    return Classes(
        labels=labels,
        binary=len(labels) == 2 and len(np.unique(ids)) == 1,
        positive=not (weights < 0).any(),
        post=attrs["post_transform"],
        base=_base(attrs, dtype),
    )


def classify(scores: np.ndarray, has: np.ndarray, c: Classes) -> tuple[np.ndarray, np.ndarray]:
    """Labels and float32 scores from the summed votes, by onnxruntime's rules."""
    n_classes = len(c.labels)
    if n_classes == 1:
        return _one_class(scores[:, 0], c)
    if n_classes == 2:
        return binary(scores, has, c)
    if len(c.base):
        scores, has = scores + c.base, np.ones_like(has)
    if not has.any(axis=1).all():
        raise ValueError("a sample reached leaves that vote for no class")
    best = np.argmax(np.where(has, scores, -np.inf), axis=1)
    return c.labels[best], transform(np.where(has, scores, 0), c.post)


def _one_class(score: np.ndarray, c: Classes) -> tuple[np.ndarray, np.ndarray]:
    """A single class: label 1 when the score is above 0, else 0; one score column."""
    if len(c.base):
        score = score + c.base[0]
    labels = (score > 0).astype(np.int64)
    out = probit(score) if c.post == "PROBIT" else score
    return labels, out[:, None]


def binary(scores: np.ndarray, has: np.ndarray, c: Classes) -> tuple[np.ndarray, np.ndarray]:
    """Two classes, as onnxruntime finishes them.

    With two base values the second class's score becomes ``base[1] + score[0]`` (and the
    first its negation) when any leaf voted for the second class. Otherwise, rows where no
    leaf voted for the second class keep one score ``s``, written as ``[1 - s, s]`` when all
    weights are positive (binary case), else ``[-s, s]`` (LOGISTIC: the logistic of both).
    The label compares the second class's score (else the first's) with 0.5 (binary case,
    positive weights) or 0; outside the binary case it is 1 or 0, not a class label.
    """
    s0, s1 = scores[:, 0], scores[:, 1]
    h0, h1 = has[:, 0], has[:, 1]
    one = ~h1
    if len(c.base) == 2:
        moved = c.base[1] + s0
        s0, s1 = np.where(h1, -moved, s0 + c.base[0]), np.where(h1, moved, s1 + c.base[1])
        one = np.zeros_like(h1)
    elif len(c.base) == 1:
        s0 = s0 + c.base[0]
    vote = np.where(h1, s1, np.where(h0, s0, 0))
    up = vote > (0.5 if c.binary and c.positive else 0)
    v0 = np.where(h0, s0, 0)
    out = transform(np.stack([v0, np.where(h1, s1, 0)], axis=1), c.post)
    if one.any():
        halves = c.binary and c.positive
        if c.post == "LOGISTIC":
            pair = [logistic(-v0), logistic(v0)]
        else:
            pair = [1 - v0 if halves else -v0, v0]
        single = np.stack(pair, axis=1).astype(out.dtype)
        out = np.where(one[:, None], single, out)
    if c.binary:
        return c.labels[up.astype(np.intp)], out
    index = up.astype(np.int64)
    return (c.labels[index] if c.labels.dtype == object else index), out


def _check_classifier(info: NodeInfo) -> str | None:
    reason = _check_v3(info, "class")
    if reason:
        return reason
    attrs = dict(info.attrs)
    strings, ints = attrs.get("classlabels_strings") or (), attrs.get("classlabels_int64s") or ()
    if bool(strings) == bool(ints):
        return "exactly one of classlabels_strings and classlabels_int64s must be set"
    n_classes, n_base = len(strings) + len(ints), np.size(_base(attrs, np.float64))
    if n_classes == 1 and strings:
        return "a single string class (onnxruntime indexes past the label list)"
    if n_base not in ((0, 1, 2) if n_classes == 2 else (0, n_classes)):
        return f"{n_base} base_values for {n_classes} classes (onnxruntime refuses the node)"
    if n_classes == 2 and n_base < 2 and not _second_class_everywhere(attrs):
        if attrs.get("post_transform", "NONE") == "PROBIT":
            return "binary PROBIT on one score: onnxruntime leaves the second score unwritten"
        ids = _array(attrs, "class_ids", np.int64)
        if n_base == 1 and len(np.unique(ids)) != 1:
            return "two class ids and one base value: onnxruntime leaves a score unwritten"
    return None


def _second_class_everywhere(attrs: dict[str, Any]) -> bool:
    """Whether every leaf votes for the second class (so no row keeps a single score)."""
    modes = attrs.get("nodes_modes") or ()
    leaves = {
        (t, n)
        for t, n, m in zip(
            attrs.get("nodes_treeids") or (), attrs.get("nodes_nodeids") or (), modes
        )
        if m == "LEAF"
    }
    second = {
        (t, n)
        for t, n, i in zip(
            attrs.get("class_treeids") or (),
            attrs.get("class_nodeids") or (),
            attrs.get("class_ids") or (),
        )
        if i == 1
    }
    return leaves <= second


@kernels.register(
    "TreeEnsembleClassifier",
    versions=(1, 3),
    domain=ML,
    dtypes=_INPUTS,
    check=_check_classifier,
    factory=True,
)
@factory(post_transform="NONE")
def tree_ensemble_classifier(
    info: NodeInfo, attrs: dict[str, Any]
) -> Callable[[Any], tuple[np.ndarray, np.ndarray]]:
    """Classification by a tree ensemble: labels (n_rows,) and float32 scores."""
    dtype = _dtype_v3(attrs, "class", info)
    classes = _class_info(attrs, dtype)
    sums = {**attrs, "aggregate_function": "SUM"}
    forest, votes, _ = v3_tables(sums, "class", len(classes.labels), dtype)

    @quiet
    def run(X: Any) -> tuple[np.ndarray, np.ndarray]:
        scores, has = aggregate(forest, votes, _rows(X, dtype), np.add)
        labels, out = classify(scores, has, classes)
        return labels, out.astype(np.float32)

    return run


# --- TreeEnsemble-5 -----------------------------------------------------------------------
def _check_v5(info: NodeInfo) -> str | None:
    attrs = info.attrs
    agg, post = attrs.get("aggregate_function", 1), attrs.get("post_transform", 0)
    if agg not in range(len(AGGREGATES)):
        return f"aggregate_function={agg} is not 0 to 3"
    if post not in range(len(TRANSFORMS)):
        return f"post_transform={post} is not 0 to 4"
    if int(attrs.get("n_targets") or 0) < 1:
        return "n_targets must be at least 1"
    modes = np.asarray(attrs.get("nodes_modes", ())).reshape(-1)
    if ((modes < LEQ) | (modes > MEMBER)).any():
        return "nodes_modes holds a value outside 0 to 6"
    members = np.asarray(attrs.get("membership_values", ())).reshape(-1)
    if np.isnan(members).sum() < (modes == MEMBER).sum():
        return "fewer membership sets than BRANCH_MEMBER nodes"
    nodes = ["nodes_featureids", "nodes_splits", "nodes_modes", "nodes_truenodeids"]
    nodes += ["nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs"]
    return _lengths(dict(attrs), [nodes, ["leaf_targetids", "leaf_weights"]])


@kernels.register(
    "TreeEnsemble",
    versions=(5,),
    domain=ML,
    dtypes=("float32", "float64"),
    check=_check_v5,
    factory=True,
)
@factory(aggregate_function=1, post_transform=0)
def tree_ensemble(info: NodeInfo, attrs: dict[str, Any]) -> Callable[[Any], np.ndarray]:
    """TreeEnsemble-5: scores (n_rows, n_targets) in the input's type."""
    given = info.input_type(0).dtype
    dtype = np.float32 if given is None else given
    forest, votes, n_trees = v5_tables(attrs, dtype)
    agg, post = AGGREGATES[attrs["aggregate_function"]], TRANSFORMS_ORT[attrs["post_transform"]]
    reduce, none = _REDUCE[agg], np.zeros(0, dtype)

    @quiet
    def run(X: Any) -> np.ndarray:
        x = _rows(X, dtype)
        scores, has = aggregate(forest, votes, x, reduce)
        return regression(scores, has, agg, post, none, n_trees).astype(x.dtype)

    return run
