"""Execute a pipeline definition (JSON) step by step, as SageMaker would, on this machine.

Semantics kept from SageMaker Pipelines:
- order: a step runs after its ``DependsOn`` steps and every step its Arguments ``Get`` from;
  steps listed in a Condition step's ``IfSteps``/``ElseSteps`` run only on that branch, and a
  step whose dependency did not run does not run either;
- a failing step (or a Fail step) fails the execution: nothing new starts, the run ends
  non-zero with the step's message and log path;
- ``CacheConfig``: a step whose resolved arguments, input contents and code are unchanged
  reuses the earlier result (within ``ExpireAfter``);
- ``RetryPolicies``: retried only for the "infrastructure" failure kinds SageMaker retries
  (locally: the process was killed by a signal), never for a script's own error.
Local additions: a step writes into ``steps/.<name>.tmp-*`` and is renamed to ``steps/<name>``
only on success, so a killed run leaves no half-written outputs; ``resume_from`` reuses the
succeeded steps of an earlier execution (``--from-step``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clinical_ml.io import DataError, read_json, sha256_file, sha256_tree, write_json
from clinical_ml.registry import LocalRegistry, to_json
from clinical_ml.version import code_version

from pipelines.local import jobs, tuning
from pipelines.local.entrypoints import REPO_ROOT
from pipelines.local.expressions import Context, evaluate_condition, resolve, step_refs

RUNNABLE = {"Processing", "Training", "Tuning", "Condition", "Fail", "RegisterModel", "Model"}
CACHEABLE = {"Processing", "Training"}
# SageMaker's default cache key attributes per step type (docs: "Default cache key attributes by
# pipeline step type"): output locations are not part of the key, so per-execution output
# prefixes do not defeat caching.
CACHE_KEY_ATTRIBUTES = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations",
                 "Environment", "HyperParameters", "InputDataConfig"),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition"),
}


class StepFailed(Exception):
    def __init__(self, step: str, message: str, log: Path | None):
        super().__init__(message)
        self.step, self.message, self.log = step, message, log


# -- the graph ------------------------------------------------------------------------------

def flatten_steps(definition: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, bool]]]:
    """All steps (branch steps included) by name, and branch step -> (condition step, branch)."""
    steps: dict[str, dict[str, Any]] = {}
    branch: dict[str, tuple[str, bool]] = {}

    def add(step: dict[str, Any]) -> None:
        if step["Name"] in steps:
            raise DataError(f"definition has two steps named {step['Name']!r}")
        steps[step["Name"]] = step
        if step.get("Type") == "Condition":
            for key, outcome in (("IfSteps", True), ("ElseSteps", False)):
                for child in step.get("Arguments", {}).get(key, []):
                    add(child)
                    branch[child["Name"]] = (step["Name"], outcome)

    for s in definition.get("Steps", []):
        add(s)
    return steps, branch


def dependencies(steps: dict[str, dict[str, Any]], branch: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for name, s in steps.items():
        args = s.get("Arguments", {})
        if s.get("Type") == "Condition":
            args = {k: v for k, v in args.items() if k not in ("IfSteps", "ElseSteps")}
        d = set(s.get("DependsOn", [])) | step_refs(args) | step_refs(s.get("PropertyFiles", []))
        if name in branch:
            d.add(branch[name][0])
        unknown = d - set(steps)
        if unknown:
            raise DataError(f"step {name!r} depends on unknown step(s) {sorted(unknown)}")
        deps[name] = d - {name}
    return deps


def topological_order(steps: dict[str, dict[str, Any]], deps: dict[str, set[str]]) -> list[str]:
    """Kahn's algorithm; ties keep definition order so runs are reproducible."""
    order, done = [], set()
    pending = list(steps)
    while pending:
        ready = [n for n in pending if deps[n] <= done]
        if not ready:
            raise DataError(f"dependency cycle among steps {sorted(pending)}")
        for n in ready:
            order.append(n)
            done.add(n)
        pending = [n for n in pending if n not in done]
    return order


def descendants(name: str, deps: dict[str, set[str]]) -> set[str]:
    out, frontier = set(), {name}
    while frontier:
        nxt = {n for n, d in deps.items() if d & frontier} - out
        out |= nxt
        frontier = nxt
    return out


