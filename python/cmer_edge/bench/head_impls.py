"""The implementations `bench head` times: each builder returns a zero-argument callable that runs one
batch-1 live push (the newest utterance's prediction from a window of W) or one offline forward
(a batch of padded dialogues), and waits for it to finish.

PyTorch-based rows import torch here (the benchmark compares against it); the native rows need
only numpy and cmer_edge._native.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cmer_edge.model.config import HeadConfig
from cmer_edge.runtime.head import NativeHead


@dataclass
class Case:
    """One profile's random model and inputs (the same for every implementation)."""

    name: str
    cfg: HeadConfig
    model: object  # CMRoberta, eval mode, CPU
    state: dict[str, np.ndarray]
    utts_a: np.ndarray  # [n, Da] utterances to push, cycled
    utts_t: np.ndarray
    window: int
    batch_a: np.ndarray  # [B, T, Da] offline batch
    batch_t: np.ndarray
    batch_lengths: np.ndarray  # [B]


def make_case(name: str, cfg: HeadConfig, window: int, batch: int, steps: int, seed: int = 0) -> Case:
    import torch

    from cmer_edge.model.cm_roberta import CMRoberta

    torch.manual_seed(seed)
    model = CMRoberta(cfg).eval()
    rng = np.random.default_rng(seed)
    n = 2 * window + 3
    lengths = rng.integers(max(1, steps // 2), steps + 1, batch)
    lengths[0] = steps
    return Case(name, cfg, model, {k: v.numpy() for k, v in model.state_dict().items()},
                rng.standard_normal((n, cfg.audio_dim), dtype=np.float32),
                rng.standard_normal((n, cfg.text_dim), dtype=np.float32), window,
                rng.standard_normal((batch, steps, cfg.audio_dim), dtype=np.float32),
                rng.standard_normal((batch, steps, cfg.text_dim), dtype=np.float32), lengths.astype(np.int64))


def native_head(case: Case, device: str, precision: str, threads: int) -> NativeHead:
    # No start-up self-check here (it would build a CPU head inside the CUDA rows' setup time);
    # gpu_check.sh's cuda tests check CUDA against CPU.
    return NativeHead.from_state_dict(case.cfg, case.state, device=device, precision=precision, num_threads=threads,
                                      self_check=False)


def native_push(head: NativeHead, case: Case, cuda_graph: bool = False) -> Callable[[], object]:
    """Session.push of the next utterance into a full window (the steady state of a live session)."""
    session = head.session(case.window, cuda_graph=cuda_graph)
    counter = iter(range(1 << 62))
    n = len(case.utts_a)

    def push() -> object:
        i = next(counter) % n
        return session.push(case.utts_a[i], case.utts_t[i])

    for _ in range(case.window):
        push()
    return push


def torch_cached(case: Case, device: str, cuda_graph: bool = False) -> Callable[[], object]:
    """PyTorch with the native session's projection cache (bench/head_torch_cached.py), pushing the
    next utterance into a full window; cuda_graph=True replays the steady-state push as a CUDA graph."""
    from cmer_edge.bench.head_torch_cached import TorchCachedSession

    model = case.model if device == "cpu" else copy.deepcopy(case.model).to(device)
    session = TorchCachedSession(model, case.window, device)
    utts = [(case.utts_a[i], case.utts_t[i]) for i in range(len(case.utts_a))]
    if device != "cpu":
        import torch

        utts = [tuple(torch.from_numpy(x).to(device) for x in pair) for pair in utts]
    counter = iter(range(1 << 62))

    def push() -> object:
        i = next(counter) % len(utts)
        probs = session.push(*utts[i])
        _sync(device)
        return probs

    for _ in range(case.window):
        push()
    if cuda_graph:
        session.capture_graph()
    return push


def native_forward(head: NativeHead, case: Case) -> Callable[[], object]:
    return lambda: head.forward(case.batch_a, case.batch_t, case.batch_lengths)


def _torch_inputs(case: Case, op: str, device: str):
    import torch

    if op == "push":  # PyTorch has no session: it runs the model on the whole window
        w = case.window
        args = (torch.from_numpy(case.utts_a[:w][None]), torch.from_numpy(case.utts_t[:w][None]), torch.tensor([w]))
    else:
        args = (torch.from_numpy(case.batch_a), torch.from_numpy(case.batch_t), torch.from_numpy(case.batch_lengths))
    return tuple(a.to(device) if a.dtype.is_floating_point else a for a in args)


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def torch_eager(case: Case, op: str, device: str) -> Callable[[], object]:
    import torch

    model = case.model if device == "cpu" else copy.deepcopy(case.model).to(device)
    args = _torch_inputs(case, op, device)

    def run() -> object:
        with torch.inference_mode():
            out = model(*args)
            if op == "push":
                out = torch.softmax(out[0, -1], -1)
        _sync(device)
        return out

    return run


def torchscript(case: Case, op: str) -> Callable[[], object]:
    """torch.jit.trace for the benchmark's fixed shapes, frozen and optimised for inference."""
    import torch

    args = _torch_inputs(case, op, "cpu")
    with torch.inference_mode():
        traced = torch.jit.trace(case.model, args, check_trace=False)
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def run() -> object:
        with torch.inference_mode():
            return traced(*args)

    return run


def torch_compiled(case: Case, op: str) -> Callable[[], object]:
    import torch

    compiled = torch.compile(case.model, dynamic=False)
    args = _torch_inputs(case, op, "cpu")

    def run() -> object:
        with torch.inference_mode():
            return compiled(*args)

    return run


def onnxruntime_session(case: Case, op: str, threads: int) -> Callable[[], object]:
    """The PyTorch model exported to ONNX (TorchScript exporter, opset 17, the benchmark's fixed
    shapes) and run by ONNX Runtime on CPU with the same thread count."""
    import onnxruntime as ort
    import torch

    args = _torch_inputs(case, op, "cpu")
    buffer = io.BytesIO()
    torch.onnx.export(case.model, args, buffer, input_names=["x_a", "x_t", "lengths"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Passive waits, as OMP_WAIT_POLICY=PASSIVE for torch: ONNX Runtime's workers otherwise spin after
    # each run and take a core from whatever is timed next (measured: native fp32 push at 2 threads,
    # timed right after this row, 0.97 -> 2.2 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x_a": args[0].numpy(), "x_t": args[1].numpy(), "lengths": args[2].numpy()}
    return lambda: session.run(None, feed)


def torch_cuda_graph(case: Case, op: str, compile_fallback: bool = True) -> Callable[[], object]:
    """PyTorch on CUDA replayed from a captured CUDA graph. The reference packs sequences on the
    host, which capture may refuse; then torch.compile(mode="reduce-overhead") (CUDA graphs around
    the compiled regions) is used instead, unless compile_fallback=False (the row then reports the
    capture error: compiling takes minutes)."""
    import torch

    model = copy.deepcopy(case.model).to("cuda")
    args = _torch_inputs(case, op, "cuda")
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                model(*args)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            model(*args)

        def replay() -> object:
            graph.replay()
            torch.cuda.synchronize()

        return replay
    except RuntimeError:
        if not compile_fallback:
            raise
        compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)

        def run() -> object:
            with torch.inference_mode():
                out = compiled(*args)
            torch.cuda.synchronize()
            return out

        return run


def push_macs(cfg: HeadConfig, window: int) -> int:
    """Multiply-adds of one native Session.push into a full window (analytic count of the session's
    work: the new utterance's projection, the LSTMs over the window, every SCA layer on all rows but
    the last layer on one query row, mid fusion and the classifier on the newest row)."""
    h, w, t, f = cfg.hidden, cfg.width, window, cfg.ffn_dim
    streams = (1 if cfg.uses_audio else 0) + (1 if cfg.uses_text else 0)
    dims = (cfg.audio_dim if cfg.uses_audio else 0) + (cfg.text_dim if cfg.uses_text else 0)
    step = 4 * h * h
    lstms = streams * t * (2 * step + step + step + step)  # encoder fwd + bwd, mid 1, mid 2 input, mid 2
    full = t * (2 * w * w + w * w + w * w + 2 * w * f) + 2 * t * t * w  # K/V, Q, out, FFN, attention
    last = t * 2 * w * w + (2 * w * w + 2 * w * f) + 2 * t * w
    layers = cfg.sca_layers if cfg.use_sca else 0
    per_stack = (layers - 1) * full + last if layers else 0
    stacks = streams * per_stack + (2 * per_stack if cfg.modalities == "both" else 0)
    mid_in = h * streams
    fusion = t * 4 * h * mid_in + t * step + 4 * h * mid_in + step + w * w
    classifier = cfg.num_branches * w * cfg.classifier_dim + cfg.classifier_dim * cfg.num_classes
    return dims * 14 * h + lstms + stacks + fusion + classifier


def precision_cost(case: Case, precision: str, threads: int, pushes: int = 32) -> dict[str, float]:
    """How far a reduced-precision head's live outputs move from the fp32 head's, on the benchmark's
    utterances: max |Δprob|, max |Δlogit| / max |logit|, and how often the argmax agrees."""
    sessions = [native_head(case, "cpu", p, threads).session(case.window) for p in ("fp32", precision)]
    dprob, dlogit, scale, agree = 0.0, 0.0, 0.0, 0
    for i in range(pushes):
        j = i % len(case.utts_a)
        probs = [s.push(case.utts_a[j], case.utts_t[j]) for s in sessions]
        logits = [s.last_logits for s in sessions]
        dprob = max(dprob, float(np.abs(probs[1] - probs[0]).max()))
        dlogit = max(dlogit, float(np.abs(logits[1] - logits[0]).max()))
        scale = max(scale, float(np.abs(logits[0]).max()))
        agree += int(np.argmax(probs[0]) == np.argmax(probs[1]))
    return {"max_abs_dprob": dprob, "max_rel_dlogit": dlogit / max(scale, 1e-30), "argmax_agree": agree / pushes}
