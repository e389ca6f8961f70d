"""Imports every module of hand-written reference kernels so they register."""

from __future__ import annotations

from onnxep.reference import (
    attention_ops,  # noqa: F401
    contrib_ops,  # noqa: F401
    control_flow,  # noqa: F401
    conv_ops,  # noqa: F401
    deform_ops,  # noqa: F401
    detection_ops,  # noqa: F401
    grid_ops,  # noqa: F401
    index_ops,  # noqa: F401
    integer_ops,  # noqa: F401
    map_ops,  # noqa: F401
    math_ops,  # noqa: F401
    nn_ops,  # noqa: F401
    pool_ops,  # noqa: F401
    qlinear_ops,  # noqa: F401
    quant_ops,  # noqa: F401
    random_ops,  # noqa: F401
    reduce_ops,  # noqa: F401
    resize_ops,  # noqa: F401
    rnn_ops,  # noqa: F401
    scatter_ops,  # noqa: F401
    svm_ops,  # noqa: F401
    tensor_ops,  # noqa: F401
    tree_ops,  # noqa: F401
)
