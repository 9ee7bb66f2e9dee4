"""Try the stock SageMaker SDK local mode (``LocalPipelineSession``) against podman's Docker-API
socket with our processing image; print how far it gets (docs/containers.md, "SDK local mode").

    .venv/bin/python scripts/try_sdk_local_mode.py --data DIR [--out FILE]

One pipeline with one ProcessingStep, BuildTasks as the definition has it (our image, its
entrypoint and arguments), built with the SDK's own ``Processor`` on a ``LocalPipelineSession``
with ``instance_type="local"``, the input a local folder (the SDK uploads it), the output a ``file://`` URI; S3 and STS calls go to a moto
server on 127.0.0.1 (there is no AWS here). The SDK drives ``docker compose``/``docker-compose``
and the ``docker`` CLI, which talk to ``DOCKER_HOST`` = the podman service's socket. Each stage
is recorded with its outcome; the first failure ends the try and is printed as it was raised.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a (synthetic) MIMIC-III folder")
    ap.add_argument("--out", type=Path, default=REPO / "bench-results" / "sdk-local-mode.json")
    args = ap.parse_args()
    stages: list[dict] = []

    def stage(name: str, fn):
        t0 = time.monotonic()
        try:
            value = fn()
        except BaseException as e:  # noqa: BLE001 - the point is to record what the SDK raised
            stages.append({"stage": name, "ok": False, "seconds": round(time.monotonic() - t0, 1),
                           "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-3000:]})
            raise
        stages.append({"stage": name, "ok": True, "seconds": round(time.monotonic() - t0, 1),
                       "detail": value if isinstance(value, (str, int, float, list, dict)) else None})
        return value

    moto = None
    try:
        from clinical_ml import containers
        from pipelines.local.containers import api_socket
        from pipelines.parameters import image_uri

        sock = stage("podman system service (Docker API)", api_socket)
        os.environ["DOCKER_HOST"] = f"unix://{sock}"
        for k, v in containers.engine_env().items():
            if k.startswith("CONTAINERS_"):
                os.environ[k] = v
        stage("docker CLI against the socket",
              lambda: subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], check=True,
                                     capture_output=True, text=True).stdout.strip())
        stage("compose CLI present", lambda: shutil.which("docker-compose") or
              subprocess.run(["docker", "compose", "version"], check=True, capture_output=True, text=True).stdout)
        port = _free_port()
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1"})
        time.sleep(2)

        from pipelines.session import prepare_environment
        prepare_environment("us-east-1")  # the project's SDK settings (no role validation, telemetry off)

        def session():
            from sagemaker.core.workflow.pipeline_context import LocalPipelineSession  # (the mlops one runs jobs at once)
            return LocalPipelineSession(default_bucket="clinical-ml-local")

        sess = stage("LocalPipelineSession()", session)
        image = image_uri("processing", "000000000000", "us-east-1")
        out_dir = args.out.parent / "sdk-local-mode-output"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)

        def build():
            from sagemaker.core.processing import Processor
            from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
            from sagemaker.mlops.workflow.pipeline import Pipeline
            from sagemaker.mlops.workflow.steps import ProcessingStep

            proc = Processor(role="arn:aws:iam::000000000000:role/local", image_uri=image, instance_type="local",
                             instance_count=1, entrypoint=["python3", "/opt/ml/code/processing/build_tasks.py"],
                             sagemaker_session=sess)
            step_args = proc.run(
                inputs=[ProcessingInput(input_name="mimic", s3_input=ProcessingS3Input(
                    s3_uri=str(args.data.resolve()), local_path="/opt/ml/processing/input/mimic",
                    s3_data_type="S3Prefix", s3_input_mode="File"))],
                outputs=[ProcessingOutput(output_name="train", s3_output=ProcessingS3Output(
                    s3_uri=f"file://{out_dir}", local_path="/opt/ml/processing/output/train",
                    s3_upload_mode="EndOfJob"))],
                arguments=["--mimic", "/opt/ml/processing/input/mimic", "--out", "/opt/ml/processing/output"])
            step = ProcessingStep(name="BuildTasks", step_args=step_args)
            # SDK v3 split the class: core's LocalPipelineSession builds step arguments (pipeline
            # context) but has no create_pipeline; mlops' has create/start but runs a job at once
            # when the step is built. Steps from the first, the pipeline on the second.
            from sagemaker.mlops.local import LocalPipelineSession as MlopsLocalPipelineSession
            return Pipeline(name="clinical-ml-sdk-local", steps=[step],
                            sagemaker_session=MlopsLocalPipelineSession(default_bucket="clinical-ml-local"))

        pipeline = stage("pipeline built with the SDK's Processor", build)
        try:
            stage("pipeline.create", lambda: pipeline.create(role_arn="arn:aws:iam::000000000000:role/local") and "created")
        except AttributeError:  # v3's Pipeline.create asks the client; the local session has the method
            local = pipeline.sagemaker_session
            stage("LocalPipelineSession.create_pipeline (workaround)",
                  lambda: local.create_pipeline(pipeline, "sdk local mode try"))
            pipeline.start = lambda **kw: local.start_pipeline_execution(pipeline.name, **kw)
        execution = stage("pipeline.start", lambda: pipeline.start())

        def wait():
            steps = execution.list_steps()
            if isinstance(steps, dict):
                steps = steps.get("PipelineExecutionSteps", [])
            return [{k: s.get(k) for k in ("StepName", "StepStatus", "FailureReason")} if isinstance(s, dict)
                    else {"raw": str(s)[:500]} for s in steps]

        result = stage("execution steps", wait)
        failed = [s for s in result if s.get("StepStatus") != "Succeeded"]
        stage("BuildTasks output written", lambda: sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.parquet"))[:5]
              if not failed else (_ for _ in ()).throw(RuntimeError(f"step failed: {failed}")))
    except BaseException:  # noqa: BLE001
        pass
    finally:
        if moto is not None:
            moto.terminate()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"stages": stages}, indent=1, default=str))
    for s in stages:
        print(f"{'ok  ' if s['ok'] else 'FAIL'} {s['stage']:<45} {s['seconds']:>6}s  "
              f"{s.get('error') or json.dumps(s.get('detail'), default=str)[:200]}")
    print(f"record: {args.out}")
    return 0 if stages and all(s["ok"] for s in stages) else 1


if __name__ == "__main__":
    sys.exit(main())
