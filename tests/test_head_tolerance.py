"""Where the CUDA tests' tolerance comes from: a bound measured on the CPU.

The CUDA head computes the same sums as the CPU head in another order (warp-shuffle reductions, one
thread per gate) and with --use_fast_math (__expf, fast tanhf: a few ulp each). The CPU-side stand-in
for "the same sums in another order in fp32" is the native CPU head against PyTorch's fp32 run of the
same model (MKL GEMMs, blocked differently), at every precision: for bf16/int8 the PyTorch model gets
the native head's rounded/quantised input-projection weights, so both sides compute exactly the same
products. For every configuration and precision that tests/test_head_cuda.py covers, the measured
relative error must stay 10x below CUDA_TOLERANCE; docs/benchmarks.md records the numbers
(`python -m pytest tests/test_head_tolerance.py -s` prints them).
"""

from __future__ import annotations

import pytest
from helpers.head import CONFIGS, CUDA_TOLERANCE
from helpers.head import HeadConfig, inputs, make_model, native, rel_error, torch

from cmer_edge.model.protocol import predict_live

MARGIN = 10.0


def _input_weights(model):
    """The weights the native head stores in the chosen precision: per stream the LSTM input
    projections of the encoder (both directions) and the mid LSTM's first layer, and the residual Linear."""
    for _, stream in model.streams():
        yield stream.encoder.lstm.weight_ih_l0
        yield stream.encoder.lstm.weight_ih_l0_reverse
        yield stream.mid.lstm.weight_ih_l0
        yield stream.residual.proj.weight


def _round_like_native(model, precision: str):
    with torch.no_grad():
        for w in _input_weights(model):
            if precision == "bf16":
                w.copy_(w.to(torch.bfloat16).float())
            elif precision == "int8":
                scale = w.abs().amax(1, keepdim=True) / 127.0  # as packed_linear.cc, in fp32
                inv = torch.where(scale > 0, 1.0 / scale, torch.zeros_like(scale))
                w.copy_(torch.clamp(torch.round(w * inv), -127, 127) * scale)
    return model


@pytest.mark.parametrize("overrides", [c[0] for c in CONFIGS], ids=[c[1] for c in CONFIGS])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_cuda_tolerance_is_ten_times_the_cpu_reordering_error(overrides, precision):
    cfg = HeadConfig(**overrides)
    model = make_model(cfg, seed=1)
    head = native(model, precision=precision)
    emulated = _round_like_native(model, precision)
    x_a, x_t, lengths, present = inputs(cfg, 3, 17, seed=1, with_present=cfg.modalities == "both")
    with torch.no_grad():
        ref = emulated(x_a, x_t, lengths, present).numpy()
    got = head.forward(x_a.numpy(), x_t.numpy(), lengths.numpy(), None if present is None else present.numpy())
    forward_err = rel_error(got, ref)

    session = head.session(4)
    logits = []
    for i in range(8):
        session.push(x_a[0, i].numpy() if cfg.uses_audio else None, x_t[0, i].numpy() if cfg.uses_text else None)
        logits.append(session.last_logits.copy())
    with torch.no_grad():
        live_ref = predict_live(emulated, x_a[0, :8], x_t[0, :8], 4).numpy()
    import numpy as np

    session_err = rel_error(np.stack(logits), live_ref)
    print(f"\n{cfg.modalities} h={cfg.hidden} Da={cfg.audio_dim} {precision}: forward {forward_err:.2e}, "
          f"session {session_err:.2e}")
    assert max(forward_err, session_err) * MARGIN <= CUDA_TOLERANCE
