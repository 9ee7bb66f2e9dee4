"""Multi-process training: the ``torchrun`` command line of a SageMaker job, and what the DDP
ranks of one training loop must agree on.

SageMaker starts one container per instance and tells each of them the cluster in
``/opt/ml/input/config/resourceconfig.json`` (``{"current_host": "algo-2", "hosts": [...]}``);
``torchrun`` then needs ``--nnodes``, ``--node_rank`` and the first host as rendezvous
address, the same on every instance (hosts are sorted, as SageMaker's own launchers do)::

    python -m clinical_ml.distributed training/train_extractor.py --kind encoder ...

execs ``torchrun --nproc_per_node <GPUs> ... training/train_extractor.py --kind encoder ...``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

TRAINING_RESOURCE_CONFIG = "/opt/ml/input/config/resourceconfig.json"
MASTER_PORT = 29500
SINGLE_HOST = {"current_host": "algo-1", "hosts": ["algo-1"]}


def read_resource_config(path: str | os.PathLike | None = None) -> dict:
    """This training instance's resourceconfig.json (``CLINICAL_ML_RESOURCE_CONFIG`` overrides
    the path, as for the local runner); one host when there is none (not on SageMaker)."""
    path = path or os.environ.get("CLINICAL_ML_RESOURCE_CONFIG") or TRAINING_RESOURCE_CONFIG
    try:
        cfg = json.loads(Path(path).read_text())
        if cfg.get("current_host") in cfg.get("hosts", []):
            return cfg
    except (OSError, ValueError, AttributeError):
        pass
    return dict(SINGLE_HOST)


def host_rank(resource_config: dict) -> tuple[int, int]:
    """(number of hosts, index of the current host) over the sorted host names."""
    hosts = sorted(resource_config.get("hosts") or [resource_config.get("current_host", "algo-1")])
    return len(hosts), hosts.index(resource_config.get("current_host", hosts[0]))


def torchrun_command(resource_config: dict, gpus: int, script: str, args: list[str],
                     master_port: int = MASTER_PORT) -> list[str]:
    """``torchrun`` argv for ``script args``: one process per GPU (one on a CPU instance);
    one host: ``--standalone``; several: every node points at the first sorted host."""
    nnodes, node_rank = host_rank(resource_config)
    cmd = ["torchrun", "--nproc_per_node", str(max(1, int(gpus)))]
    if nnodes == 1:
        cmd += ["--standalone", "--nnodes", "1"]
    else:
        master = sorted(resource_config["hosts"])[0]
        cmd += ["--nnodes", str(nnodes), "--node_rank", str(node_rank),
                "--master_addr", master, "--master_port", str(master_port)]
    return cmd + [script, *args]


class RankSync:
    """One all-gather per optimizer step of (loss, seconds elapsed) over the DDP ranks.

    The mean loss is what gets logged; the largest elapsed time drives both the learning-rate
    schedule and the ``--time-budget-s`` stop, so every rank stops after the same step (a rank
    that stopped alone would leave the others waiting in the next all-reduce for ever). With
    one process (``accelerator`` None or single) it is a no-op."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator
        self.world = int(getattr(accelerator, "num_processes", 1) or 1)
        self.rank = int(getattr(accelerator, "process_index", 0) or 0)
        self._elapsed = 0.0

    def elapsed(self) -> float:
        """The agreed clock (the slowest rank's seconds at the last step)."""
        return self._elapsed

    def clock(self) -> Callable[[], float]:
        return self.elapsed

    def _gather(self, values: list[float]):
        import torch

        t = torch.tensor([values], dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.gather(t).cpu()

    def step(self, loss: float, elapsed: float) -> tuple[float, float]:
        """(mean loss over ranks, max elapsed over ranks)."""
        if self.world == 1:
            self._elapsed = elapsed
            return loss, elapsed
        g = self._gather([loss, elapsed])
        self._elapsed = float(g[:, 1].max())
        return float(g[:, 0].mean()), self._elapsed

    def replicas_agree(self, params: list) -> bool:
        """Whether every rank holds the same weights (sum and sum of squares, float64): DDP
        replicas that stopped all-reducing would still log a falling loss."""
        if self.world == 1:
            return True
        import torch

        with torch.no_grad():
            s = sum(float(p.double().sum()) for p in params)
            q = sum(float(p.double().square().sum()) for p in params)
        g = self._gather([s, q])
        return bool(((g - g[0]).abs() <= 1e-9 * (1 + g[0].abs())).all())

    def gather_ints(self, value: int) -> list[int]:
        """One integer per rank, in rank order."""
        if self.world == 1:
            return [int(value)]
        return [int(v) for v in self._gather([float(value)])[:, 0].tolist()]


def _gpu_count() -> int:
    if os.environ.get("SM_NUM_GPUS"):
        return int(os.environ["SM_NUM_GPUS"])
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def main(argv: list[str] | None = None) -> int:
    """Exec torchrun for ``SCRIPT ARGS...`` on this SageMaker instance (the script itself when
    there is one host and at most one GPU)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m clinical_ml.distributed SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    resources, gpus = read_resource_config(), _gpu_count()
    if len(resources.get("hosts") or []) <= 1 and gpus <= 1:  # one process: no launcher in between
        os.execv(sys.executable, [sys.executable, *argv])
    cmd = torchrun_command(resources, gpus, argv[0], argv[1:])
    cmd = [sys.executable, "-m", "torch.distributed.run"] + cmd[1:]  # torchrun, this interpreter
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
