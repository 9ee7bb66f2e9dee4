"""Run one Processing or Training step of the definition as a local subprocess.

The container contract is mapped into the step's folder of the run (``StepPaths``):

| container                                   | local                                   |
|---------------------------------------------|-----------------------------------------|
| ``ProcessingInputs[i].S3Input.LocalPath``    | ``<step>/input/<InputName>``            |
| ``ProcessingOutputs[i].S3Output.LocalPath``  | ``<step>/output/<OutputName>``          |
| ``/opt/ml/processing``                       | ``<step>`` (``CLINICAL_ML_PROCESSING_DIR``) |
| ``/opt/ml/code`` (our images: the repository) | this repository's root                 |
| ``/opt/ml/input/data/<channel>``             | ``<step>/input/data/<channel>`` (``SM_CHANNEL_<CHANNEL>``) |
| ``/opt/ml/model``                            | ``<step>/model`` (``SM_MODEL_DIR``), packed to ``<step>/output/model.tar.gz`` |
| ``/opt/ml/output/data``                      | ``<step>/output/data`` (``SM_OUTPUT_DATA_DIR``) |

Every path above is rewritten in the command line, and the SM_* variables are set, so a
script's argparse defaults point at the same places. Inputs are hard-linked copies (cheap,
and a script cannot change an upstream step's files by writing to its own input).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from clinical_ml.io import DataError, make_model_tarball

from pipelines.local.entrypoints import REPO_ROOT, entry_point_for_image, find_in_repo, local_command, resolve_code


CODE_DIR = "/opt/ml/code"  # where our images hold this repository (pipelines/steps.py)


@dataclass
class StepPaths:
    """Where a step writes while running (``work``) and after success (``final``)."""
    final: Path
    work: Path

    @property
    def log(self) -> Path:
        return self.work / "logs" / "step.log"


def link_tree(src: Path, dest: Path) -> None:
    """Materialize ``src`` (file or folder) at ``dest`` with hard links, copying across devices."""
    src = Path(src)
    if src.is_dir():
        def _copy(a: str, b: str) -> None:
            try:
                os.link(a, b)
            except OSError:
                shutil.copy2(a, b)
        shutil.copytree(src, dest, copy_function=_copy, symlinks=False, dirs_exist_ok=True)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest / src.name)
        except OSError:
            shutil.copy2(src, dest / src.name)


def rewrite(value: str, mapping: list[tuple[str, str]]) -> str:
    """Replace container path prefixes by local ones (longest prefix first, whole components)."""
    for container, local in mapping:
        value = re.sub(re.escape(container.rstrip("/")) + r"(?=/|$|[\s,;:=\"'])", local.replace("\\", "\\\\"), value)
    return value


def _mapping(pairs: dict[str, Path]) -> list[tuple[str, str]]:
    return sorted(((k, str(v)) for k, v in pairs.items() if k), key=lambda kv: -len(kv[0]))


def _source(uri: str, localize: Callable[[str], str], what: str) -> Path:
    p = Path(localize(uri))
    if uri.startswith("s3://") and not p.exists():
        raise DataError(f"{what}: {uri} is not in the local S3 stand-in (expected {p}); "
                        "put the data there or pass --data / a --param pointing at a local folder")
    if not p.exists():
        raise DataError(f"{what}: {p} does not exist")
    return p


def run_command(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float | None,
                on_line: Callable[[str], None] | None = None) -> int:
    """Run ``cmd`` with stdout+stderr appended to ``log``; ``on_line`` sees each line (progress).

    The step dies with this process (PR_SET_PDEATHSIG, even on SIGKILL) and is recorded in
    ``step.pid`` beside the log while it runs, so a resume finds a stale one (steproc.py)."""
    from pipelines.local import steproc  # noqa: PLC0415

    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    pid_file = log.parent / steproc.PID_FILE
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=steproc.die_with_parent())
        try:
            steproc.write_pid(pid_file, proc.pid)
            assert proc.stdout is not None
            buf = b""
            while True:
                chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                if on_line:
                    buf = (buf + chunk)[-4096:]
                    last = re.split(rb"[\r\n]+", buf.strip())[-1] if buf.strip() else b""
                    on_line(last.decode("utf-8", "replace"))
                if timeout and time.monotonic() - start > timeout:
                    proc.kill()
                    f.write(f"\n[local runner] killed after MaxRuntimeInSeconds={timeout:.0f}\n".encode())
                    break
            return proc.wait()
        except BaseException:
            # Ctrl-C / runner killed: take the step's whole process group down with it
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass
            proc.wait()
            raise
        finally:
            pid_file.unlink(missing_ok=True)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "CLINICAL_ML_BACKEND": "local"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


# -- Processing ---------------------------------------------------------------------------

def prepare_processing(args: dict[str, Any], paths: StepPaths, localize) -> tuple[list[str], dict[str, str], dict[str, Path]]:
    """Materialize inputs, create output folders; return (command, env, outputs by name)."""
    app = args.get("AppSpecification", {})
    entry_point_for_image(app.get("ImageUri", ""))
    pairs: dict[str, Path] = {}
    inputs: dict[str, Path] = {}
    in_layout, out_layout = processing_layout(args, paths)
    for inp, local, dest in in_layout:
        name = inp["InputName"]
        uri = str(inp["S3Input"]["S3Uri"])
        if name == "code":
            src = resolve_code(uri, localize)
        else:
            src = _source(uri, localize, f"input {name!r}")
        link_tree(src, dest)
        pairs[local] = dest
        inputs[name] = dest
    outputs: dict[str, Path] = {}
    for name, local, dest in out_layout:
        dest.mkdir(parents=True, exist_ok=True)
        outputs[name] = dest
        pairs[local] = dest
    pairs["/opt/ml/processing"] = paths.work
    pairs.setdefault(CODE_DIR, REPO_ROOT)
    mapping = _mapping(pairs)
    cmd = [rewrite(str(c), mapping) for c in (app.get("ContainerEntrypoint") or [])]
    cmd += [rewrite(str(c), mapping) for c in (app.get("ContainerArguments") or [])]
    if not cmd:
        raise DataError("processing step has no ContainerEntrypoint; the local runner cannot run the image's default command")
    env = {k: rewrite(str(v), mapping) for k, v in (args.get("Environment") or {}).items()}
    env["CLINICAL_ML_PROCESSING_DIR"] = str(paths.work)
    for name, dest in outputs.items():
        env[f"SM_PROCESSING_OUTPUT_{_env_name(name)}"] = str(dest)
    for name, dest in inputs.items():
        env[f"SM_PROCESSING_INPUT_{_env_name(name)}"] = str(dest)
    return local_command(cmd), env, outputs


def processing_layout(args: dict[str, Any], paths: StepPaths) -> tuple[list[tuple[dict, str, Path]],
                                                                       list[tuple[str, str, Path]]]:
    """Where each input and output lives: ``(input, container path, step folder path)`` and
    ``(output name, container path, step folder path)`` (host runs and container mounts alike)."""
    ins = []
    for inp in args.get("ProcessingInputs", []):
        name = inp["InputName"]
        if "S3Input" not in inp:
            raise DataError(f"processing input {name!r}: only S3Input is supported locally "
                            "(DatasetDefinition needs Athena/Redshift)")
        local = str(inp["S3Input"].get("LocalPath", f"/opt/ml/processing/input/{name}"))
        # where the container would see it (input/tasks/train: a script may name input/tasks)
        dest = (paths.work / local[len("/opt/ml/processing/"):] if local.startswith("/opt/ml/processing/")
                else paths.work / "input" / name)
        ins.append((inp, local, dest))
    outs = []
    for out in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
        name = out["OutputName"]
        outs.append((name, str(out.get("S3Output", {}).get("LocalPath", f"/opt/ml/processing/output/{name}")),
                     paths.work / "output" / name))
    return ins, outs


def processing_hosts(args: dict[str, Any]) -> list[str]:
    """``algo-1 .. algo-N`` for the step's ProcessingResources InstanceCount."""
    n = int((args.get("ProcessingResources") or {}).get("ClusterConfig", {}).get("InstanceCount", 1) or 1)
    return [f"algo-{i + 1}" for i in range(max(1, n))]


