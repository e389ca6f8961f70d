"""The ai.onnx.ml tree ensembles (TreeEnsembleRegressor, TreeEnsembleClassifier, TreeEnsemble)
on the hand-written kernels, against onnxruntime and onnx's ReferenceEvaluator.

Forests are random: several trees of several depths, random features and thresholds (on a
grid where equality modes need ties). Where onnxruntime and onnx disagree the kernels follow
onnxruntime; each such case has a test below that shows both answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnxep
from onnxep.reference import tree_ops
from onnxep.testing import kernel_test_options

from .helpers import (
    assert_close,
    hand_written_nodes,
    make_model,
    run_evaluator,
    run_onnxep,
    run_onnxruntime,
)

ML = "ai.onnx.ml"
REG, CLS, TE = "TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble"
MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]
GRID = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
POSTS = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]


# --- building forests ---------------------------------------------------------------------
def forest(
    seed: int,
    *,
    trees: int = 5,
    depth: int = 4,
    features: int = 4,
    targets: int = 1,
    modes: tuple[str, ...] = ("BRANCH_LEQ",),
    grid: bool = False,
    missing: bool = False,
    votes: Any = "all",
    low: float = -1.0,
    prefix: str = "target",
    leaf_p: float = 0.2,
) -> dict[str, Any]:
    """ml-3 attributes of a random forest; ``votes``: all targets per leaf, one (random),
    tree (each tree one target), or a list of target ids."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, list[Any]] = {
        k: []
        for k in (
            *("treeids", "nodeids", "featureids", "modes", "values", "truenodeids"),
            *("falsenodeids", "missing_value_tracks_true"),
        )
    }
    weights: dict[str, list[Any]] = {k: [] for k in ("ids", "nodeids", "treeids", "weights")}
    for tree in range(trees):
        table: list[tuple[Any, ...]] = []

        def grow(level: int, table: list[tuple[Any, ...]] = table) -> int:
            at = len(table)
            table.append(())
            if level >= depth or (level and rng.random() < leaf_p):
                table[at] = ("LEAF",)
                return at
            feature = int(rng.integers(features))
            threshold = float(rng.choice(GRID) if grid else rng.normal())
            mode = str(rng.choice(list(modes)))
            true, false = grow(level + 1), grow(level + 1)
            table[at] = (mode, feature, threshold, true, false)
            return at

        grow(0)
        for at, node in enumerate(table):
            leaf = node[0] == "LEAF"
            mode, feature, threshold, true, false = ("LEAF", 0, 0.0, 0, 0) if leaf else node
            for key, value in zip(
                ("treeids", "nodeids", "featureids", "modes", "values", "truenodeids"),
                (tree, at, feature, mode, threshold, true),
            ):
                nodes[key].append(value)
            nodes["falsenodeids"].append(false)
            nodes["missing_value_tracks_true"].append(int(not leaf and rng.random() < 0.5))
            if leaf:
                for target in _voted(rng, votes, targets, tree):
                    weights["ids"].append(target)
                    weights["nodeids"].append(at)
                    weights["treeids"].append(tree)
                    weights["weights"].append(float(rng.uniform(low, 1.0)))
    attrs = {f"nodes_{k}": v for k, v in nodes.items()}
    if not missing:
        del attrs["nodes_missing_value_tracks_true"]
    attrs.update({f"{prefix}_{k}": v for k, v in weights.items()})
    return attrs


def _voted(rng: np.random.Generator, votes: Any, targets: int, tree: int) -> list[int]:
    if votes == "all":
        return list(range(targets))
    if votes == "one":
        return [int(rng.integers(targets))]
    if votes == "tree":
        return [tree % targets]
    return list(votes)


def features(seed: int, rows: int, width: int, *, grid: bool = False, nan: float = 0.0) -> Any:
    """Float32 inputs: normal, or on the thresholds' grid; a fraction ``nan`` of NaNs."""
    rng = np.random.default_rng(seed + 1000)
    x = rng.choice(GRID, (rows, width)) if grid else rng.normal(size=(rows, width))
    x[rng.random(x.shape) < nan] = np.nan
    return x.astype(np.float32)