# -- parameters -------------------------------------------------------------------------------

def parameter_values(definition: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Defaults from the definition, overridden by ``--param Name=Value`` (typed like SageMaker)."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise DataError(f"unknown parameter(s) {sorted(unknown)}; the definition has {sorted(declared)}")
    values: dict[str, Any] = {}
    for name, p in declared.items():
        raw = overrides.get(name, p.get("DefaultValue"))
        if raw is None:
            raise DataError(f"parameter {name!r} has no default; pass --param {name}=VALUE")
        kind = p.get("Type", "String")
        try:
            if kind == "Integer":
                values[name] = int(raw)
            elif kind == "Float":
                values[name] = float(raw)
            elif kind == "Boolean":
                values[name] = raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1", "yes")
            else:
                values[name] = str(raw)
        except ValueError:
            raise DataError(f"parameter {name!r}: {raw!r} is not a valid {kind}") from None
        allowed = p.get("EnumValues")
        if allowed and values[name] not in allowed:
            raise DataError(f"parameter {name!r}: {values[name]!r} is not one of {allowed}")
    return values


# -- caching ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(text: str) -> dt.timedelta:
    """ISO 8601 duration as CacheConfig.ExpireAfter uses (P30D, PT1H, P1W...)."""
    m = _DURATION.match(text or "")
    if not m or not any(m.groups()):
        raise DataError(f"CacheConfig ExpireAfter {text!r} is not an ISO 8601 duration (e.g. P30D, PT12H)")
    y, mo, w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return dt.timedelta(days=365 * y + 30 * mo + 7 * w + d, hours=h, minutes=mi, seconds=s)


def _content_key(value: Any, memo: dict[str, str]) -> Any:
    """Arguments with every existing local path replaced by its content hash (run-independent)."""
    if isinstance(value, list):
        return [_content_key(v, memo) for v in value]
    if isinstance(value, dict):
        return {k: _content_key(v, memo) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("/") and len(value) < 4096:
        if value not in memo:
            p = Path(value)
            memo[value] = (f"sha256:{sha256_file(p)}" if p.is_file() else f"sha256-tree:{sha256_tree(p)}"
                           if p.is_dir() else value)
        return memo[value]
    return value


def source_hash(root: Path) -> str:
    """Hash of this repository's Python sources: the local stand-in for an image digest, so a
    change to a step script or to the domain code it imports invalidates cached steps."""
    h = hashlib.sha256()
    for pkg in ("clinical_ml", "processing", "training", "inference", "monitoring"):
        for p in sorted((root / pkg).rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()


def cache_key(step: dict[str, Any], args: dict[str, Any], work: Path, cmd: list[str] = (), code: str = "") -> str:
    """SageMaker's cache key (the step type's key attributes of the resolved arguments) plus
    input contents (local paths differ per run, contents do not), the command's files and the
    code version (SageMaker would see a new image digest)."""
    memo: dict[str, str] = {}
    h = hashlib.sha256()
    keyed = {k: v for k, v in args.items() if k in CACHE_KEY_ATTRIBUTES.get(step.get("Type"), ())}
    h.update(json.dumps({"type": step.get("Type"), "args": _content_key(keyed, memo),
                         "cmd": _content_key([c for c in cmd if not c.startswith(str(work))], memo),
                         "code": code}, sort_keys=True, default=str).encode())
    inputs = work / "input"
    h.update(sha256_tree(inputs).encode() if inputs.is_dir() else b"-")
    return h.hexdigest()


# -- the execution ------------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    type: str
    status: str                 # Succeeded | Failed | Cached | Reused | NotExecuted | NotStarted
    duration_s: float = 0.0
    message: str = ""
    log: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""


@dataclass
class Execution:
    definition: dict[str, Any]
    run_dir: Path
    execution_id: str
    parameters: dict[str, Any]
    root: Path                          # runs/ (holds s3/, registry/, cache/)
    pipeline_name: str = "clinical-ml"
    resume_from: Path | None = None     # an earlier run folder whose succeeded steps may be reused
    rerun: set[str] = field(default_factory=set)   # steps never reused from resume_from
    use_cache: bool = True
    progress: Callable[[str, str, str], None] = lambda step, state, detail: None
    extra_env: dict[str, str] = field(default_factory=dict)
    results: dict[str, StepResult] = field(default_factory=dict)
    failure: "StepFailed | None" = None
    code_version: str = ""              # the git commit (clinical_ml.version), for the audit trail
    containers: Any = None              # a pipelines.local.containers.ContainerRuntime: jobs run in their images
    _source_hash: str | None = None     # the cache keys' code component (source_hash)

    # paths ---------------------------------------------------------------------------------
    @property
    def s3_root(self) -> Path:
        return self.root / "s3"

    @property
    def registry(self) -> LocalRegistry:
        return LocalRegistry(self.root / "registry")

    def localize(self, uri: str) -> str:
        if uri.startswith("s3://"):
            return str(self.s3_root / uri[len("s3://"):])
        if uri.startswith("file://"):
            return uri[len("file://"):]
        return uri

    def env(self) -> dict[str, str]:
        return {"CLINICAL_ML_BACKEND": "local", "CLINICAL_ML_REGISTRY": str(self.root / "registry"),
                "CLINICAL_ML_RUN_DIR": str(self.run_dir), "CLINICAL_ML_EXECUTION_ID": self.execution_id,
                "CLINICAL_ML_S3_ROOT": str(self.s3_root), "HF_HUB_OFFLINE": "1",
                "CLINICAL_ML_TUNING_DIR": str(self.root / "tuning"),
                "CLINICAL_ML_AUDIT_FILE": str(self.run_dir / "audit.jsonl"), **self.extra_env}

    def audit(self, event: str, outcome: str = "ok", **details: Any) -> None:
        try:
            from clinical_ml.audit import AuditTrail
        except ImportError:  # the audit module is optional for the runner
            return
        AuditTrail(self.run_dir / "audit.jsonl").append(event, outcome, actor="local-runner",
                                                         execution_id=self.execution_id, **details)

    # run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        steps, branch = flatten_steps(self.definition)
        deps = dependencies(steps, branch)
        order = topological_order(steps, deps)
        unsupported = {n: s.get("Type") for n, s in steps.items() if s.get("Type") not in RUNNABLE}
        if unsupported:
            raise DataError(f"step type(s) the local runner cannot run: {unsupported}")
        now = dt.datetime.now(dt.timezone.utc)
        ctx = Context(parameters=self.parameters, execution={
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": f"arn:aws:sagemaker:local:000000000000:pipeline/{self.pipeline_name}/execution/{self.execution_id}",
            "PipelineName": self.pipeline_name, "PipelineExperimentName": self.pipeline_name,
            "StartDateTime": now.isoformat(), "CurrentDateTime": now.isoformat()},
            localize=self.localize)
        (self.run_dir / "steps").mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / "definition.json", self.definition)
        self.code_version = code_version()
        self.audit("pipeline_started", parameters=self.parameters, code_version=self.code_version,
                   definition_sha256=hashlib.sha256(json.dumps(self.definition, sort_keys=True).encode()).hexdigest())
        failed: StepFailed | None = None
        for name in order:
            step = steps[name]
            skip = self._not_executed(name, deps, branch)
            if failed is not None and not skip:
                self.results[name] = StepResult(name, step["Type"], "NotStarted")
                continue
            if skip:
                self.results[name] = StepResult(name, step["Type"], "NotExecuted", message=skip)
                self.progress(name, "NotExecuted", skip)
                continue
            ctx.execution["CurrentDateTime"] = dt.datetime.now(dt.timezone.utc).isoformat()
            try:
                self.results[name] = self._run_step(step, ctx)
            except StepFailed as e:
                failed = e
                self.results[name] = StepResult(name, step["Type"], "Failed", message=e.message,
                                                log=str(e.log or ""))
                self.progress(name, "Failed", f"{e.message} (log: {e.log})")
                self.audit("step_finished", "failed", step=name, message=e.message[:500])
        self.audit("pipeline_finished", "failed" if failed else "ok")
        self.failure = failed
        return failed is None

    def _not_executed(self, name: str, deps: dict[str, set[str]], branch: dict[str, tuple[str, bool]]) -> str:
        if name in branch:
            cond, outcome = branch[name]
            res = self.results[cond]
            if res.status in ("Succeeded", "Reused") and res.properties.get("Outcome") != str(outcome):
                return f"branch {'if' if outcome else 'else'} of {cond} not taken"
        for d in deps[name]:
            if self.results[d].status == "NotExecuted":
                return f"dependency {d} did not run"
        return ""

    # one step ------------------------------------------------------------------------------
    def _run_step(self, step: dict[str, Any], ctx: Context) -> StepResult:
        name, kind = step["Name"], step["Type"]
        self.progress(name, "Executing", kind)
        t0 = time.monotonic()
        reused = self._reuse(step, ctx)
        if reused is not None:
            reused.duration_s = time.monotonic() - t0
            self.progress(name, reused.status, f"{reused.duration_s:.1f}s")
            return reused
        self.audit("step_started", step=name, type=kind, code_version=self.code_version,
                   arguments_sha256=hashlib.sha256(json.dumps(step.get("Arguments", {}), sort_keys=True,
                                                              default=str).encode()).hexdigest())
        if kind == "Condition":
            args = step.get("Arguments", {})
            outcome = all(evaluate_condition(c, ctx) for c in args.get("Conditions", []))
            props = {"Outcome": str(outcome)}
            ctx.steps[name] = props
            self._write_status(self.run_dir / "steps" / name, step, "Succeeded", props, "")
            res = StepResult(name, kind, "Succeeded", time.monotonic() - t0, f"outcome {outcome}", properties=props)
        elif kind == "Fail":
            msg = resolve(step.get("Arguments", {}).get("ErrorMessage", ""), ctx)
            final = self.run_dir / "steps" / name
            log = final / "logs" / "step.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"FailStep {name}: {msg}\n")
            self._write_status(final, step, "Failed", {}, str(msg))
            raise StepFailed(name, str(msg) or f"Fail step {name}", log)
        elif kind == "RegisterModel":
            res = self._register(step, ctx, t0)
        elif kind == "Tuning":
            res = self._run_tuning(step, ctx, t0)
        elif kind == "Model":
            args = resolve(step.get("Arguments", {}), ctx)
            props = {"ModelName": f"{name}-{self.execution_id}", "ModelArn":
                     f"arn:aws:sagemaker:local:000000000000:model/{name}-{self.execution_id}".lower(),
                     "PrimaryContainer": args.get("PrimaryContainer", {})}
            ctx.steps[name] = props
            self._write_status(self.run_dir / "steps" / name, step, "Succeeded", props, "")
            res = StepResult(name, kind, "Succeeded", time.monotonic() - t0, properties=props)
        else:
            res = self._run_job(step, ctx, t0)
        self.audit("step_finished", step=name, status=res.status, duration_s=round(res.duration_s, 3))
        self.progress(name, res.status, f"{res.duration_s:.1f}s")
        return res

    def _write_status(self, folder: Path, step: dict[str, Any], status: str, props: dict[str, Any], msg: str,
                      key: str = "") -> None:
        write_json(folder / "status.json", {"step": step["Name"], "type": step["Type"], "status": status,
                                            "message": msg, "properties": to_json(props), "cache_key": key,
                                            "step_definition_sha256": _step_sha(step),
                                            "execution_id": self.execution_id,
                                            "finished": dt.datetime.now(dt.timezone.utc).isoformat()})

    def _reuse(self, step: dict[str, Any], ctx: Context) -> StepResult | None:
        """Reuse a succeeded step of the execution we resume from (same step definition)."""
        name = step["Name"]
        if self.resume_from is None or name in self.rerun or step["Type"] == "Fail":
            return None
        src = self.resume_from / "steps" / name
        st = _read_status(src)
        if not st or st["status"] not in ("Succeeded", "Cached", "Reused") or st.get("step_definition_sha256") != _step_sha(step):
            return None
        final = self.run_dir / "steps" / name
        if step["Type"] in CACHEABLE:
            _copy_step(src, final)
        props = self._properties_for(step, final, resolve(step.get("Arguments", {}), ctx)) \
            if step["Type"] in CACHEABLE else st["properties"]
        self._publish(step, ctx, final, props)
        self._write_status(final, step, "Reused", props, f"reused from {self.resume_from.name}", st.get("cache_key", ""))
        return StepResult(name, step["Type"], "Reused", message=f"from {self.resume_from.name}", properties=props,
                          log=str(final / "logs" / "step.log"))

    def _run_job(self, step: dict[str, Any], ctx: Context, t0: float) -> StepResult:
        name, kind = step["Name"], step["Type"]
        final = self.run_dir / "steps" / name
        work = self._work_dir(name)
        paths = jobs.StepPaths(final=final, work=work)
        if final.exists():
            shutil.rmtree(final)
        try:
            args = resolve(step.get("Arguments", {}), ctx)
            if kind == "Processing":
                cmd, env, _ = jobs.prepare_processing(args, paths, self.localize)
                timeout = (args.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            else:
                cmd, env = jobs.prepare_training(args, paths, self.localize)
                timeout = (args.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            key = cache_key(step, args, work, cmd, self._job_code(args, kind))
            hit = self._cache_lookup(step, key)
            if hit is not None:
                shutil.rmtree(work, ignore_errors=True)
                _copy_step(hit, final)
                props = self._properties_for(step, final, args)
                self._publish(step, ctx, final, props)
                self._write_status(final, step, "Cached", props, f"cache hit: {hit.parent.parent.name}", key)
                return StepResult(name, kind, "Cached", time.monotonic() - t0, f"cache hit from {hit.parent.parent.name}",
                                  str(final / "logs" / "step.log"), props, key)
            hosts = jobs.processing_hosts(args) if kind == "Processing" else ["algo-1"]
            rc = 0
            for host in hosts:
                if len(hosts) > 1:
                    self.progress(name, "Running", f"instance {host} of {len(hosts)}")
                if self.containers is not None:
                    job = f"{name}-{self.execution_id}"
                    ccmd = (self.containers.processing(args, paths, job, host, hosts) if kind == "Processing"
                            else self.containers.training(args, paths, job))
                    try:
                        rc = self._attempts(step, ccmd, self.containers.client_env(), paths, timeout)
                    finally:
                        self.containers.finish(ccmd, paths)
                else:
                    rc = self._attempts(step, cmd, {**env, **jobs.host_env(paths, hosts, host)} if kind == "Processing"
                                        else env, paths, timeout)
                if rc != 0:
                    break
            if rc != 0:
                raise StepFailed(name, f"{kind} step {name} failed (exit code {rc}): {_last_error(paths.log)}",
                                 self._keep_failed_log(paths))
            if kind == "Training":
                jobs.finish_training(paths)
            props = self._properties_for(step, final, args)
            self._write_status(work, step, "Succeeded", props, "", key)
            os.replace(work, final)  # the commit point: the step exists only once complete
            self._publish(step, ctx, final, props)
            self._remember(step, key, final)
            return StepResult(name, kind, "Succeeded", time.monotonic() - t0, "", str(final / "logs" / "step.log"), props, key)
        except StepFailed:
            raise
        except DataError as e:
            raise StepFailed(name, str(e), self._keep_failed_log(paths, str(e))) from None
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    def _attempts(self, step: dict[str, Any], cmd: list[str], env: dict[str, str], paths: jobs.StepPaths,
                  timeout: float | None) -> int:
        """Run with the step's RetryPolicies, retrying only infrastructure-like failures."""
        policies = step.get("RetryPolicies", [])
        infra = [p for p in policies if any(t in ("SageMaker.JOB_INTERNAL_ERROR", "Step.SERVICE_FAULT",
                                                  "SageMaker.CAPACITY_ERROR") for t in p.get("ExceptionType", []))]
        max_attempts = max([int(p.get("MaxAttempts", 1)) for p in infra] or [1])
        interval = min(max([float(p.get("IntervalSeconds", 1)) for p in infra] or [1]), 5.0)
        full_env = jobs.base_env({**self.env(), **env})
        name = step["Name"]
        for attempt in range(1, max_attempts + 1):
            rc = jobs.run_command(cmd, full_env, paths.work, paths.log,
                                  float(timeout) if timeout else None,
                                  on_line=lambda line: self.progress(name, "Running", line))
            killed = rc < 0 and rc != -signal.SIGINT
            if rc == 0 or not killed or attempt == max_attempts:
                return rc
            self.progress(name, "Retrying", f"attempt {attempt + 1}/{max_attempts} after signal {-rc}")
            time.sleep(interval)
        return rc

    def _keep_failed_log(self, paths: jobs.StepPaths, message: str = "") -> Path:
        """A failed step keeps only its logs and status (no half-written outputs)."""
        dest = paths.final / "logs"
        dest.mkdir(parents=True, exist_ok=True)
        if paths.log.exists():
            shutil.copy2(paths.log, dest / "step.log")
        if message:
            with open(dest / "step.log", "a") as f:
                f.write(f"[local runner] {message}\n")
        write_json(paths.final / "status.json", {"step": paths.final.name, "status": "Failed", "message": message,
                                                 "execution_id": self.execution_id})
        return dest / "step.log"

    def _work_dir(self, name: str) -> Path:
        """Where a step writes until it succeeds (renamed to ``steps/<name>`` then)."""
        return self.run_dir / "steps" / f".{name}.tmp-{os.getpid()}-{int(time.time() * 1000) % 10**9}"

    def _job_code(self, args: dict[str, Any], kind: str) -> str:
        """The cache key's code component: the sources, and in containers the image's id too."""
        if self.containers is None:
            return self._code_hash()
        spec = args.get("AppSpecification") if kind == "Processing" else args.get("AlgorithmSpecification")
        image = str((spec or {}).get("ImageUri" if kind == "Processing" else "TrainingImage", ""))
        return f"{self._code_hash()}:container:{self.containers.image_id(image)}"

    def _code_hash(self) -> str:
        if self._source_hash is None:
            self._source_hash = source_hash(REPO_ROOT)
        return self._source_hash

    def _remember(self, step: dict[str, Any], key: str, final: Path) -> None:
        """Record a succeeded cacheable step for later cache hits (CacheConfig.Enabled)."""
        if step.get("CacheConfig", {}).get("Enabled"):
            write_json(self.root / "cache" / f"{key}.json", {"step_dir": str(final), "created": time.time()})

    def _cache_lookup(self, step: dict[str, Any], key: str) -> Path | None:
        cfg = step.get("CacheConfig") or {}
        if not (self.use_cache and cfg.get("Enabled")):
            return None
        rec_file = self.root / "cache" / f"{key}.json"
        if not rec_file.is_file():
            return None
        rec = read_json(rec_file)
        if cfg.get("ExpireAfter") and time.time() - rec["created"] > parse_duration(cfg["ExpireAfter"]).total_seconds():
            return None
        src = Path(rec["step_dir"])
        st = _read_status(src)
        if not st or st.get("cache_key") != key or st["status"] not in ("Succeeded", "Cached", "Reused"):
            return None
        return src

    # properties (Describe*-like) -----------------------------------------------------------
    def _properties_for(self, step: dict[str, Any], final: Path, args: dict[str, Any]) -> dict[str, Any]:
        name = step["Name"]
        job = f"{name}-{self.execution_id}"
        if step["Type"] == "Processing":
            outs = []
            for o in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
                s3 = dict(o.get("S3Output", {}))
                s3["S3Uri"] = str(final / "output" / o["OutputName"])
                outs.append({**o, "S3Output": s3})
            return {"ProcessingJobName": job, "ProcessingJobStatus": "Completed",
                    "ProcessingJobArn": f"arn:aws:sagemaker:local:000000000000:processing-job/{job}".lower(),
                    "AppSpecification": args.get("AppSpecification", {}),
                    "ProcessingInputs": args.get("ProcessingInputs", []),
                    "ProcessingOutputConfig": {"Outputs": outs}, "Environment": args.get("Environment", {})}
        return {"TrainingJobName": job, "TrainingJobStatus": "Completed",
                "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{job}".lower(),
                "ModelArtifacts": {"S3ModelArtifacts": str(final / "output" / "model.tar.gz")},
                "HyperParameters": args.get("HyperParameters", {}),
                "AlgorithmSpecification": args.get("AlgorithmSpecification", {}),
                "OutputDataConfig": args.get("OutputDataConfig", {}), "FinalMetricDataList": []}

    def _publish(self, step: dict[str, Any], ctx: Context, final: Path, props: dict[str, Any]) -> None:
        """Make the step's results visible: properties, property files and the local S3 stand-in."""
        name = step["Name"]
        ctx.steps[name] = props
        for pf in step.get("PropertyFiles", []):
            ctx.property_files[(name, pf["PropertyFileName"])] = final / "output" / pf["OutputName"] / pf["FilePath"]
        args = resolve(step.get("Arguments", {}), ctx)
        if step["Type"] == "Processing":
            for o in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
                uri = o.get("S3Output", {}).get("S3Uri", "")
                if isinstance(uri, str) and uri.startswith("s3://"):
                    _link(Path(self.localize(uri)), final / "output" / o["OutputName"])
        elif step["Type"] == "Training":
            base = args.get("OutputDataConfig", {}).get("S3OutputPath", "")
            if isinstance(base, str) and base.startswith("s3://"):
                _link(Path(self.localize(base.rstrip("/"))) / props["TrainingJobName"] / "output",
                      final / "output")

    # tuning --------------------------------------------------------------------------------
    def _run_tuning(self, step: dict[str, Any], ctx: Context, t0: float) -> StepResult:
        """A tuning job: its trials are training jobs under ``steps/<name>/trials/<trial>/``,
        their models published at ``<S3OutputPath>/<trial>/output/model.tar.gz``."""
        name = step["Name"]
        final = self.run_dir / "steps" / name
        work = self._work_dir(name)
        if final.exists():
            shutil.rmtree(final)
        try:
            args = resolve(step.get("Arguments", {}), ctx)
            key = cache_key(step, args, work, [], self._job_code(args.get("TrainingJobDefinition") or {}, "Training"))
            hit = self._cache_lookup(step, key)
            if hit is not None:  # as on SageMaker: the earlier tuning job's properties, its trials' names
                props = _read_status(hit)["properties"]
                _copy_step(hit, final)
                ctx.steps[name] = props
                self._write_status(final, step, "Cached", props, f"cache hit: {hit.parent.parent.name}", key)
                return StepResult(name, "Tuning", "Cached", time.monotonic() - t0,
                                  f"cache hit from {hit.parent.parent.name}", str(final / "logs" / "step.log"), props, key)
            definition = args.get("TrainingJobDefinition") or {}
            out_base = str((definition.get("OutputDataConfig") or {}).get("S3OutputPath", "")).rstrip("/")
            timeout = (definition.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            job = f"tune-{self.execution_id}"

            def run_trial(trial: tuning.Trial, trial_args: dict[str, Any], extra: dict[str, str]):
                paths = jobs.StepPaths(final=final / "trials" / trial.name, work=work / "trials" / trial.name)
                cmd, env = jobs.prepare_training(trial_args, paths, self.localize)
                if self.containers is not None:
                    cmd = self.containers.training(trial_args, paths, f"{job}-{trial.name}", extra)
                    env, extra = self.containers.client_env(), {}
                try:
                    rc = jobs.run_command(cmd, jobs.base_env({**self.env(), **env, **extra}), paths.work, paths.log,
                                          float(timeout) if timeout else None)
                finally:
                    if self.containers is not None:
                        self.containers.finish(cmd, paths)
                text = paths.log.read_text(errors="replace") if paths.log.exists() else ""
                if rc != 0:
                    return rc, text, ""
                try:
                    jobs.finish_training(paths)
                except DataError as e:
                    return 1, f"{text}\n{e}", ""
                return 0, text, (f"{out_base}/{trial.name}/output/model.tar.gz" if out_base.startswith("s3://")
                                 else str(paths.final / "output" / "model.tar.gz"))

            trials = tuning.run(args, job, run_trial, progress=lambda msg: self.progress(name, "Running", msg))
            record = tuning.describe(args, job, trials, f"arn:aws:sagemaker:local:000000000000:hyper-parameter-tuning-job/{job}")
            log = work / "logs" / "step.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n".join(tuning.trial_table(record)) + "\n")
            if record["HyperParameterTuningJobStatus"] != "Completed":
                first = next((t.failure for t in trials if t.failure), "")
                raise StepFailed(name, f"Tuning step {name}: every one of {len(trials)} trials failed "
                                       f"(first: {first}); trial logs under {final / 'trials'}",
                                 self._keep_failed_log(jobs.StepPaths(final=final, work=work)))
            write_json(work / "output" / "tuning.json", record)
            self._write_status(work, step, "Succeeded", record, "", key)
            os.replace(work, final)  # the commit point
            ctx.steps[name] = record
            for t in trials:
                if t.status == "Completed" and out_base.startswith("s3://"):
                    _link(Path(self.localize(out_base)) / t.name, final / "trials" / t.name)
            write_json(self.root / "tuning" / f"{job}.json", record)
            self._remember(step, key, final)
            best = record["BestTrainingJob"]
            return StepResult(name, "Tuning", "Succeeded", time.monotonic() - t0,
                              f"best {best['TrainingJobName']}: {best['FinalHyperParameterTuningJobObjectiveMetric']['Value']:.4f}",
                              str(final / "logs" / "step.log"), record, key)
        except DataError as e:
            raise StepFailed(name, str(e), self._keep_failed_log(jobs.StepPaths(final=final, work=work), str(e))) from None
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)

    # register ------------------------------------------------------------------------------
    def _register(self, step: dict[str, Any], ctx: Context, t0: float) -> StepResult:
        name = step["Name"]
        args = resolve(step.get("Arguments", {}), ctx)
        group = args.get("ModelPackageGroupName")
        containers = args.get("InferenceSpecification", {}).get("Containers", [])
        if not group or not containers:
            raise StepFailed(name, "RegisterModel step needs ModelPackageGroupName and InferenceSpecification.Containers", None)
        model_data = self.localize(str(containers[0].get("ModelDataUrl", "")))
        metrics = _localize_tree(args.get("ModelMetrics") or {}, self.localize)
        meta = dict(args.get("CustomerMetadataProperties") or {})
        meta.setdefault("pipeline_execution_id", self.execution_id)
        reg = self.registry
        try:
            reg.create_model_package_group(group, args.get("ModelPackageGroupDescription", ""))
            arn = reg.create_model_package(group, model_data, args.get("ModelApprovalStatus", "PendingManualApproval"),
                                           model_metrics=metrics, customer_metadata=meta,
                                           image_uri=containers[0].get("Image"),
                                           description=args.get("ModelPackageDescription", ""))
        except DataError as e:
            final = self.run_dir / "steps" / name
            log = final / "logs" / "step.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"{e}\n")
            raise StepFailed(name, str(e), log) from None
        props = reg.describe_model_package(arn)
        ctx.steps[name] = props
        self._write_status(self.run_dir / "steps" / name, step, "Succeeded", props, "")
        self.audit("model_registered", group=group, arn=arn, approval=props["ModelApprovalStatus"],
                   model_data_sha256=_content_key(model_data, {}))
        if props["ModelApprovalStatus"] == "Approved":
            self.audit("model_approved", arn=arn, by="ModelApprovalStatus parameter")
        return StepResult(name, "RegisterModel", "Succeeded", time.monotonic() - t0, arn, properties=to_json(props))


def _step_sha(step: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(step, sort_keys=True, default=str).encode()).hexdigest()


def _read_status(folder: Path) -> dict[str, Any] | None:
    f = folder / "status.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def _copy_step(src: Path, final: Path) -> None:
    """Hard-link copy of a finished step folder, committed by rename like a fresh run."""
    tmp = final.with_name(f".{final.name}.tmp-copy-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    jobs.link_tree(src, tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    tmp = link.with_name(f".{link.name}.lnk-{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _localize_tree(value: Any, localize: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {k: _localize_tree(v, localize) for k, v in value.items()}
    if isinstance(value, list):
        return [_localize_tree(v, localize) for v in value]
    if isinstance(value, str) and value.startswith("s3://"):
        return localize(value)
    return value


def _last_error(log: Path, lines: int = 3) -> str:
    """The last non-empty lines of a step log: usually the exception or DataError message."""
    if not log.exists():
        return "no log"
    tail = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    return " | ".join(tail)[-600:]
