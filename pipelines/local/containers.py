"""``run-local --containers``: each Processing and Training job (tuning trials too) runs inside
its step's image, with SageMaker's container contract (docs/containers.md):

| SageMaker                                            | here (``podman run``)                                   |
|------------------------------------------------------|---------------------------------------------------------|
| image ``AppSpecification.ImageUri`` / ``TrainingImage`` | the local image of that URI (``make images`` tags them so) |
| ``ContainerEntrypoint`` / ``ContainerArguments``     | ``--entrypoint`` (JSON form) / the command; a training job without an entrypoint runs ``train`` |
| ``ProcessingInputs[i]`` at ``LocalPath``             | ``-v <step>/input/...:<LocalPath>``                       |
| ``ProcessingOutputs[i]`` at ``LocalPath``            | ``-v <step>/output/<name>:<LocalPath>``                   |
| ``/opt/ml/config/{resourceconfig,processingjobconfig}.json`` | written per instance, mounted read-only           |
| channels ``/opt/ml/input/data/<channel>``            | ``-v <step>/input/data/<channel>:...``                    |
| ``/opt/ml/input/config/{hyperparameters,resourceconfig,inputdataconfig}.json`` | written, mounted read-only    |
| ``/opt/ml/model``, ``/opt/ml/output``                | ``-v <step>/model``, ``-v <step>/output``                 |
| ``Environment``                                      | ``-e`` as written (container paths, not rewritten)       |
| network isolation (``EnableNetworkIsolation``)       | ``--network none``; other jobs ``--network host``        |

What stands in for AWS: jobs with network access (guard, tracking, deploy, schedule) see the
runs folder (local S3, registry, ledger, MLflow store) at its own path and the engine's
Docker-API socket (the Deploy step starts the endpoint as a container); isolated jobs see only
their /opt/ml mounts. Audit records a job writes go to a spool (``/opt/clinical-ml/audit``)
that the runner appends to the execution's hash-chained trail after the job.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_ml import containers as engine
from clinical_ml.io import DataError

from pipelines.local import jobs

AUDIT_DIR = "/opt/clinical-ml/audit"      # in the container: the job's audit spool
SOCKET_IN_CONTAINER = "/run/clinical-ml/docker.sock"
# the host's numeric-library settings travel into every job, so a job computes what the same
# script computes on the host: OpenBLAS picks its kernels by CPU (OPENBLAS_CORETYPE), and a
# machine that pins Haswell kernels on an AVX-512 CPU otherwise gets SkylakeX ones in the
# container and last-digit differences in every BLAS reduction (a dot product: ...353 vs ...347)
NUMERIC_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO_NUM_THREADS")


def numeric_env(host_env: dict[str, str]) -> dict[str, str]:
    """The BLAS / OpenMP settings of ``host_env`` (``NUMERIC_ENV_PREFIXES``)."""
    return {k: v for k, v in host_env.items() if k.startswith(NUMERIC_ENV_PREFIXES)}


def _isolated_processing(args: dict[str, Any]) -> bool:
    return bool((args.get("NetworkConfig") or {}).get("EnableNetworkIsolation", False))


def _isolated_training(args: dict[str, Any]) -> bool:
    return bool(args.get("EnableNetworkIsolation", False))


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))


@dataclass
class ContainerRuntime:
    """Builds the ``podman run`` command of a job; checks that its image is built from these sources."""

    root: Path                      # runs/ (local S3, registry, ledger, tuning records)
    run_dir: Path
    execution_id: str
    source_hash: str                # pipelines.local.engine.source_hash of this checkout
    code_version: str = ""
    socket: str | None = None       # host path of the Docker-API socket (podman system service)
    allow_stale: bool = field(default_factory=lambda: os.environ.get("CLINICAL_ML_ALLOW_STALE_IMAGES") == "1")
    _images: dict[str, str] = field(default_factory=dict)

    # images --------------------------------------------------------------------------------
    def image_id(self, image: str) -> str:
        """The local image's id; a DataError when it is missing or built from other sources."""
        if image in self._images:
            return self._images[image]
        if not image:
            raise DataError("the job names no image")
        problem = engine.image_problem(image, self.source_hash, self.allow_stale)
        if problem:
            raise DataError(problem)
        self._images[image] = engine.image_id(image)
        return self._images[image]

    def client_env(self) -> dict[str, str]:
        """What the podman client process needs (the project's engine configuration)."""
        return {k: v for k, v in engine.engine_env().items() if k.startswith("CONTAINERS_")}

    # the pieces every job shares -----------------------------------------------------------
    def _env(self, environment: dict[str, Any], isolated: bool, paths: jobs.StepPaths,
             extra: dict[str, str]) -> tuple[list[str], list[str]]:
        env = numeric_env(dict(os.environ))
        env.update({str(k): str(v) for k, v in (environment or {}).items()})
        env.update({"CLINICAL_ML_BACKEND": "local", "CLINICAL_ML_EXECUTION_ID": self.execution_id,
                    "CLINICAL_ML_AUDIT_FILE": f"{AUDIT_DIR}/audit.jsonl"})
        if self.code_version:
            env["CLINICAL_ML_CODE_VERSION"] = self.code_version
        mounts = ["-v", f"{paths.work / 'audit'}:{AUDIT_DIR}"]
        (paths.work / "audit").mkdir(parents=True, exist_ok=True)
        if not isolated:  # the local stand-ins of the AWS APIs these jobs call
            env.update({"CLINICAL_ML_S3_ROOT": str(self.root / "s3"), "CLINICAL_ML_REGISTRY": str(self.root / "registry"),
                        "CLINICAL_ML_RUN_DIR": str(self.run_dir), "CLINICAL_ML_TUNING_DIR": str(self.root / "tuning")})
            mounts += ["-v", f"{self.root}:{self.root}"]
            if self.socket:
                env.update({"DOCKER_HOST": f"unix://{SOCKET_IN_CONTAINER}", "CLINICAL_ML_ENDPOINT_RUNTIME": "container"})
                mounts += ["-v", f"{self.socket}:{SOCKET_IN_CONTAINER}"]
        env.update(extra)
        flags = []
        for k, v in sorted(env.items()):
            flags += ["-e", f"{k}={v}"]
        return flags, mounts

    def _run(self, name: str, isolated: bool, mounts: list[tuple[Path, str, str]], env_flags: list[str],
             extra_mounts: list[str], image: str, entrypoint: list[str] | None, command: list[str]) -> list[str]:
        cmd = engine.podman("run", "--rm", "--name", name, "--network", "none" if isolated else "host",
                            "--shm-size", "1g", "--pull", "never")
        for host, container, mode in sorted(mounts, key=lambda m: m[1].count("/")):
            cmd += ["-v", f"{host}:{container}" + (f":{mode}" if mode else "")]
        cmd += extra_mounts + env_flags
        if entrypoint:
            cmd += ["--entrypoint", json.dumps(entrypoint)]
        return cmd + [image, *command]

    @staticmethod
    def container_name(job: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in job)[:80]
        return f"clinical-ml-{safe}-{secrets.token_hex(3)}"

    # processing ----------------------------------------------------------------------------
    def processing(self, args: dict[str, Any], paths: jobs.StepPaths, job: str, host: str,
                   hosts: list[str]) -> list[str]:
        """``podman run`` of instance ``host`` of a processing job (inputs already materialized)."""
        app = args.get("AppSpecification") or {}
        image = str(app.get("ImageUri", ""))
        self.image_id(image)
        ins, outs = jobs.processing_layout(args, paths)
        mounts = [(dest, local, "") for _, local, dest in ins] + [(dest, local, "") for _, local, dest in outs]
        config = paths.work / "config" / host
        _write(config / "resourceconfig.json", {"current_host": host, "hosts": hosts})
        _write(config / "processingjobconfig.json", {**args, "ProcessingJobName": job})
        mounts.append((config, "/opt/ml/config", "ro"))
        isolated = _isolated_processing(args)
        env_flags, extra = self._env(args.get("Environment") or {}, isolated, paths, {})
        entry = [str(c) for c in (app.get("ContainerEntrypoint") or [])] or None
        return self._run(self.container_name(f"{job}-{host}"), isolated, mounts, env_flags, extra, image,
                         entry, [str(c) for c in (app.get("ContainerArguments") or [])])

    # training ------------------------------------------------------------------------------
    def training(self, args: dict[str, Any], paths: jobs.StepPaths, job: str,
                 extra_env: dict[str, str] | None = None) -> list[str]:
        """``podman run`` of a training job (channels already materialized by prepare_training)."""
        algo = args.get("AlgorithmSpecification") or {}
        image = str(algo.get("TrainingImage", ""))
        self.image_id(image)
        work = paths.work
        channels = [ch["ChannelName"] for ch in args.get("InputDataConfig", [])]
        config = work / "input" / "config"
        # as SageMaker passes them: a JSON object of strings
        _write(config / "hyperparameters.json", {k: str(v) for k, v in (args.get("HyperParameters") or {}).items()})
        rc = args.get("ResourceConfig") or {}
        _write(config / "resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"],
                                                "current_instance_type": rc.get("InstanceType", "local"),
                                                "current_group_name": "homogeneousCluster",
                                                "network_interface_name": "eth0"})
        _write(config / "inputdataconfig.json", {
            ch["ChannelName"]: {"TrainingInputMode": ch.get("InputMode", algo.get("TrainingInputMode", "File")),
                                "S3DistributionType": ch.get("DataSource", {}).get("S3DataSource", {})
                                .get("S3DataDistributionType", "FullyReplicated"), "RecordWrapperType": "None"}
            for ch in args.get("InputDataConfig", [])})
        _write(config / "trainingjobconfig.json", {**args, "TrainingJobName": job})
        mounts = [(work / "input" / "data" / ch, f"/opt/ml/input/data/{ch}", "") for ch in channels]
        mounts += [(config, "/opt/ml/input/config", "ro"), (work / "model", "/opt/ml/model", ""),
                   (work / "output", "/opt/ml/output", "")]
        isolated = _isolated_training(args)
        extra = {"TRAINING_JOB_NAME": job,
                 "TRAINING_JOB_ARN": f"arn:aws:sagemaker:local:000000000000:training-job/{job}".lower(),
                 **(extra_env or {})}
        env_flags, extra_mounts = self._env(args.get("Environment") or {}, isolated, paths, extra)
        entry = [str(c) for c in (algo.get("ContainerEntrypoint") or [])] or None
        command = [str(c) for c in (algo.get("ContainerArguments") or [])] if entry else ["train"]
        return self._run(self.container_name(job), isolated, mounts, env_flags, extra_mounts, image, entry, command)

    # after a job ---------------------------------------------------------------------------
    def finish(self, cmd: list[str], paths: jobs.StepPaths) -> None:
        """Remove the container if it outlived its client (timeout, Ctrl-C) and append the job's
        audit records to the execution's trail."""
        if "--name" in cmd:
            engine.run(["rm", "--force", "--ignore", cmd[cmd.index("--name") + 1]], check=False)
        spool = paths.work / "audit" / "audit.jsonl"
        if not spool.is_file():
            return
        from clinical_ml.audit import AuditTrail  # noqa: PLC0415

        trail = AuditTrail(self.run_dir / "audit.jsonl")
        for line in spool.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                trail.append(rec["event"], rec.get("outcome", "ok"), actor=rec.get("actor"), **rec.get("details", {}))
        spool.unlink()