def regressor(targets: int = 1, **kwargs: Any) -> dict[str, Any]:
    return {"n_targets": targets, **forest(targets=targets, **kwargs)}


def classifier(labels: Any, **kwargs: Any) -> dict[str, Any]:
    """Classifier attributes: ``labels`` a list of ints or of strings."""
    key = "classlabels_strings" if isinstance(labels[0], str) else "classlabels_int64s"
    return {key: list(labels), **forest(targets=len(labels), prefix="class", **kwargs)}


# --- running ------------------------------------------------------------------------------
def model(op: str, attrs: dict[str, Any], x: Any, opset: int = 3) -> onnx.ModelProto:
    n_outputs = 2 if op == CLS else 1
    return make_model(op, {"X": x}, opset, domain=ML, n_outputs=n_outputs, **attrs)


def same(actual: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Same outputs: labels equal (strings as str), scores of one dtype within tolerance."""
    assert_close(actual, expected, rtol, atol)


def check(
    op: str,
    attrs: dict[str, Any],
    x: Any,
    *,
    opset: int = 3,
    evaluator: bool = True,
    rtol: float = 1e-5,
) -> list[Any]:
    """Run hand-written on onnxep; compare with onnxruntime (and onnx's evaluator)."""
    m = model(op, attrs, x, opset)
    actual = run_onnxep(m, {"X": x})
    same(actual, run_onnxruntime(m, {"X": x}), rtol=rtol)
    if evaluator:  # onnx's ml-3 regressor returns the input's float type, not float32
        expected = [np.asarray(e) for e in run_evaluator(m, {"X": x})]
        expected = [
            e.astype(a.dtype) if e.dtype.kind == "f" else e for a, e in zip(actual, expected)
        ]
        same(actual, expected, rtol=rtol)
    return actual


def declined(op: str, attrs: dict[str, Any], x: Any, opset: int = 3) -> bool:
    """Whether the hand-written kernel declines the node (onnx's op runs it)."""
    m = model(op, attrs, x, opset)
    session = onnxep.InferenceSession(
        m.SerializeToString(), kernel_test_options(), providers=["reference"]
    )
    return not all(hand_written_nodes(session).values())


# --- TreeEnsembleRegressor ----------------------------------------------------------------
@pytest.mark.parametrize("opset", [1, 3])
@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("targets", [1, 3])
def test_regressor_random_forests(opset, aggregate, targets):
    attrs = regressor(targets, seed=targets, trees=7, depth=5, features=6)
    attrs["aggregate_function"] = aggregate
    check(REG, attrs, features(0, 40, 6), opset=opset)


@pytest.mark.parametrize("targets", [1, 3])
def test_regressor_base_values(targets):
    attrs = regressor(targets, seed=2, trees=4)
    attrs["base_values"] = [0.5, -1.25, 2.0][:targets]
    for aggregate in ("SUM", "AVERAGE"):
        attrs["aggregate_function"] = aggregate
        check(REG, attrs, features(1, 30, 4))


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("targets", [1, 3])
def test_regressor_post_transforms(post, targets):
    """onnx's op has no post-transforms (it raises); onnxruntime applies them to several
    targets, and to one target only PROBIT (see test_one_target_ignores_all_but_probit)."""
    attrs = regressor(targets, seed=3, trees=3, depth=3, low=0.0)
    attrs.update(post_transform=post, aggregate_function="AVERAGE")
    check(REG, attrs, features(2, 30, 4), evaluator=False, rtol=1e-4 if post == "PROBIT" else 1e-5)


@pytest.mark.parametrize("votes", ["one", "tree"])
def test_regressor_sparse_votes(votes):
    """Leaves voting for one target each, the trees grouped by target or not."""
    for aggregate in ("SUM", "MIN"):
        attrs = regressor(4, seed=4, trees=9, votes=votes)
        attrs["aggregate_function"] = aggregate
        check(REG, attrs, features(3, 30, 4), evaluator=False)


def test_regressor_float64_input():
    attrs = regressor(2, seed=5, trees=6, depth=6)
    check(REG, attrs, features(4, 50, 4).astype(np.float64))


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_regressor_integer_inputs_compare_as_float32(dtype):
    """onnxruntime has no integer regressor (onnx's op returns integer scores, against the
    schema); the classifier's rule is used: features compared as float32, float32 scores."""
    attrs = regressor(2, seed=6, trees=5, grid=True, modes=tuple(MODES))
    x = np.random.default_rng(0).integers(-2, 3, (40, 4)).astype(dtype)
    m = model(REG, attrs, x)
    (actual,) = run_onnxep(m, {"X": x})
    floats = x.astype(np.float32)
    same([actual], run_onnxruntime(model(REG, attrs, floats), {"X": floats}))


def test_many_rows_walk_in_chunks():
    attrs = regressor(2, seed=7, trees=30, depth=6, features=5)
    x = features(5, tree_ops.CHUNK // 30 * 3 + 17, 5)
    check(REG, attrs, x)


# --- branch modes and missing values ------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_each_branch_mode(mode):
    attrs = regressor(1, seed=8, trees=4, modes=(mode,), grid=True)
    check(REG, attrs, features(6, 60, 4, grid=True))


def test_mixed_branch_modes():
    attrs = regressor(2, seed=9, trees=6, depth=5, modes=tuple(MODES), grid=True)
    check(REG, attrs, features(7, 80, 4, grid=True))


@pytest.mark.parametrize("modes", [("BRANCH_LEQ",), ("BRANCH_GT", "BRANCH_EQ", "BRANCH_LT")])
def test_nan_follows_missing_value_tracks_true(modes):
    attrs = regressor(2, seed=10, trees=5, modes=modes, missing=True, grid=True)
    check(REG, attrs, features(8, 60, 4, grid=True, nan=0.3))


def test_nan_without_tracking_takes_false_branch():
    """onnx's ml-3 op fails on NaN when nodes_missing_value_tracks_true is absent."""
    attrs = regressor(1, seed=11, trees=4)
    check(REG, attrs, features(9, 40, 4, nan=0.3), evaluator=False)


def test_nan_on_branch_neq_goes_true():
    """NaN != t: onnxruntime takes the true branch; onnx's ml-3 op the false one."""
    attrs = regressor(1, seed=12, trees=1, depth=1, modes=("BRANCH_NEQ",))
    attrs["nodes_missing_value_tracks_true"] = [0, 0, 0]
    x = np.full((1, 4), np.nan, np.float32)
    m = model(REG, attrs, x)
    ours, theirs = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same(ours, run_onnxruntime(m, {"X": x}))
    true_leaf = attrs["nodes_truenodeids"][0]
    weight = dict(zip(attrs["target_nodeids"], attrs["target_weights"]))
    assert ours[0][0, 0] == np.float32(weight[true_leaf]) != theirs[0][0, 0]


def test_missing_tracks_only_value_one():
    """onnxruntime sends NaN true for a tracking value of exactly 1; onnx for any >= 1."""
    attrs = regressor(1, seed=13, trees=1, depth=1)
    attrs["nodes_missing_value_tracks_true"] = [2, 0, 0]
    x = np.full((1, 4), np.nan, np.float32)
    m = model(REG, attrs, x)
    ours, theirs = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same(ours, run_onnxruntime(m, {"X": x}))
    assert ours[0][0, 0] != theirs[0][0, 0]


# --- where onnxruntime and onnx disagree (regressor) -------------------------------------
def test_unvoted_target_scores_zero():
    """A target no reached leaf votes for scores 0, base value or not, MIN or MAX included;
    onnx gives the base value (SUM) or float32's limits (MIN, MAX)."""
    attrs = regressor(3, seed=14, trees=3, votes=[0])
    attrs["base_values"] = [0.25, 0.5, 0.75]
    x = features(10, 10, 4)
    for aggregate in ("SUM", "MIN", "MAX"):
        attrs["aggregate_function"] = aggregate
        m = model(REG, attrs, x)
        (ours,), (theirs,) = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
        same([ours], run_onnxruntime(m, {"X": x}))
        assert (ours[:, 1:] == 0).all() and (theirs[:, 1:] != 0).all()


def test_one_target_counts_a_leafs_first_weight():
    """With one target onnxruntime reads one weight per leaf (the first listed); onnx adds
    every weight of the leaf."""
    attrs = regressor(1, seed=15, trees=2, depth=2)
    leaf, tree = attrs["target_nodeids"][0], attrs["target_treeids"][0]
    for key, value in (("ids", 0), ("nodeids", leaf), ("treeids", tree), ("weights", 5.0)):
        attrs[f"target_{key}"].append(value)
    x = features(11, 40, 4)
    m = model(REG, attrs, x)
    ours, theirs = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same(ours, run_onnxruntime(m, {"X": x}))
    assert not np.allclose(ours[0], theirs[0])


@pytest.mark.parametrize("post", ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
def test_one_target_ignores_all_but_probit(post):
    attrs = {**regressor(1, seed=16, trees=3), "post_transform": post}
    x = features(12, 20, 4)
    (ours,) = check(REG, attrs, x, evaluator=False)
    plain = run_onnxep(model(REG, {**attrs, "post_transform": "NONE"}, x), {"X": x})[0]
    np.testing.assert_array_equal(ours, plain)


def test_interleaved_tree_ids_make_several_trees():
    """A tree is a run of nodes with one tree id (onnxruntime): tree 0's nodes listed around
    tree 1's make a third tree, rooted at tree 0's second run; AVERAGE divides by 3."""
    attrs = {
        "n_targets": 1,
        "aggregate_function": "AVERAGE",
        "nodes_treeids": [0, 1, 1, 1, 0, 0],
        "nodes_nodeids": [0, 0, 1, 2, 1, 2],
        "nodes_featureids": [0, 1, 0, 0, 0, 0],
        "nodes_modes": ["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "LEAF"],
        "nodes_values": [0.5, 0.3, 0.0, 0.0, 0.0, 0.0],
        "nodes_truenodeids": [1, 1, 0, 0, 0, 0],
        "nodes_falsenodeids": [2, 2, 0, 0, 0, 0],
        "target_ids": [0, 0, 0, 0],
        "target_nodeids": [1, 2, 1, 2],
        "target_treeids": [0, 0, 1, 1],
        "target_weights": [1.0, 2.0, 10.0, 20.0],
    }
    x = np.array([[0.2, 0.1], [0.9, 0.9], [0.9, 0.1]], np.float32)
    m = model(REG, attrs, x)
    (ours,), (theirs,) = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same([ours], run_onnxruntime(m, {"X": x}))
    np.testing.assert_allclose(ours[:, 0], [(1 + 10 + 1) / 3, (2 + 20 + 1) / 3, (2 + 10 + 1) / 3])
    np.testing.assert_allclose(theirs[:, 0], [5.5, 11.0, 6.0])


def test_softmax_zero_of_zeros_is_nan():
    """onnxruntime divides by a sum of 0; onnx returns 0.5."""
    attrs = regressor(2, seed=17, trees=1, depth=1, votes=[0])
    attrs["target_weights"] = [0.0] * len(attrs["target_weights"])
    attrs["post_transform"] = "SOFTMAX_ZERO"
    x = features(13, 5, 4)
    (ours,) = check(REG, attrs, x, evaluator=False)
    assert np.isnan(ours).all()


# --- *_as_tensor ----------------------------------------------------------------------------
def _as_tensors(attrs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The float attributes moved to float64 ``*_as_tensor`` (values nudged off float32)."""
    out = dict(attrs)
    for name in ("nodes_values", f"{prefix}_weights", "base_values"):
        if name in out:
            values = np.array(out.pop(name), np.float64) * (1 + 1e-12)
            out[f"{name}_as_tensor"] = numpy_helper.from_array(values)
    return out


def test_regressor_as_tensor_float64():
    attrs = _as_tensors({**regressor(2, seed=18, trees=5), "base_values": [0.1, 0.2]}, "target")
    check(REG, attrs, features(14, 40, 4).astype(np.float64), evaluator=False)


def test_classifier_as_tensor_float64():
    attrs = _as_tensors(classifier([3, 5, 7], seed=19, trees=5), "class")
    check(CLS, attrs, features(15, 40, 4).astype(np.float64), evaluator=False)


def test_as_tensor_with_float32_input_computes_in_float64():
    """onnxruntime refuses float64 attributes with a float32 input (onnx's op ignores them);
    the kernel compares and sums in float64, as for a float64 input."""
    attrs = _as_tensors(regressor(2, seed=20, trees=5), "target")
    x = features(16, 40, 4)
    (ours,) = run_onnxep(model(REG, attrs, x), {"X": x})
    wide = x.astype(np.float64)
    same([ours], run_onnxruntime(model(REG, attrs, wide), {"X": wide}))


# --- TreeEnsembleClassifier -----------------------------------------------------------------
@pytest.mark.parametrize("opset", [1, 3])
@pytest.mark.parametrize("labels", [[4, 9, 2], ["cat", "dog", "eel", "fox"]])
@pytest.mark.parametrize("post", ["NONE", "SOFTMAX", "LOGISTIC"])
def test_classifier_multiclass(opset, labels, post):
    attrs = classifier(labels, seed=21, trees=8, depth=5, features=5)
    attrs["post_transform"] = post
    check(CLS, attrs, features(17, 50, 5), opset=opset)


@pytest.mark.parametrize("post", ["SOFTMAX_ZERO", "PROBIT"])
def test_classifier_multiclass_other_transforms(post):
    """onnx's labels come after the transform (SOFTMAX_ZERO reorders); onnxruntime's from
    the raw scores."""
    attrs = {**classifier([0, 1, 2], seed=22, trees=6, low=0.0), "post_transform": post}
    check(CLS, attrs, features(18, 50, 4), evaluator=False, rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_classifier_input_dtypes(dtype):
    attrs = classifier([0, 1, 2], seed=23, trees=6, grid=True, modes=tuple(MODES))
    x = features(19, 60, 4, grid=True)
    x = (x * 2).astype(dtype)
    check(CLS, attrs, x, evaluator=dtype == np.float64)


def test_classifier_base_values():
    attrs = {**classifier([1, 2, 3], seed=24, trees=4), "base_values": [0.3, -0.2, 0.1]}
    check(CLS, attrs, features(20, 40, 4))


def test_classifier_label_among_voted_classes():
    """A class no leaf voted for scores 0 but cannot win over negative votes; onnx's argmax
    picks it."""
    attrs = classifier([10, 11, 12], seed=25, trees=2, votes=[0, 2], low=-1.0)
    attrs["class_weights"] = [-abs(w) - 0.1 for w in attrs["class_weights"]]
    x = features(21, 20, 4)
    m = model(CLS, attrs, x)
    ours, theirs = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same(ours, run_onnxruntime(m, {"X": x}))
    assert set(ours[0].tolist()) <= {10, 12} and (theirs[0] == 11).all()


@pytest.mark.parametrize("labels", [[0, 1], ["no", "yes"]])
def test_binary_random_forest(labels):
    """skl2onnx's binary forests: one class id, positive weights; scores [1 - p, p], label
    p > 0.5. onnx agrees."""
    attrs = classifier(labels, seed=26, trees=10, depth=5, votes=[0], low=0.0)
    attrs["class_weights"] = [w / 10 for w in attrs["class_weights"]]
    check(CLS, attrs, features(22, 60, 4))


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("base", [None, [-0.3], [0.2, -0.4]])
def test_binary_boosting(post, base):
    """Gradient boosting's binary form: one class id, signed weights, a base value."""
    attrs = classifier([3, 8], seed=27, trees=6, votes=[0], low=-1.0)
    attrs["post_transform"] = post
    if base:
        attrs["base_values"] = base
    check(CLS, attrs, features(23, 60, 4), evaluator=False)


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "PROBIT"])
@pytest.mark.parametrize("votes", [[1], [0, 1], "one"])
def test_binary_other_vote_layouts(post, votes):
    """Votes for the second class only, for both, or for either at random: onnxruntime's
    rules, including its label 0/1 (not the class label) when both class ids vote."""
    attrs = classifier([5, 7], seed=28, trees=4, votes=votes, low=-1.0)
    attrs["post_transform"] = post
    x = features(24, 50, 4)
    if declined(CLS, attrs, x):  # PROBIT on one score: see test_declined_forms
        assert post == "PROBIT" and votes == "one"
        return
    check(CLS, attrs, x, evaluator=False, rtol=1e-4)


def test_binary_two_class_ids_label_is_0_or_1():
    """onnxruntime answers 1 (second class's score above 0) or 0, not the class labels."""
    attrs = classifier([5, 7], seed=29, trees=3, votes=[0, 1], low=0.0)
    x = features(25, 30, 4)
    labels, _ = check(CLS, attrs, x, evaluator=False)
    theirs, _ = run_evaluator(model(CLS, attrs, x), {"X": x})
    assert set(labels.tolist()) <= {0, 1} and set(theirs.tolist()) <= {5, 7}


def test_single_class():
    """One class label: onnxruntime returns label 1 when the score is above 0, else 0, and
    one score column (onnx's op supports only the label [1] and returns two columns)."""
    attrs = classifier([4], seed=30, trees=3, low=-1.0)
    for post in ("NONE", "PROBIT"):
        attrs["post_transform"] = post
        labels, scores = check(CLS, attrs, features(26, 30, 4), evaluator=False, rtol=1e-4)
        assert scores.shape == (30, 1) and set(labels.tolist()) <= {0, 1}


# --- TreeEnsemble (ml opset 5) --------------------------------------------------------------
def v5(attrs: dict[str, Any], dtype: Any = np.float32) -> dict[str, Any]:
    """A ml-3 regressor forest (one weight per leaf) in TreeEnsemble-5's encoding."""
    n = len(attrs["nodes_treeids"])
    leaf = [m == "LEAF" for m in attrs["nodes_modes"]]
    inner = [i for i in range(n) if not leaf[i]]
    leaves = [i for i in range(n) if leaf[i]]
    first = {}
    for i, tree in enumerate(attrs["nodes_treeids"]):
        first.setdefault(tree, i)
    slot = {i: inner.index(i) if not leaf[i] else leaves.index(i) for i in range(n)}
    vote = {}
    for tree, node, target, weight in zip(
        attrs["target_treeids"],
        attrs["target_nodeids"],
        attrs["target_ids"],
        attrs["target_weights"],
    ):
        vote.setdefault(first[tree] + node, (target, weight))
    out: dict[str, Any] = {"n_targets": attrs["n_targets"]}
    for side in ("true", "false"):
        child = [first[attrs["nodes_treeids"][i]] + attrs[f"nodes_{side}nodeids"][i] for i in inner]
        out[f"nodes_{side}nodeids"] = [slot[c] for c in child]
        out[f"nodes_{side}leafs"] = [int(leaf[c]) for c in child]
    codes = [MODES.index(attrs["nodes_modes"][i]) for i in inner]
    out["nodes_modes"] = numpy_helper.from_array(np.array(codes, np.uint8))
    out["nodes_featureids"] = [attrs["nodes_featureids"][i] for i in inner]
    out["nodes_splits"] = numpy_helper.from_array(
        np.array([attrs["nodes_values"][i] for i in inner], dtype)
    )
    if "nodes_missing_value_tracks_true" in attrs:
        tracks = attrs["nodes_missing_value_tracks_true"]
        out["nodes_missing_value_tracks_true"] = [tracks[i] for i in inner]
    out["leaf_targetids"] = [vote[i][0] for i in leaves]
    out["leaf_weights"] = numpy_helper.from_array(np.array([vote[i][1] for i in leaves], dtype))
    out["tree_roots"] = [slot[i] for i in first.values()]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("targets", [1, 3])
def test_tree_ensemble(dtype, aggregate, targets):
    attrs = regressor(targets, seed=31, trees=6, depth=5, leaf_p=0.0, votes="one")
    attrs = {**v5(attrs, dtype), "aggregate_function": aggregate}
    # onnx fills unvoted targets with float limits for MIN and MAX (onnxruntime: 0)
    agrees = targets == 1 or aggregate in (0, 1)
    check(TE, attrs, features(27, 50, 5).astype(dtype), opset=5, evaluator=agrees)


def test_tree_ensemble_modes_and_missing_values():
    attrs = regressor(2, seed=32, trees=5, modes=tuple(MODES), grid=True, missing=True)
    check(TE, v5(attrs), features(28, 60, 4, grid=True, nan=0.2), opset=5)


@pytest.mark.parametrize("code", [1, 2, 3, 4])
def test_tree_ensemble_post_transform_numbering(code):
    """onnxruntime reads post_transform 1 as LOGISTIC and 2 as SOFTMAX (the spec: 1 SOFTMAX,
    2 LOGISTIC); onnx's op ignores post_transform."""
    attrs = regressor(3, seed=33, trees=3, leaf_p=0.0, votes="one", low=0.0)
    attrs = {**v5(attrs), "post_transform": code}
    x = features(29, 30, 4)
    (ours,) = check(TE, attrs, x, opset=5, evaluator=False, rtol=1e-4)
    plain = run_onnxep(model(TE, {**attrs, "post_transform": 0}, x, 5), {"X": x})[0]
    expected = tree_ops.transform(plain, tree_ops.TRANSFORMS_ORT[code])
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    assert tree_ops.TRANSFORMS_ORT[1] == "LOGISTIC" == tree_ops.TRANSFORMS[2]


def _member_model(sets: list[list[float]], tracks: list[int] | None = None) -> dict[str, Any]:
    """A chain of BRANCH_MEMBER nodes on features 0, 1, ...: node i true -> leaf i, false ->
    node i + 1 (the last: the leaf after the sets)."""
    n = len(sets)
    members = [v for s in sets for v in [*s, np.nan]]
    attrs = {
        "n_targets": 1,
        "nodes_featureids": list(range(n)),
        "nodes_modes": numpy_helper.from_array(np.full(n, 6, np.uint8)),
        "nodes_splits": numpy_helper.from_array(np.zeros(n, np.float32)),
        "nodes_truenodeids": list(range(n)),
        "nodes_trueleafs": [1] * n,
        "nodes_falsenodeids": [*range(1, n), n],
        "nodes_falseleafs": [0] * (n - 1) + [1],
        "leaf_targetids": [0] * (n + 1),
        "leaf_weights": numpy_helper.from_array(np.arange(1, n + 2, dtype=np.float32)),
        "tree_roots": [0],
        "membership_values": numpy_helper.from_array(np.array(members, np.float32)),
    }
    if tracks is not None:
        attrs["nodes_missing_value_tracks_true"] = tracks
    return attrs


MEMBER_X = [-2.5, -1, -0.5, 0, 0.25, 0.5, 1, 1.5, 2, 2.5, 30, 31, 31.5, 40, 40.7, np.nan, 1e10]


@pytest.mark.parametrize(
    "sets",
    [
        [[1.0, 2.0, 5.0]],  # within [0, 30]: compared exactly
        [[0.5, 1.5], [3.0]],  # fractions within [0, 30]: exactly
        [[-1.0, 31.0, 40.0]],  # beyond [0, 30]: the feature cast to int32
        [[2.0], [40.0, 1.0], [0.0, 30.0]],
    ],
)
@pytest.mark.parametrize("tracks", [None, [1, 0, 1]])
def test_tree_ensemble_set_membership(sets, tracks):
    attrs = _member_model(sets, tracks[: len(sets)] if tracks else None)
    x = np.array(MEMBER_X, np.float32)[:, None].repeat(len(sets), 1)
    for j in range(1, len(sets)):
        x[:, j] = np.roll(x[:, j], 3 * j)
    exact = all(min(s) >= 0 and max(s) <= 30 and 0.0 not in s for s in sets)
    check(TE, attrs, x, opset=5, evaluator=exact)


def test_membership_of_zero():
    """onnx's op stops reading a set at a 0.0 member (so 0 and what follows are lost)."""
    attrs = _member_model([[0.0, 2.0]], [0])
    x = np.array([[0.0], [2.0], [1.0]], np.float32)
    m = model(TE, attrs, x, 5)
    (ours,), (theirs,) = run_onnxep(m, {"X": x}), run_evaluator(m, {"X": x})
    same([ours], run_onnxruntime(m, {"X": x}))
    assert ours[:, 0].tolist() == [1, 1, 2] and theirs[:, 0].tolist() == [2, 2, 2]


def test_membership_cast_to_int32():
    """A set holding values beyond [0, 30] takes any feature whose int32 cast is a member."""
    attrs = _member_model([[-1.0, 40.0]], [0])
    x = np.array([[-1.5], [40.9], [40.0], [39.9], [-0.5]], np.float32)
    (ours,) = check(TE, attrs, x, opset=5, evaluator=False)
    assert ours[:, 0].tolist() == [1, 1, 1, 2, 2]


def test_tree_ensemble_single_leaf_tree():
    """A one-leaf tree: a root whose true and false branches are the same leaf. onnxruntime
    takes that leaf; onnx's op the leaf at the root's position."""
    attrs = v5(regressor(1, seed=34, trees=2, depth=2, leaf_p=0.0))
    n_inner = len(attrs["nodes_featureids"])
    for key, value in (("truenodeids", 0), ("falsenodeids", 0), ("trueleafs", 1)):
        attrs[f"nodes_{key}"] = [*attrs[f"nodes_{key}"], value]
    attrs["nodes_falseleafs"] = [*attrs["nodes_falseleafs"], 1]
    attrs["nodes_featureids"] = [*attrs["nodes_featureids"], 0]
    modes = numpy_helper.to_array(attrs["nodes_modes"])
    attrs["nodes_modes"] = numpy_helper.from_array(np.r_[modes, np.uint8(0)])
    splits = numpy_helper.to_array(attrs["nodes_splits"])
    attrs["nodes_splits"] = numpy_helper.from_array(np.r_[splits, np.float32(0)])
    two_trees = dict(attrs)
    attrs["tree_roots"] = [*attrs["tree_roots"], n_inner]  # leaf 0 (onnx: leaf n_inner)
    x = features(30, 20, 4)
    (ours,) = check(TE, attrs, x, opset=5, evaluator=False)
    (two,) = run_onnxep(model(TE, two_trees, x, 5), {"X": x})
    weights = numpy_helper.to_array(attrs["leaf_weights"])
    np.testing.assert_allclose(ours, two + weights[0], rtol=1e-6)
    (theirs,) = run_evaluator(model(TE, attrs, x, 5), {"X": x})
    np.testing.assert_allclose(theirs, two + weights[n_inner], rtol=1e-6)


# --- what the kernels decline, and malformed trees -----------------------------------------
def test_declined_forms():
    x = features(31, 5, 4)
    binary = classifier([0, 1], seed=35, trees=2, votes=[0])
    assert declined(CLS, {**binary, "post_transform": "PROBIT"}, x)
    two_bases = {**binary, "post_transform": "PROBIT", "base_values": [0.0, 1.0]}
    assert not declined(CLS, two_bases, x)
    both = classifier([0, 1], seed=36, trees=2, votes="one")
    assert declined(CLS, {**both, "base_values": [0.5]}, x)
    assert declined(CLS, classifier(["only"], seed=37, trees=2), x)
    assert declined(CLS, {**classifier([0, 1, 2], seed=38), "base_values": [1.0]}, x)
    assert declined(REG, {**regressor(2, seed=39), "base_values": [1.0]}, x)
    assert declined(REG, {**regressor(1, seed=40), "aggregate_function": "MEDIAN"}, x)
    half = v5(regressor(1, seed=41, leaf_p=0.0), np.float16)
    assert declined(TE, half, x.astype(np.float16), opset=5)
    assert not declined(REG, regressor(1, seed=42), x)


def test_a_cycle_is_refused():
    attrs = regressor(1, seed=43, trees=1, depth=2, leaf_p=0.0)
    attrs["nodes_truenodeids"][1] = 0  # node 1's true child is the root
    x = features(32, 3, 4)
    with pytest.raises(Exception, match="cycle"):
        run_onnxep(model(REG, attrs, x), {"X": x})


def test_a_missing_child_is_refused():
    attrs = regressor(1, seed=44, trees=1, depth=2, leaf_p=0.0)
    attrs["nodes_falsenodeids"][0] = 99
    x = features(33, 3, 4)
    with pytest.raises(Exception, match="child"):
        run_onnxep(model(REG, attrs, x), {"X": x})


def test_too_few_features_is_an_error():
    attrs = regressor(1, seed=45, trees=2, features=6)
    x = features(34, 3, 2)
    with pytest.raises(Exception, match="feature"):
        run_onnxep(model(REG, attrs, x), {"X": x})
