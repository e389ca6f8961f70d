"""The CuPy provider against the CPU providers (and PyTorch eager CUDA), per op and per model.

Run from the repository root on a machine with an NVIDIA GPU and CuPy::

    python benchmarks/bench_gpu.py                # full sweep, writes benchmarks/results/gpu_*
    python benchmarks/bench_gpu.py --quick        # small sizes and few repeats (smoke run)

Per op (MatMul, Conv, Add, Softmax, LayerNormalization) and size, each runner's median time:

- ``cupy`` host to host: ``session.run`` with numpy feeds (upload, kernels, download);
- ``cupy resident``: ``run_with_iobinding`` with CuPy inputs and outputs left on the GPU;
- ``transfers``: the upload of the inputs plus the download of the output, alone;
- every available CPU provider (numba, cpp, reference) through ``session.run``;
- ``torch`` eager CUDA on the same op, resident and host to host, when torch has CUDA.

The crossover of an op is the first size at which ``cupy`` host to host beats the best CPU
provider. Per model: the light_* models of the onnx package and a BERT-like encoder
(``onnxep.models``). Writes ``gpu_ops.json``, ``gpu_models.json``, ``gpu.md`` and, with
matplotlib, ``gpu_ops.png``. Without a usable GPU it says why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxep

CUPY = "CuPyExecutionProvider"
CPU = ("NumbaExecutionProvider", "CppExecutionProvider", "ReferenceExecutionProvider")
RESULTS = pathlib.Path(__file__).parent / "results"
SIZES = {"full": [64, 128, 256, 512, 1024, 2048], "quick": [64, 256]}


def alias(provider: str) -> str:
    """``NumbaExecutionProvider`` -> ``numba``."""
    return provider.removesuffix("ExecutionProvider").lower()


def median_time(fn: Callable[[], Any], repeats: int, budget: float) -> float:
    """Median seconds of ``fn()`` after one warm-up, stopping early past ``budget`` seconds."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _model(node: onnx.NodeProto, feeds: dict[str, np.ndarray], consts: dict[str, np.ndarray]):
    graph = helper.make_graph(
        [node],
        node.op_type,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def op_case(op: str, n: int) -> tuple[bytes, dict[str, np.ndarray]]:
    """One node of ``op`` at size ``n``: the model and its feeds."""
    rng = np.random.default_rng(n)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    if op == "MatMul":
        feeds, consts, node = {"a": r(n, n)}, {"b": r(n, n)}, ["a", "b"]
    elif op == "Conv":  # 64 -> 64 channels, 3x3, on an n/4 x n/4 image
        side = max(n // 4, 8)
        feeds, consts, node = {"x": r(1, 64, side, side)}, {"w": r(64, 64, 3, 3)}, ["x", "w"]
    elif op == "Add":
        feeds, consts, node = {"a": r(n, n)}, {"b": r(n)}, ["a", "b"]
    elif op == "LayerNormalization":
        feeds, consts, node = {"x": r(128, n)}, {"g": r(n), "b": r(n)}, ["x", "g", "b"]
    else:  # Softmax
        feeds, consts, node = {"x": r(128, n)}, {}, ["x"]
    attrs = {"pads": [1, 1, 1, 1]} if op == "Conv" else {}
    return _model(helper.make_node(op, node, ["y"], **attrs), feeds, consts), feeds


def time_session(model: bytes, feeds: dict[str, np.ndarray], provider: str, args: Any) -> float:
    """``session.run`` host to host, after checking the provider really took the node."""
    session = onnxep.InferenceSession(model, providers=[provider])
    if session.assignment(0) != provider:
        raise RuntimeError(f"{provider} did not take the node: {session.explain()}")
    return median_time(lambda: session.run(None, feeds), args.repeats, args.budget)


def time_resident(model: bytes, feeds: dict[str, np.ndarray], cp: Any, args: Any) -> float:
    """CuPy inputs in, outputs left on the GPU, synchronised after each run."""
    session = onnxep.InferenceSession(model, providers=[CUPY])
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_input(name, "cuda", 0, np.float32, value.shape, cp.asarray(value))
    binding.bind_output("y", "cuda")
    stream = cp.cuda.get_current_stream()
    return median_time(
        lambda: (session.run_with_iobinding(binding), stream.synchronize()),
        args.repeats,
        args.budget,
    )


def time_transfers(
    feeds: dict[str, np.ndarray], out_shape: tuple[int, ...], cp: Any, args: Any
) -> float:
    """Upload every input and download one output of the op's result shape."""
    result = cp.zeros(out_shape, np.float32)

    def copy() -> None:
        for value in feeds.values():
            cp.asarray(value)
        cp.asnumpy(result)

    return median_time(copy, args.repeats, args.budget)


def torch_times(op: str, feeds: dict[str, np.ndarray], model: bytes, args: Any) -> dict[str, float]:
    """PyTorch eager CUDA on the same op (empty when torch or its CUDA is missing)."""
    try:
        import torch
        from torch.nn import functional
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    consts = {
        t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(model).graph.initializer
    }
    c = {k: torch.from_numpy(v).cuda() for k, v in consts.items()}
    fns: dict[str, Callable[..., Any]] = {
        "MatMul": lambda a: a @ c["b"],
        "Add": lambda a: a + c["b"],
        "Conv": lambda x: functional.conv2d(x, c["w"], padding=1),
        "Softmax": lambda x: x.softmax(-1),
        "LayerNormalization": lambda x: functional.layer_norm(x, x.shape[-1:], c["g"], c["b"]),
    }
    (host,) = feeds.values()
    device = torch.from_numpy(host).cuda()

    def resident() -> None:
        fns[op](device)
        torch.cuda.synchronize()

    return {
        "torch resident": median_time(resident, args.repeats, args.budget),
        "torch": median_time(
            lambda: fns[op](torch.from_numpy(host).cuda()).cpu(), args.repeats, args.budget
        ),
    }


def run_ops(cp: Any, cpu: list[str], args: Any) -> list[dict[str, Any]]:
    """Every op at every size on every runner."""
    rows = []
    for op in args.ops:
        for n in SIZES["quick" if args.quick else "full"]:
            model, feeds = op_case(op, n)
            session = onnxep.InferenceSession(model, providers=[CUPY])
            out_shape = session.run(None, feeds)[0].shape
            times = {
                "cupy": time_session(model, feeds, CUPY, args),
                "cupy resident": time_resident(model, feeds, cp, args),
                "transfers": time_transfers(feeds, out_shape, cp, args),
            }
            for provider in cpu:  # a provider that declines the node gets no figure (nan)
                try:
                    times[alias(provider)] = time_session(model, feeds, provider, args)
                except RuntimeError as exc:
                    print(f"  {provider}: {exc}".splitlines()[0])
                    times[alias(provider)] = float("nan")
            times.update(torch_times(op, feeds, model, args))
            rows.append({"op": op, "size": n, "seconds": times})
            print(
                f"{op:>18} {n:>5}  " + "  ".join(f"{k} {v * 1e3:.3f} ms" for k, v in times.items())
            )
    return rows


def crossovers(rows: list[dict[str, Any]], cpu: list[str]) -> dict[str, int | None]:
    """Per op, the first size where CuPy (transfers included) beats the best CPU provider."""
    aliases = [alias(p) for p in cpu]
    found: dict[str, int | None] = {}
    for row in rows:
        best_cpu = min((row["seconds"][a] for a in aliases), key=lambda t: (t != t, t))
        if row["op"] not in found or found[row["op"]] is None:
            found[row["op"]] = row["size"] if row["seconds"]["cupy"] < best_cpu else None
    return found


def run_models(cpu: list[str], args: Any) -> list[dict[str, Any]]:
    """light_* models and an encoder: median ``session.run`` per provider."""
    from onnxep.models import light_model_paths

    cases: list[tuple[str, bytes, dict[str, np.ndarray]]] = []
    for light in light_model_paths()[: 2 if args.quick else None]:
        rng = np.random.default_rng(0)
        feeds = {
            k: rng.standard_normal(s).astype(np.float32) for k, s in light.input_shapes.items()
        }
        cases.append((light.name, light.path.read_bytes(), feeds))
    try:
        from onnxep.models import build_encoder, encoder_inputs
    except ImportError:
        build_encoder = None
    if build_encoder is not None:
        encoder = build_encoder(layers=2 if args.quick else 4, seq=128)
        cases.append(("bert_encoder", encoder.SerializeToString(), encoder_inputs(encoder)))
    rows = []
    for name, model, feeds in cases:
        times = {}
        for provider in [CUPY, *cpu]:
            session = onnxep.InferenceSession(model, providers=[provider])
            times[provider] = median_time(
                lambda s=session, f=feeds: s.run(None, f), args.repeats, args.budget
            )
        rows.append({"model": name, "seconds": times})
        print(f"{name:>18}  " + "  ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items()))
    return rows


def markdown(
    ops: list[dict[str, Any]],
    models: list[dict[str, Any]],
    machine: dict[str, Any],
    cross: dict[str, int | None],
) -> str:
    """The results as Markdown tables (milliseconds)."""
    runners = list(ops[0]["seconds"]) if ops else []
    lines = [
        f"# GPU benchmark\n\n{machine}\n",
        "| op | size | " + " | ".join(runners) + " |",
        "|---|---:|" + "---:|" * len(runners),
    ]
    lines += [
        f"| {r['op']} | {r['size']} | "
        + " | ".join(f"{r['seconds'][k] * 1e3:.3f}" for k in runners)
        + " |"
        for r in ops
    ]
    lines += [
        "",
        "Crossover (first size where CuPy, transfers included, beats the CPU): "
        + ", ".join(f"{k}: {v}" for k, v in cross.items()),
        "",
    ]
    if models:
        names = list(models[0]["seconds"])
        lines += ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines += [
            f"| {m['model']} | " + " | ".join(f"{m['seconds'][k] * 1e3:.2f}" for k in names) + " |"
            for m in models
        ]
    return "\n".join(lines) + "\n\nTimes in ms (median).\n"


def plot(ops: list[dict[str, Any]], path: pathlib.Path) -> None:
    """Time against size per op, one line per runner (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(dict.fromkeys(r["op"] for r in ops))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, op in zip(axes[0], names):
        mine = [r for r in ops if r["op"] == op]
        for runner in mine[0]["seconds"]:
            sizes = [r["size"] for r in mine]
            ax.loglog(sizes, [r["seconds"][runner] for r in mine], "o-", label=runner)
        ax.set_title(op)
        ax.set_xlabel("size")
    axes[0][0].set_ylabel("seconds")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write(
    ops: list[dict[str, Any]],
    models: list[dict[str, Any]],
    machine: dict[str, Any],
    cross: dict[str, int | None],
    out: pathlib.Path,
) -> None:
    """``gpu_ops.json``, ``gpu_models.json``, ``gpu.md`` and ``gpu_ops.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    ops_doc = {"machine": machine, "ops": ops, "crossover": cross}
    (out / "gpu_ops.json").write_text(json.dumps(ops_doc, indent=1))
    models_doc = {"machine": machine, "models": models}
    (out / "gpu_models.json").write_text(json.dumps(models_doc, indent=1))
    (out / "gpu.md").write_text(markdown(ops, models, machine, cross))
    if ops:
        plot(ops, out / "gpu_ops.png")


def main(argv: list[str] | None = None) -> int:
    """Measure and write; exit 0 with a message when there is no GPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--ops", nargs="*", default=["MatMul", "Conv", "Add", "Softmax", "LayerNormalization"]
    )
    parser.add_argument("--no-models", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.budget = 5, 0.5
    from onnxep_cupy import CuPyProvider

    support = CuPyProvider.is_available()
    if not support:
        print(f"bench_gpu: no usable GPU, nothing measured ({support.reason})")
        return 0
    import cupy as cp

    available = onnxep.get_available_providers()
    cpu = [p for p in CPU if p in available]
    props = cp.cuda.runtime.getDeviceProperties(0)
    machine = {
        "gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "cpu": platform.processor() or platform.machine(),
        "cupy": cp.__version__,
        "python": platform.python_version(),
        "onnxep": onnxep.__version__,
    }
    ops = run_ops(cp, cpu, args)
    cross = crossovers(ops, cpu)
    models = [] if args.no_models else run_models(cpu, args)
    write(ops, models, machine, cross, args.out)
    print(f"crossovers: {cross}; wrote {args.out}/gpu_ops.json, gpu_models.json, gpu.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
