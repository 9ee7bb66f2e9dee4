"""``make demo`` (``clinical-ml run-local --demo``): the whole loop on one machine.

1. synthetic MIMIC-III with notes (``clinical-ml synth``), unless ``--data DIR``; the
   extractor also trains and is scored on the real annotated corpora of ``--corpora`` (default:
   ``../shared/data`` beside the repository when it exists; ``none``: synthetic notes only),
   passed as the AnnotatedCorporaUri parameter;
2. execution 1 (Trigger=manual) of the pipeline definition: tasks, notes, training,
   evaluation gate, registry, drift baseline, deploy (the local endpoint), drift schedule;
3. normal traffic, then shifted traffic (``clinical-ml drift-scenarios``) to the endpoint, through
   the SageMaker runtime API (boto3 ``invoke_endpoint`` with the local ``endpoint_url``, an
   InferenceId per request);
4. the drift job (from the schedule the pipeline wrote) over each traffic window;
5. the drift alarms evaluated on the drift metrics (``clinical_ml.monitor.loop``): ALARM ->
   storm guard -> execution 2 with Trigger=drift and the drift window;
6. ``summary.json`` + ``report.html`` in the demo folder, ``runs/latest`` pointing at it.

A piece that is missing or fails stops the demo with a message naming it; nothing is faked.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, read_json
from clinical_ml.registry import LocalRegistry, to_json

from pipelines.local.demo_endpoint import (DemoError, endpoint_info, endpoint_url, load_schedule, send_traffic,
                                           serving_model, stop_endpoint, wait_for_capture)
from pipelines.local.demo_notes import notes_summary, sharding_check
from pipelines.local.demo_story import (ERA_START, held_out_rows, later_period_tasks, promotion, step_statuses,
                                        timeline_entry, write_traffic)
from pipelines.local.demo_training import DEMO_TUNING, mlflow_summary, summary_lines, tracking_uri, tuning_summary
from pipelines.local.entrypoints import REPO_ROOT
from pipelines.local.report import write_report
from pipelines.local.runner import (CORPORA_PARAMETER, DATA_PARAMETER, build_definition, corpora_value, parse_params,
                                    point_latest, run_execution)

# 1,200 patients, 40% of them in a later (MetaVision) era: execution 1 trains on the 720 early
# ones, the drift retraining on the 480 later ones (pipelines/local/demo_story.py). Fewer leave a
# window's validation split without a 30-day readmission (1,000 at 50%: 0 of 86 early ones), and
# the notes of fewer patients cost the extractor real-text F1 (800 vs 1,000 patients without
# eras: 0.48 against 0.63)
DEMO_PATIENTS = int(os.environ.get("CLINICAL_ML_DEMO_PATIENTS", "1200"))
TRAFFIC_ROWS = int(os.environ.get("CLINICAL_ML_DEMO_ROWS", "400"))
LATER_FRACTION = float(os.environ.get("CLINICAL_ML_DEMO_LATER_FRACTION", "0.4"))
ALARM_THRESHOLD = 1.0  # drift score above which the drift alarms fire (clinical_ml.monitor.alarms)
DRIFT_TUNING = {"TuningMaxJobs": os.environ.get("CLINICAL_ML_DEMO_DRIFT_TRIALS", "2")}
# the promotion margins for the demo's small new period: its ~60 held-out ihm stays give the
# AUROC difference a 95% CI about 0.15 wide on either side (50 stays: +0.057, CI -0.079 to
# +0.231), too wide for the pipeline default's 0.02 non-inferiority margin unless the challenger
# is clearly better; the demo tests "not clearly worse" at 0.10 (AUROC) and 0.10 (ECE)
DEMO_AUROC_MARGIN = os.environ.get("CLINICAL_ML_DEMO_AUROC_MARGIN", "0.10")
DEMO_ECE_MARGIN = os.environ.get("CLINICAL_ML_DEMO_ECE_MARGIN", "0.10")
# the extractor is the demo's longest step on 2 CPU cores: train on fewer notes than the
# pipeline default (a SageMaker run gets a GPU); any --param ExtractorMaxTrainDocs wins
DEMO_EXTRACTOR_DOCS = os.environ.get("CLINICAL_ML_DEMO_EXTRACTOR_DOCS", "400")
# of which at most 200 synthetic notes: with 400, BC5CDR/MACCROBAT/NCBI validation F1 read
# 0.847/0.573/0.798 (all labels, lenient); with 200, 0.863/0.673/0.850, synthetic 0.816 -> 0.848
DEMO_EXTRACTOR_SYNTHETIC_DOCS = os.environ.get("CLINICAL_ML_DEMO_EXTRACTOR_SYNTHETIC_DOCS", "200")
# and for a fixed time: TrainExtractor may take 5.5 of the demo's 15 minutes (model load,
# tokenizing and validation included), so the training loop gets 270 s: about 155 steps of
# full fine-tuning on 2 busy AVX2 cores, 233 on a quiet AVX-512 EPYC, 387-408 there under bf16
# autocast (AVX512-BF16; clinical_ml.extraction.precision) (ExtractNotes needs 1.5 minutes, the 4 tuning trials 1.2). Real-
# text F1 rises steeply with steps here: at 240 s the gate read 0.749 (BC5CDR MEDICATION
# 0.709), at 300 s 0.797 (0.840), but that fresh-clone demo took 15m40
DEMO_EXTRACTOR_SECONDS = os.environ.get("CLINICAL_ML_DEMO_EXTRACTOR_SECONDS", "270")
DEMO_EXTRACTOR = {"ExtractorMaxTrainDocs": DEMO_EXTRACTOR_DOCS, "ExtractorMaxSyntheticDocs": DEMO_EXTRACTOR_SYNTHETIC_DOCS,
                  "ExtractorTrainSeconds": DEMO_EXTRACTOR_SECONDS}  # also bench_llm's encoder training
# the gate with real corpora reads the mean lenient entity F1 over them (all labels): the
# demo's full fine-tuning measured 0.797 there after 300 s (LoRA, before: 0.63-0.74 after
# 4-7 minutes; fitted rules baseline 0.71; untrained rules and a synthetic-only model
# 0.33-0.49), so the demo gates at the pipeline default, 0.70
DEMO_MIN_EXTRACTION_F1 = os.environ.get("CLINICAL_ML_DEMO_MIN_EXTRACTION_F1", "0.70")

# ExtractNotes runs the encoder over the cohort's notes: 2 instances (sharded by note hash) over
# the nursing notes (2,700 of the 5,600 synthetic notes, all short; both feature sets get notes
# from them: ihm those charted by 48 h, readmit all)
DEMO_NOTE_CATEGORIES = os.environ.get("CLINICAL_ML_DEMO_NOTE_CATEGORIES", "Nursing")
DEMO_EXTRACT_INSTANCES = os.environ.get("CLINICAL_ML_DEMO_EXTRACT_INSTANCES", "2")

# real annotated corpora (bc5cdr, ncbi-disease, maccrobat2020): the shared data beside the repository
SHARED_CORPORA = REPO_ROOT.parent / "shared" / "data"

# what the demo needs from the other parts of the project (path -> what it is)
REQUIRED = {
    "clinical_ml/synth/generate.py": "synthetic MIMIC-III generator (clinical-ml synth)",
    "pipelines/commands.py": "pipeline definition builder (build_definition)",
    "inference/deploy.py": "deploy step script (local backend starts clinical-ml serve)",
    "inference/serve.py": "local endpoint (clinical-ml serve)",
    "monitoring/scenarios.py": "traffic generator (clinical-ml drift-scenarios)",
    "monitoring/drift_job.py": "drift job",
    "clinical_ml/monitor/loop.py": "local alarm evaluation + storm guard",
}


def missing_pieces() -> list[str]:
    return [f"{p} ({what})" for p, what in REQUIRED.items() if not (REPO_ROOT / p).is_file()]


def _say(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def _cli(args: list[str], log: Path) -> None:
    """Run a clinical-ml subcommand as a subprocess, output to ``log``; raise naming it on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLINICAL_ML_BACKEND": "local"}
    with open(log, "ab") as f:
        rc = subprocess.run([sys.executable, "-m", "clinical_ml.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                            env=env, cwd=REPO_ROOT).returncode
    if rc != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        raise DemoError(f"clinical-ml {args[0]} failed (exit {rc}): {tail}\n  log: {log}")


def synth_data(root: Path, patients: int, later_fraction: float = LATER_FRACTION) -> Path:
    out = root / "demo-data" / f"mimic-synth-{patients}-later{round(later_fraction * 100)}"
    if (out / "synth_manifest.json").is_file():
        _say(f"synthetic MIMIC-III: reusing {out}")
        return out
    _say(f"synthetic MIMIC-III: {patients} patients, {later_fraction:.0%} in a later period from {ERA_START} -> {out}")
    _cli(["synth", "--out", str(out), "--patients", str(patients), "--seed", "0",
          "--later-fraction", str(later_fraction)], root / "demo-data" / "synth.log")
    return out


def choose_corpora(arg: str | None, user: dict[str, str], containers: bool = False) -> tuple[str, str]:
    """(AnnotatedCorporaUri value, the line the run says): ``--param AnnotatedCorporaUri=`` wins,
    then ``--corpora`` (``none``: synthetic only), else ../shared/data when that folder exists
    (not with ``--containers``: BuildNotes is network-isolated and reads the value itself, so a
    host folder is not in its container, as an s3:// one is not reachable on SageMaker)."""
    if CORPORA_PARAMETER in user:
        value, why = user[CORPORA_PARAMETER], f"--param {CORPORA_PARAMETER}"
    elif arg is not None and arg.strip():
        value, why = corpora_value(arg), "CORPORA=none" if arg.strip().lower() == "none" else ""
    elif containers:
        return "", ("extractor: synthetic notes only (--containers: the isolated BuildNotes container "
                    "cannot read a host corpora folder; docs/containers.md)")
    elif SHARED_CORPORA.is_dir():
        value, why = str(SHARED_CORPORA.resolve()), ""
    else:
        return "", "extractor: synthetic notes only (no ../shared/data; CORPORA= to add corpora)"
    if not value:
        return "", f"extractor: synthetic notes only ({why or 'no corpora'})"
    return value, f"extractor: synthetic + real corpora from {value}"


def run_drift_job(schedule: dict[str, Any], capture_root: Path, out: Path, metrics_file: Path,
                  start: dt.datetime, end: dt.datetime, log: Path, ground_truth: Path | None = None) -> dict[str, Any]:
    job = schedule.get("drift_job", {})
    truth = ["--ground-truth", str(ground_truth)] if ground_truth else []
    args = ["drift", *map(str, job.get("arguments", [])), *truth, "--capture", str(capture_root),
            "--baseline", str(schedule["baseline_uri"]), "--output", str(out),
            "--metrics-file", str(metrics_file),
            "--window-start", start.isoformat().replace("+00:00", "Z"),
            "--window-end", end.isoformat().replace("+00:00", "Z")]
    _cli(args, log)
    summary = out / "drift_summary.json"
    return read_json(summary) if summary.is_file() else {"status": "unknown", "output": str(out)}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def registered_versions(root: Path) -> list[dict[str, Any]]:
    reg = LocalRegistry(root / "registry")
    rows = []
    for group in reg.list_model_package_groups():
        for s in reg.list_model_packages(group):
            d = reg.describe_model_package(s["ModelPackageArn"])
            metrics_file = d.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
            metrics = {}
            if metrics_file and Path(metrics_file).is_file():
                try:
                    metrics = json.loads(Path(metrics_file).read_text())
                except json.JSONDecodeError:
                    metrics = {}
            rows.append({"group": group, "version": d["ModelPackageVersion"], "arn": d["ModelPackageArn"],
                         "approval": d["ModelApprovalStatus"], "created": d["CreationTime"],
                         "execution_id": d["CustomerMetadataProperties"].get("pipeline_execution_id", ""),
                         "trigger": d["CustomerMetadataProperties"].get("trigger", ""), "metrics": metrics})
    return rows


def run_demo(args: argparse.Namespace) -> int:
    root = args.run_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    demo_dir = root / ("demo-" + _now().strftime("%Y%m%dT%H%M%S"))
    demo_dir.mkdir(parents=True)
    point_latest(root, demo_dir)
    # demo-level events (drift alarm, retraining trigger) go to the demo folder's audit trail;
    # each execution's steps write their own runs/<execution>/audit.jsonl
    os.environ["CLINICAL_ML_AUDIT_FILE"] = str(demo_dir / "audit.jsonl")
    summary: dict[str, Any] = {"demo_dir": str(demo_dir), "executions": [], "registered": [], "endpoint": None,
                               "drift": None, "missing": [], "timings_s": {}}
    info = None
    t_start = time.monotonic()
    try:
        missing = missing_pieces()
        if missing:
            summary["missing"] = missing
            raise DemoError("missing pieces: " + "; ".join(missing))
        user = parse_params(args.param)
        corpora, said = choose_corpora(getattr(args, "corpora", None), user, getattr(args, "containers", False))  # a bad folder fails before synth
        _say(said)
        summary["corpora"] = corpora or None
        laps = [time.monotonic()]

        def lap(phase: str) -> None:
            """Seconds of each phase since the last (summary.json timings_s): where the 15 minutes go."""
            laps.append(time.monotonic())
            summary["timings_s"][phase] = round(laps[-1] - laps[-2], 1)

        data = args.data.resolve() if args.data else synth_data(root, DEMO_PATIENTS)
        lap("data")
        definition = build_definition()
        declared = {p["Name"] for p in definition.get("Parameters", [])}
        demo_defaults = {"ModelApprovalStatus": "Approved", **DEMO_EXTRACTOR,
                         "MinExtractionF1": DEMO_MIN_EXTRACTION_F1, "NoteCategories": DEMO_NOTE_CATEGORIES,
                         "ExtractNotesInstanceCount": DEMO_EXTRACT_INSTANCES,
                         "MlflowTrackingUri": tracking_uri(root), **DEMO_TUNING,
                         "PromotionAurocMargin": DEMO_AUROC_MARGIN, "PromotionEceMargin": DEMO_ECE_MARGIN,
                         CORPORA_PARAMETER: corpora}
        base = {DATA_PARAMETER: str(data), **{k: v for k, v in demo_defaults.items() if k in declared}, **user}
        # execution 1 trains on the early period; the drift retraining gets no window (EventBridge
        # passes static parameters): its DriftGuard finds one
        first = {**base, "DataWindowEnd": ERA_START, **user} if args.data is None else base

        _say("execution 1 (trigger=manual)")
        ex1, s1 = run_execution(definition, root, first, trigger="manual", use_cache=not args.no_cache,
                                containers=getattr(args, "containers", False))
        summary["executions"].append(s1)
        if ex1.failure:
            hint = (f"\n  the production outcome model it was compared with is an earlier demo's, in {root / 'registry'}: "
                    "`make clean` resets runs/ (registry included), or use another --run-dir"
                    if ex1.failure.step == "KeepChampion" else "")
            raise DemoError(f"execution 1: step {ex1.failure.step} failed: {ex1.failure.message}\n  log: {ex1.failure.log}{hint}")
        point_latest(root, demo_dir)
        lap("execution_1")
        summary["training"] = {"tuning": tuning_summary(ex1.run_dir),
                               "mlflow": mlflow_summary(ex1.run_dir, base.get("MlflowTrackingUri", ""))}
        _say("notes: ExtractNotes output, note features, sharded vs single-shard check")
        summary["notes"] = {**notes_summary(ex1.run_dir),
                            "sharding_check": sharding_check(ex1.run_dir, demo_dir / "logs" / "shard-check.log")}
        if summary["notes"]["sharding_check"].get("differ"):
            raise DemoError(f"ExtractNotes: {summary['notes']['sharding_check']['differ']} notes differ between the "
                            "sharded and the single-shard extraction")

        lap("notes_check")
        info = endpoint_info(ex1.run_dir)
        url = endpoint_url(info)
        summary["endpoint"] = {**info, "url": url}
        schedule, capture_root = load_schedule(ex1)
        endpoint = info.get("endpoint_name") or schedule["endpoint_name"]
        eras = args.data is None  # the synthetic data has the later period; a --data folder may not
        tasks1 = ex1.run_dir / "steps" / "BuildTasks" / "output"
        later = (later_period_tasks(_cli, data, demo_dir / "later-period-tasks", demo_dir / "logs" / "later-tasks.log")
                 if eras else tasks1)
        metrics_file = demo_dir / "metrics" / "drift_metrics.jsonl"
        traffic: dict[str, Any] = {}
        drift: dict[str, Any] = {}
        timeline: list[dict[str, Any]] = []

        previous_end: list[dt.datetime] = []  # the last window's span end, once there is one

        def window(name: str, label: str, phase: str, rows, sched: dict[str, Any], model: str) -> tuple:
            """Send one window of labelled traffic, then run the drift job (with model quality) over it."""
            payloads, truth = write_traffic(rows, demo_dir / "traffic" / name, name)
            _say(f"{label}: {len(rows)} held-out stays -> {url} (model {model})")
            if previous_end:  # that span ends a second after its traffic: no request of ours in it
                time.sleep(max(0.0, (previous_end[0] - dt.datetime.now(dt.timezone.utc)).total_seconds()))
            t0 = _now()
            traffic[name] = send_traffic(url, endpoint, payloads, demo_dir / "logs" / f"send-{name}.log", name)
            traffic[name]["captured"] = wait_for_capture(capture_root, name, traffic[name]["ok"], since=t0)
            # a second of slack either side, but never reaching back into the previous window
            span = (max([t0 - dt.timedelta(seconds=1), *previous_end]), _now() + dt.timedelta(seconds=1))
            previous_end[:] = [span[1]]
            _say(f"drift job over the {name} window")
            drift[name] = run_drift_job(sched, capture_root, demo_dir / "drift" / name, metrics_file, *span,
                                        demo_dir / "logs" / f"drift-{name}.log", ground_truth=truth)
            timeline.append(timeline_entry(name, label, phase, model, drift[name], ALARM_THRESHOLD))
            return span

        champion = serving_model(info)
        window("normal", "normal traffic (early period)", "before promotion",
               held_out_rows(tasks1, ("val", "test"), TRAFFIC_ROWS), schedule, champion)
        if eras:
            new_rows, new_label = held_out_rows(later, ("test",), TRAFFIC_ROWS), "new period's traffic (later, MetaVision era)"
        else:  # a --data folder has no later period: shifted traffic instead (half the temperatures in Fahrenheit)
            from clinical_ml.monitor.scenarios import generate

            test_rows = held_out_rows(tasks1, ("test",), TRAFFIC_ROWS)
            new_rows, new_label = generate(test_rows, "units", len(test_rows), 0.5, seed=2), "shifted traffic (units)"
        shifted = window("new-period", new_label, "before promotion", new_rows, schedule, champion)
        summary["drift"] = {"traffic": traffic, "windows": drift}
        summary["timeline"] = timeline

        lap("traffic_and_drift_before")
        _say("drift alarms -> storm guard -> retraining")
        from clinical_ml.monitor.loop import default_ledger, evaluate_and_trigger

        second: dict[str, Any] = {}
        # what the EventBridge rule passes: static parameters, no window (the guard finds it); the
        # demo's rule asks for 2 tuning trials instead of 4 (the demo's 15 minutes)
        static = {**{k: v for k, v in base.items() if k not in ("DataWindowStart", "DataWindowEnd") or k in user},
                  **{k: v for k, v in DRIFT_TUNING.items() if k not in user}}

        def start_execution(params: dict[str, str]) -> dict[str, Any]:
            ex2, s2 = run_execution(definition, root, {**static, **params}, trigger=params.get("Trigger", "drift"),
                                    use_cache=not args.no_cache, containers=getattr(args, "containers", False))
            second.update(ex=ex2, summary=s2)
            return {"id": s2["execution_arn"], "status": s2["status"]}

        loop = evaluate_and_trigger(metrics_file, schedule["endpoint_name"], schedule["schedule_name"], start_execution,
                                    default_ledger(root), window=shifted, threshold=ALARM_THRESHOLD)
        summary["drift"]["alarm"] = loop
        if "summary" in second:
            summary["executions"].append(second["summary"])
        point_latest(root, demo_dir)
        if loop.get("composite") != "ALARM":
            raise DemoError(f"the drift alarm did not fire (composite state {loop.get('composite')}); see {demo_dir}/drift")
        if not loop.get("started"):
            decision = loop.get("decision") or {}
            hint = (f"; an earlier demo's drift retraining in {root} is {decision.get('seconds_since', 0):.0f} s old, "
                    f"inside the {decision.get('cooldown_s', 0):.0f} s cooldown: `make clean` resets "
                    "runs/ (registry and guard ledger included), or use another --run-dir"
                    if decision.get("reason") == "cooldown" else "")
            raise DemoError(f"the storm guard did not start a retraining: {decision}{hint}")
        ex2 = second["ex"]
        summary["retraining"] = {
            "data_window": (read_json(g) if (g := ex2.run_dir / "steps" / "DriftGuard" / "output" / "guard" / "guard.json").is_file()
                            else {}).get("data_window"),
            "steps": step_statuses(second["summary"], ("BuildTasks", "TuneOutcomes", "EvaluateOutcomes", "CompareModels"))}
        summary["promotion"] = promotion(ex2.run_dir)
        if ex2.failure:
            raise DemoError(f"execution 2: step {ex2.failure.step} failed: {ex2.failure.message}\n  log: {ex2.failure.log}")
        lap("alarm_and_execution_2")
        info = summary["endpoint"] = {**endpoint_info(ex2.run_dir), "url": url}
        schedule2, _ = load_schedule(ex2)
        window("after-promotion", "the new period after promotion", "after promotion",
               held_out_rows(ex2.run_dir / "steps" / "BuildTasks" / "output", ("test",), TRAFFIC_ROWS),
               schedule2, serving_model(info))
        lap("traffic_and_drift_after")
        rc = 0
    except (DemoError, DataError) as e:
        summary["error"] = str(e)
        print(f"run-local --demo: FAILED: {e}", file=sys.stderr)
        rc = 1
    finally:
        summary["registered"] = registered_versions(root)
        summary["endpoint_stop"] = stop_endpoint(info)
        summary["timings_s"]["total"] = round(time.monotonic() - t_start, 1)
        write_report(demo_dir, to_json(summary))
        point_latest(root, demo_dir)
    _print_summary(summary, demo_dir)
    return rc


def _print_summary(summary: dict[str, Any], demo_dir: Path) -> None:
    lines = ["", "clinical-ml demo summary"]
    if "corpora" in summary:
        corpora = summary["corpora"]
        lines.append(f"  extractor data: synthetic notes {'+ corpora from ' + corpora if corpora else 'only'}")
    for ex in summary["executions"]:
        lines.append(f"  execution {ex['execution_id']}  trigger={ex['trigger']}  {ex['status']}  {ex['duration_s']:.0f}s")
    notes = summary.get("notes") or {}
    if notes.get("extract"):
        e, chk = notes["extract"], notes.get("sharding_check") or {}
        lines.append(f"  notes extracted: {e['notes']} in {e['shards']} shards, {e['notes_per_s']} notes/s; "
                     f"single-shard check {chk.get('identical', 0)}/{chk.get('checked', 0)} identical")
    for task, d in ((notes.get("note_features_effect") or {}).get("tasks") or {}).items():
        a = d.get("auroc", {})
        w0, w1, diff = (a.get(k, {}).get("value") for k in ("without", "with", "difference"))
        if None not in (w0, w1, diff):
            ci = a["difference"]
            lines.append(f"  note features {task}: AUROC {w0:.3f} -> {w1:.3f} (difference {diff:+.3f}, "
                         f"95% CI {ci.get('ci_low', float('nan')):+.3f} to {ci.get('ci_high', float('nan')):+.3f})")
    lines += summary_lines(summary.get("training") or {})
    for r in summary["registered"]:
        lines.append(f"  registered {r['group']} v{r['version']} ({r['approval']}, execution {r['execution_id']})")
    if summary.get("endpoint"):
        lines.append(f"  endpoint {summary['endpoint'].get('url')}  ({summary.get('endpoint_stop')})")
    r = summary.get("retraining") or {}
    if r.get("data_window"):
        w = r["data_window"]
        lines.append(f"  retraining window [{w['start']}, {w['end']}) ({w['rule']}); "
                     + ", ".join(f"{k} {v}" for k, v in (r.get("steps") or {}).items()))
    pr = summary.get("promotion")
    if pr and pr.get("challenger_auroc") is not None and pr.get("champion_auroc") is not None:
        ci = f", 95% CI {pr['ci_low']:+.3f} to {pr['ci_high']:+.3f}" if pr.get("ci_low") is not None else ""
        lines.append(f"  new period ({pr.get('test_rows')} test stays): challenger AUROC {pr['challenger_auroc']:.3f} vs "
                     f"champion {pr['champion_auroc']:.3f} (difference {pr['difference']:+.3f}{ci}): "
                     f"{'promoted' if pr['promoted'] else 'champion kept'}")
    for t in summary.get("timeline") or []:
        auroc = f"{t['auroc']:.3f}" if t.get("auroc") is not None else "n/a"
        score = f"{t['drift_score']:.3f}" if isinstance(t.get("drift_score"), (int, float)) else "n/a"
        lines.append(f"  window {t['window']:<16} {t['model']:<12} drift {t.get('drift_status')} "
                     f"(score {score}), AUROC {auroc} on {t.get('labelled')} labelled")
    if summary.get("error"):
        lines.append(f"  FAILED: {summary['error']}")
    lines.append(f"  run folder: {demo_dir}  (runs/latest; summary.json, report.html)")
    print("\n".join(lines))