# the Docker-API socket (podman system service) ---------------------------------------------
_service: dict[str, Any] = {}


def api_socket() -> str:
    """Start ``podman system service`` on a socket in the engine's home (once per process; it
    dies with this process) and return the socket's path: the Deploy job starts the endpoint's
    container through it, as SageMaker's control plane would."""
    import atexit  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import time  # noqa: PLC0415

    from pipelines.local import steproc  # noqa: PLC0415

    # one socket per process: two runs on one engine (a demo beside `make test`) each unlinking
    # and serving "docker.sock" took the other's socket away mid-run
    sock = engine.engine_home() / f"docker-{os.getpid()}.sock"
    proc = _service.get("proc")
    if proc is not None and proc.poll() is None and sock.exists():
        return str(sock)
    sock.unlink(missing_ok=True)
    log = (engine.engine_home() / "service.log").open("ab")
    proc = subprocess.Popen(engine.podman("system", "service", "--time", "0", f"unix://{sock}"), env=engine.engine_env(),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=steproc.die_with_parent())
    log.close()
    _service["proc"] = proc
    atexit.register(lambda: proc.poll() is None and proc.terminate())
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise DataError(f"podman system service did not start (see {engine.engine_home() / 'service.log'})")
        time.sleep(0.1)
    return str(sock)


def runtime_for(root: Path, run_dir: Path, execution_id: str, code_version: str) -> ContainerRuntime:
    """The runtime of one execution: the engine must be set up (a clear error otherwise)."""
    from pipelines.local.engine import source_hash  # noqa: PLC0415
    from pipelines.local.entrypoints import REPO_ROOT  # noqa: PLC0415

    why = engine.why_unavailable()
    if why:
        raise DataError(f"--containers: {why}")
    return ContainerRuntime(root=root, run_dir=run_dir, execution_id=execution_id, source_hash=source_hash(REPO_ROOT),
                            code_version=code_version, socket=api_socket())