def host_env(paths: StepPaths, hosts: list[str], host: str) -> dict[str, str]:
    """The instance ``host`` of a multi-instance job, as SageMaker describes it to the container
    (``/opt/ml/config/resourceconfig.json``): the runner plays the instances one after another,
    into the same output folders, as their uploads to one S3 prefix would merge."""
    conf = paths.work / "config" / f"resourceconfig-{host}.json"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(json.dumps({"current_host": host, "hosts": hosts}))
    return {"CLINICAL_ML_RESOURCE_CONFIG": str(conf), "SM_CURRENT_HOST": host, "SM_HOSTS": json.dumps(hosts)}


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


# -- Training -----------------------------------------------------------------------------

def _hp_value(v: Any) -> str:
    """Legacy estimators JSON-encode hyperparameters ('"ihm,los"'); ModelTrainer does not."""
    s = str(v)
    if len(s) >= 2 and s[0] == s[-1] == '"':
        try:
            return str(json.loads(s))
        except json.JSONDecodeError:
            pass
    return s


def _training_script(args: dict[str, Any], channels: dict[str, Path], localize) -> tuple[list[str] | None, bool]:
    """(command, script_mode): the training script and whether hyperparameters go on its CLI."""
    hps = {k: _hp_value(v) for k, v in (args.get("HyperParameters") or {}).items()}
    env = args.get("Environment") or {}
    program = hps.get("sagemaker_program") or env.get("SAGEMAKER_PROGRAM")
    if program:
        submit = hps.get("sagemaker_submit_directory") or env.get("SAGEMAKER_SUBMIT_DIRECTORY")
        cand = None
        if submit:
            local = Path(localize(submit))
            if local.is_dir() and (local / program).is_file():
                cand = local / program
            else:
                cand = find_in_repo(f"{submit.rstrip('/')}/{program}")
        cand = cand or find_in_repo(program)
        if cand is None:
            raise DataError(f"training script {program!r} (sagemaker_program) not found locally")
        return [sys.executable, str(cand)], True
    algo = args.get("AlgorithmSpecification", {})
    entry = [str(x) for x in (algo.get("ContainerEntrypoint") or []) + (algo.get("ContainerArguments") or [])]
    drivers = channels.get("sm_drivers")
    if drivers is not None or any("sm_drivers" in e for e in entry):
        conf = drivers / "sourcecode.json" if drivers is not None else None
        if conf is None or not conf.is_file():
            raise DataError("training step uses ModelTrainer's sm_drivers but its sourcecode.json is not "
                            "in the local S3 stand-in; build the definition with the runner (it keeps the uploads)")
        spec = json.loads(conf.read_text())
        script = spec.get("entry_script")
        code = channels.get("code")
        cand = code / script if code is not None and (code / script).is_file() else find_in_repo(script or "")
        if cand is None:
            raise DataError(f"training entry script {script!r} not found in the code channel or this repo")
        return [sys.executable, str(cand)], True
    if entry:
        return entry, False
    return None, False


