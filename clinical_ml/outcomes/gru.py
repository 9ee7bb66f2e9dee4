"""Small GRU over the hourly 17-channel series (+ masks) for ihm and decomp.

One forward pass per ICU stay reads out the hidden state at every prediction hour of that
stay, so decompensation's many hourly samples share one pass (mimic3-benchmarks' "deep
supervision"); ihm reads out at hour 48. The network is unidirectional, so padding at the end
of a batch never leaks into earlier outputs. Runs on CUDA when available, else CPU.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from clinical_ml.outcomes import metrics
from clinical_ml.outcomes.sequences import channel_stats, n_bins, series_channels, stay_tensors


class GRUNet(nn.Module):
    def __init__(self, n_inputs: int, hidden: int = 32, layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.gru = nn.GRU(n_inputs, hidden, num_layers=layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, F] -> logits [B, T]
        h, _ = self.gru(x)
        return self.head(self.drop(h)).squeeze(-1)


@dataclass
class Prepared:
    """Stays, their tensors and where each sample row reads its output."""
    stays: list[int]
    tensors: dict[int, np.ndarray]
    readout: dict[int, tuple[np.ndarray, np.ndarray]]  # stay -> (time index, row index)


def prepare(samples: pd.DataFrame, ts: pd.DataFrame, channels: list[str],
            stats: dict[str, list[float]]) -> Prepared:
    stay_ids = samples["icustay_id"].to_numpy(dtype=np.int64)
    idx = n_bins(samples["prediction_hour"].to_numpy(dtype=float)) - 1
    rows = np.arange(len(samples))
    lengths = pd.Series(idx + 1).groupby(stay_ids).max()
    readout = {int(s): (idx[g], rows[g]) for s, g in pd.Series(rows).groupby(stay_ids).indices.items()}
    tensors = stay_tensors(ts, {int(s): int(t) for s, t in lengths.items()}, channels, stats)
    stays = sorted(tensors, key=lambda s: (tensors[s].shape[0], s))
    return Prepared(stays, tensors, readout)


def _batches(stays: list[int], batch_size: int, rng: np.random.Generator | None) -> list[list[int]]:
    """Length-sorted stays cut into batches (little padding); batch order shuffled if rng."""
    batches = [stays[i:i + batch_size] for i in range(0, len(stays), batch_size)]
    if rng is not None:
        order = rng.permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches


def _collate(p: Prepared, batch: list[int], device) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    T = max(p.tensors[s].shape[0] for s in batch)
    F = p.tensors[batch[0]].shape[1]
    x = np.zeros((len(batch), T, F), dtype=np.float32)
    bi, ti, ri = [], [], []
    for b, s in enumerate(batch):
        arr = p.tensors[s]
        x[b, :arr.shape[0]] = arr
        t_idx, r_idx = p.readout[s]
        bi.append(np.full(len(t_idx), b))
        ti.append(t_idx)
        ri.append(r_idx)
    return (torch.from_numpy(x).to(device), np.concatenate(bi), np.concatenate(ti),
            np.concatenate(ri))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _predict_prepared(net: GRUNet, p: Prepared, n_rows: int, device, batch_size: int) -> np.ndarray:
    out = np.full(n_rows, np.nan)
    net.eval()
    with torch.no_grad():
        for batch in _batches(p.stays, batch_size, None):
            x, bi, ti, ri = _collate(p, batch, device)
            logits = net(x)[torch.from_numpy(bi).to(device), torch.from_numpy(ti).to(device)]
            out[ri] = torch.sigmoid(logits).double().cpu().numpy()
    return out


def fit(train: pd.DataFrame, train_ts: pd.DataFrame, val: pd.DataFrame, val_ts: pd.DataFrame,
        task: str, *, seed: int = 0, epochs: int = 5, hidden: int = 32, batch_size: int = 64,
        lr: float = 1e-3, dropout: float = 0.1, threads: int | None = None,
        device: str | None = None) -> tuple[dict, dict]:
    """Train with Adam and keep the epoch with the best validation AUROC.

    Returns (bundle for ``save``, training summary).
    """
    device = device or default_device()
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    channels = series_channels(train_ts)
    stats = channel_stats(train_ts, channels)
    ptr = prepare(train, train_ts, channels, stats)
    pva = prepare(val, val_ts, channels, stats)
    y_tr = train["y"].to_numpy(dtype=np.float32)
    y_va = val["y"].to_numpy(dtype=float)
    config = {"task": task, "channels": channels, "stats": stats, "n_inputs": 2 * len(channels),
              "hidden": hidden, "layers": 1, "dropout": dropout, "seed": seed}
    net = GRUNet(config["n_inputs"], hidden, 1, dropout).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(seed)
    best = (-1.0, 0, copy.deepcopy(net.state_dict()))
    history = []
    for epoch in range(1, max(1, epochs) + 1):
        net.train()
        total, count = 0.0, 0
        for batch in _batches(ptr.stays, batch_size, rng):
            x, bi, ti, ri = _collate(ptr, batch, device)
            logits = net(x)[torch.from_numpy(bi).to(device), torch.from_numpy(ti).to(device)]
            target = torch.from_numpy(y_tr[ri]).to(device)
            loss = loss_fn(logits, target)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(ri)
            count += len(ri)
        p_va = _predict_prepared(net, pva, len(val), device, batch_size)
        val_auroc = metrics.auroc(y_va, p_va)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_auroc": val_auroc})
        if val_auroc > best[0]:
            best = (val_auroc, epoch, copy.deepcopy(net.state_dict()))
    config["best_epoch"] = best[1]
    state = {k: v.detach().cpu() for k, v in best[2].items()}
    summary = {"device": str(device), "best_epoch": best[1], "val_auroc": best[0], "history": history}
    return {"config": config, "state_dict": state}, summary


def save(bundle: dict, path: str | os.PathLike) -> None:
    torch.save(bundle, path)


def load(path: str | os.PathLike, device: str | None = None) -> tuple[GRUNet, dict]:
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    cfg = bundle["config"]
    net = GRUNet(cfg["n_inputs"], cfg["hidden"], cfg["layers"], cfg["dropout"])
    net.load_state_dict(bundle["state_dict"])
    return net.to(device or default_device()), cfg


def predict(net: GRUNet, cfg: dict, samples: pd.DataFrame, ts: pd.DataFrame,
            batch_size: int = 128, device: str | None = None) -> np.ndarray:
    """Probability per sample row (keys icustay_id, prediction_hour), in row order."""
    device = device or next(net.parameters()).device
    p = prepare(samples, ts, cfg["channels"], cfg["stats"])
    return _predict_prepared(net, p, len(samples), device, batch_size)
