"""Extractor training under torchrun (issue #17, distributed training): 2 CPU ranks (gloo) at
per-rank batch 4 against one process at batch 8, same seed, same tiny random-init encoder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clinical_ml.distributed import RankSync, read_resource_config, torchrun_command
from clinical_ml.notes.datasets import write_jsonl
from clinical_ml.notes.schema import annotation_errors
from clinical_ml.notes.toy import toy_documents

REPO = Path(__file__).resolve().parents[1]
STEPS = 12
# Mean |loss(2 ranks) - loss(1 process)| over the steps, relative to the mean loss. Both runs
# start from the same seeded weights and draw the same global batches; what differs is each
# rank's own dropout masks and the mean of two half-batch means against one full-batch mean:
# measured 0.2 % here. 2 % is 10x that, and a tenth of the curve's own fall over 12 steps
# (about 19 %), so a run on other batches or at another effective batch size shows.
LOSS_TOLERANCE = 0.02

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_torchrun_command_one_and_several_hosts():
    one = torchrun_command({"current_host": "algo-1", "hosts": ["algo-1"]}, 4, "training/train_extractor.py",
                           ["--kind", "encoder"])
    assert one == ["torchrun", "--nproc_per_node", "4", "--standalone", "--nnodes", "1",
                   "training/train_extractor.py", "--kind", "encoder"]
    # hosts listed in any order: every node agrees on the sorted first one as master
    rc = {"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}
    cmd = torchrun_command(rc, 8, "s.py", ["--x", "1"])
    assert cmd == ["torchrun", "--nproc_per_node", "8", "--nnodes", "3", "--node_rank", "1",
                   "--master_addr", "algo-1", "--master_port", "29500", "s.py", "--x", "1"]
    assert torchrun_command(rc, 0, "s.py", [])[1:3] == ["--nproc_per_node", "1"]  # CPU instance


def test_read_resource_config(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_RESOURCE_CONFIG", str(tmp_path / "absent.json"))
    assert read_resource_config()["hosts"] == ["algo-1"]
    (tmp_path / "rc.json").write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    assert read_resource_config(tmp_path / "rc.json")["current_host"] == "algo-2"


class _FakeAccelerator:
    """Two ranks' worth of gather: this rank's row and a fixed other rank's row."""

    num_processes, process_index, device = 2, 0, torch.device("cpu")

    def __init__(self, other: list[float]):
        self.other = other

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, torch.tensor([self.other], dtype=t.dtype)])


def test_rank_sync_agrees_on_loss_and_clock():
    sync = RankSync(_FakeAccelerator([3.0, 7.5]))
    assert sync.step(1.0, 2.0) == (2.0, 7.5)  # mean loss, the slowest rank's clock
    assert sync.clock()() == 7.5  # what the schedule and the budget stop read on every rank
    assert RankSync(None).step(1.0, 2.0) == (1.0, 2.0)


def _train(tiny_bert: Path, notes: Path, out: Path, ranks: int) -> subprocess.CompletedProcess:
    args = ["training/train_extractor.py", "--train", str(notes / "train.jsonl"), "--validation",
            str(notes / "val.jsonl"), "--model-dir", str(out / "model"), "--output-data-dir", str(out / "data"),
            "--kind", "encoder", "--base-model", str(tiny_bert), "--max-steps", str(STEPS),
            "--max-length", "64", "--threads", "1", "--seed", "0", "--batch-size", str(8 // ranks)]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                if ranks > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run(launcher + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    notes = tmp_path_factory.mktemp("notes")
    write_jsonl(toy_documents(24, seed=1), notes / "train.jsonl")
    write_jsonl(toy_documents(6, seed=2), notes / "val.jsonl")
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    return {"one": (one, _train(tiny_bert, notes, one, 1)), "two": (two, _train(tiny_bert, notes, two, 2))}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_rank0_alone_writes(runs):
    (one, _), (two, r) = runs["one"], runs["two"]
    assert _files(two) == _files(one)  # one model dir, validation.json, training_log.json
    assert len(list(two.rglob("metadata.json"))) == 1
    assert (r.stdout + r.stderr).count("train-extractor: done") == 1  # rank 1 neither saved nor logged
    log = json.loads((two / "data" / "training_log.json").read_text())
    assert log["world_size"] == 2 and log["global_batch_size"] == 8 and log["steps"] == STEPS
    training = json.loads((two / "data" / "validation.json").read_text())["training"]
    assert training["ranks"] == 2 and training["ranks_in_sync"]
    assert all(n > 0 for n in training["rank_windows"])  # both ranks trained on their shard


def test_loss_curves_agree(runs):
    (one, _), (two, _) = runs["one"], runs["two"]
    a = json.loads((one / "data" / "training_log.json").read_text())
    b = json.loads((two / "data" / "training_log.json").read_text())
    la, lb = a["losses"], b["losses"]
    assert len(la) == len(lb) == STEPS and a["world_size"] == 1
    diff = sum(abs(x - y) for x, y in zip(la, lb)) / STEPS / (sum(la) / STEPS)
    print(f"loss curve: mean |2 ranks - 1 process| / mean loss = {diff:.4%}")
    assert diff < LOSS_TOLERANCE, (la, lb)
    assert la[-1] < la[0] and lb[-1] < lb[0]
    # the same global batches: the shards of the two ranks add up to the one process's tokens
    ta = json.loads((one / "data" / "validation.json").read_text())["training"]["train_tokens"]
    tb = json.loads((two / "data" / "validation.json").read_text())["training"]["train_tokens"]
    assert ta == tb


def test_distributed_model_loads_and_extracts(runs):
    from clinical_ml.extraction import load

    two, _ = runs["two"]
    ext = load(two / "model")
    assert ext.metadata["kind"] == "encoder" and ext.metadata["training"]["steps"] == STEPS
    text = toy_documents(1, seed=9)[0]["text"]
    res = ext.extract([text])[0]
    assert res["entities"] is not None and annotation_errors({"id": "n1", **res}, text) == []


def test_launcher_runs_one_process_directly(tmp_path):
    """One host, no GPU: ``python -m clinical_ml.distributed SCRIPT`` is the script itself (no
    torchrun in between, so a single-instance job behaves exactly as before)."""
    script = tmp_path / "show.py"
    script.write_text("import os, sys; print(os.environ.get('WORLD_SIZE', 'none'), sys.argv[1:])\n")
    env = {**os.environ, "SM_NUM_GPUS": "0", "CLINICAL_ML_RESOURCE_CONFIG": str(tmp_path / "absent.json")}
    out = subprocess.run([sys.executable, "-m", "clinical_ml.distributed", str(script), "--a", "1"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "none ['--a', '1']"
