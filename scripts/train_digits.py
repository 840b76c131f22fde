"""Train the digits CNN on scikit-learn's bundled 8x8 digits (no download) and write it as a
float ONNX model (``sim_models/models/digits_cnn.onnx``).

The network: Conv 3x3 (1->8, pad 1) + Relu + MaxPool 2, Conv 3x3 (8->16, pad 1) + Relu +
MaxPool 2, Flatten, Gemm (64->10).  Trained in plain NumPy (im2col convolutions, Adam) with a
fixed seed, so the file is reproducible; the split is ``sim_models.onnx_frontend.zoo.digits``.

    python scripts/train_digits.py [--epochs 40] [--out sim_models/models/digits_cnn.onnx]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim_models.onnx_frontend import zoo  # noqa: E402


def _im2col(x, k=3, pad=1):
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((N, H, W, C, k, k), x.dtype)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, :, :, ky, kx] = xp[:, :, ky:ky + H, kx:kx + W].transpose(0, 2, 3, 1)
    return cols.reshape(N * H * W, C * k * k)


def _col2im(dcols, shape, k=3, pad=1):
    N, C, H, W = shape
    d = dcols.reshape(N, H, W, C, k, k)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dcols.dtype)
    for ky in range(k):
        for kx in range(k):
            dxp[:, :, ky:ky + H, kx:kx + W] += d[:, :, :, :, ky, kx].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + H, pad:pad + W]


def _conv(x, w, b):
    N, C, H, W = x.shape
    cols = _im2col(x)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(N, H, W, -1).transpose(0, 3, 1, 2), cols


def _pool(x):
    N, C, H, W = x.shape
    r = x.reshape(N, C, H // 2, 2, W // 2, 2)
    y = r.max(axis=(3, 5))
    mask = r == y[:, :, :, None, :, None]
    return y, mask


def _unpool(dy, mask):
    d = mask * dy[:, :, :, None, :, None]
    N, C, h, _, w, _ = d.shape
    return d.reshape(N, C, 2 * h, 2 * w)


def forward(p, x, keep=False):
    """Logits of the CNN (and the activations backward needs)."""
    a1, c1 = _conv(x, p["w1"], p["b1"])
    r1 = np.maximum(a1, 0)
    p1, m1 = _pool(r1)
    a2, c2 = _conv(p1, p["w2"], p["b2"])
    r2 = np.maximum(a2, 0)
    p2, m2 = _pool(r2)
    f = p2.reshape(len(x), -1)
    logits = f @ p["w3"].T + p["b3"]
    return (logits, (x, a1, c1, p1, m1, a2, c2, m2, f)) if keep else logits


def backward(p, cache, dlogits):
    x, a1, c1, p1, m1, a2, c2, m2, f = cache
    g = {"w3": dlogits.T @ f, "b3": dlogits.sum(0)}
    dp2 = (dlogits @ p["w3"]).reshape(len(x), 16, 2, 2)
    da2 = _unpool(dp2, m2) * (a2 > 0)
    dy2 = da2.transpose(0, 2, 3, 1).reshape(-1, 16)
    g["w2"], g["b2"] = (dy2.T @ c2).reshape(p["w2"].shape), dy2.sum(0)
    dp1 = _col2im(dy2 @ p["w2"].reshape(16, -1), p1.shape)
    da1 = _unpool(dp1, m1) * (a1 > 0)
    dy1 = da1.transpose(0, 2, 3, 1).reshape(-1, 8)
    g["w1"], g["b1"] = (dy1.T @ c1).reshape(p["w1"].shape), dy1.sum(0)
    return g


def train(epochs: int = 40, seed: int = 0):
    """Adam on cross-entropy; returns the parameters (float32) and the test accuracy."""
    (xtr, ytr), (xte, yte) = zoo.digits()
    rng = np.random.default_rng(seed)
    he = lambda *s: rng.normal(0, np.sqrt(2 / np.prod(s[1:])), s)  # noqa: E731
    p = {"w1": he(8, 1, 3, 3), "b1": np.zeros(8), "w2": he(16, 8, 3, 3), "b2": np.zeros(16),
         "w3": he(10, 64), "b3": np.zeros(10)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    step, lr = 0, 3e-3
    for _ in range(epochs):
        order = rng.permutation(len(xtr))
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            logits, cache = forward(p, xtr[idx], keep=True)
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            prob[np.arange(len(idx)), ytr[idx]] -= 1
            grads = backward(p, cache, prob / len(idx))
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                p[k] -= lr * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
    acc = float((forward(p, xte).argmax(1) == yte).mean())
    return {k: val.astype(np.float32) for k, val in p.items()}, acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=str(zoo.DIGITS_ONNX))
    args = ap.parse_args(argv)
    params, acc = train(args.epochs)
    model = zoo.digits_model(params)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import onnx
    onnx.save(model, args.out)
    print(f"float test accuracy {acc:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