def prepare_training(args: dict[str, Any], paths: StepPaths, localize) -> tuple[list[str], dict[str, str]]:
    count = int((args.get("ResourceConfig") or {}).get("InstanceCount", 1) or 1)
    if count > 1:  # instances of one training job talk to each other: they cannot run one by one
        raise DataError(f"training on {count} instances: the local runner runs a training job on one "
                        "instance; set its instance count parameter (e.g. ExtractorTrainingInstanceCount) "
                        "to 1, or test several with torchrun --nproc_per_node (tests/test_distributed_*.py)")
    algo = args.get("AlgorithmSpecification", {})
    entry_point_for_image(algo.get("TrainingImage", ""))
    channels: dict[str, Path] = {}
    for ch in args.get("InputDataConfig", []):
        name = ch["ChannelName"]
        src = ch.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
        if src is None:
            raise DataError(f"channel {name!r}: only S3DataSource channels are supported locally")
        dest = paths.work / "input" / "data" / name
        link_tree(_source(str(src), localize, f"channel {name!r}"), dest)
        channels[name] = dest
    model_dir = paths.work / "model"
    out_data = paths.work / "output" / "data"
    model_dir.mkdir(parents=True, exist_ok=True)
    out_data.mkdir(parents=True, exist_ok=True)
    pairs: dict[str, Path] = {f"/opt/ml/input/data/{k}": v for k, v in channels.items()}
    pairs.update({"/opt/ml/model": model_dir, "/opt/ml/output/data": out_data,
                  "/opt/ml/output": paths.work / "output", "/opt/ml/input": paths.work / "input",
                  CODE_DIR: channels.get("code", REPO_ROOT)})
    mapping = _mapping(pairs)
    cmd, script_mode = _training_script(args, channels, localize)
    if cmd is None:
        raise DataError("training step names no script (no sagemaker_program, sm_drivers or ContainerEntrypoint)")
    hps = {k: _hp_value(v) for k, v in (args.get("HyperParameters") or {}).items()}
    user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
    cmd = [rewrite(c, mapping) for c in cmd]
    if script_mode:
        for k, v in user_hps.items():
            cmd += [f"--{k}", v]
    env = {k: rewrite(str(v), mapping) for k, v in (args.get("Environment") or {}).items()}
    env.update({
        "SM_MODEL_DIR": str(model_dir), "SM_OUTPUT_DATA_DIR": str(out_data),
        "SM_OUTPUT_DIR": str(paths.work / "output"), "SM_INPUT_DIR": str(paths.work / "input"),
        "SM_CHANNELS": json.dumps(sorted(channels)), "SM_HPS": json.dumps(user_hps),
        "SM_NUM_GPUS": "0", "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_CURRENT_HOST": "algo-1", "SM_HOSTS": json.dumps(["algo-1"]),
    })
    for name, dest in channels.items():
        env[f"SM_CHANNEL_{_env_name(name)}"] = str(dest)
    for k, v in user_hps.items():
        env[f"SM_HP_{_env_name(k)}"] = v
    return local_command(cmd), env


def finish_training(paths: StepPaths) -> Path:
    """Pack SM_MODEL_DIR as model.tar.gz (what S3ModelArtifacts points to)."""
    model_dir = paths.work / "model"
    if not any(model_dir.iterdir()):
        raise DataError("training script wrote nothing to SM_MODEL_DIR")
    return make_model_tarball(model_dir, paths.work / "output" / "model.tar.gz")
