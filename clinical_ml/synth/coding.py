"""ICD-9 diagnoses, procedures and prescriptions of an admission, derived from what happened.

Secondary diagnoses are coded when the simulated physiology crosses clinical thresholds
(hyponatremia when sodium fell below 133, septic shock when a septic patient's MAP fell below
60, ...), so the benchmark phenotypes are tied both to the codes and to the time series.
"""
from __future__ import annotations

import numpy as np

from clinical_ml.synth.cohort import Admission
from clinical_ml.synth.vocab import COMMON_DRUGS, CONDITIONS, DRUGS, HTN_CKD_CODE, background_codes

DOSE_VARIANTS = {"metoprolol": ("12.5", "25", "50"), "furosemide": ("20", "40", "80"),
                 "lisinopril": ("5", "10", "20"), "vancomycin": ("1000", "1250", "1500"),
                 "atorvastatin": ("10", "40", "80"), "prednisone": ("40", "60"),
                 "warfarin": ("2", "5"), "levothyroxine": ("25", "50", "100"),
                 "amlodipine": ("5", "10"), "acetaminophen": ("325", "650")}


def _lo(summary: dict, key: str) -> float:
    parts = summary.get(key)
    return float(min(np.min(p) for p in parts if len(p))) if parts and any(len(p) for p in parts) else np.nan


def _hi(summary: dict, key: str) -> float:
    parts = summary.get(key)
    return float(max(np.max(p) for p in parts if len(p))) if parts and any(len(p) for p in parts) else np.nan


def secondary_conditions(rng, adm: Admission, summary: dict) -> list[str]:
    out = []
    acute = set(adm.acute)
    if _lo(summary, "lab_na") < 133:
        out.append("hyponatremia")
    if _hi(summary, "lab_k") > 5.4:
        out.append("hyperkalemia")
    if (_lo(summary, "lab_ph") < 7.30 or _lo(summary, "lab_hco3") < 18) and "dka" not in acute:
        out.append("acidosis")
    if _hi(summary, "lab_creat") > 2.0 and "aki" not in acute:
        out.append("aki_2")
    low_map = _lo(summary, "map") < 58
    if low_map and "sepsis" in acute:
        out.append("septic_shock")
    elif low_map and acute & {"ami", "chf"}:
        out.append("cardiogenic_shock")
    if _lo(summary, "spo2") < 86 and "resp_failure" not in acute:
        out.append("resp_failure_2")
    if acute & {"chf", "pneumonia"} and rng.random() < 0.3:
        out.append("effusion")
    if "cabg" in acute and rng.random() < 0.4:
        out.append("atelectasis")
    if "chf" in acute and rng.random() < 0.3:
        out.append("pulm_edema")
    if rng.random() < 0.08:
        out.append("sob")
    if any(st.intubated and st.los_days > 12 for st in adm.stays):
        out.append("trach")
    if _lo(summary, "lab_hgb") < 8.0:
        out.append("anemia")
    if _lo(summary, "lab_plt") < 100:
        out.append("thrombocytopenia")
    if "cabg" in acute and rng.random() < 0.08:
        out.append("postop_bleed")
    if rng.random() < 0.12:
        out.append("uti")
    return out


def code_admission(rng, adm: Admission, summary: dict) -> None:
    """Fill ``diagnoses``/``dx_keys``, ``procedures`` and ``drugs`` of the admission."""
    keys = list(adm.acute) + secondary_conditions(rng, adm, summary)
    chronic = list(adm.chronic)
    if "htn" in chronic and "ckd" in chronic:  # coded as hypertensive CKD (HTN with complications)
        chronic[chronic.index("htn")] = "htn_ckd"
    order = rng.permutation(len(chronic)) if chronic else []
    keys += [chronic[i] for i in order]
    codes, dx_keys = [], []
    for k in keys:
        code = HTN_CKD_CODE if k == "htn_ckd" else _code(rng, k)
        if k == "dm" and "dka" in adm.acute:
            continue
        if code not in codes:
            codes.append(code)
            dx_keys.append("htn" if k == "htn_ckd" else k)
    bg, p = background_codes()  # frequent codes outside the phenotypes: realistic code counts
    k = min(int(rng.poisson(6 + 2 * len(adm.chronic))), len(bg))
    extra = [bg[i] for i in rng.choice(len(bg), size=k, replace=False, p=p)] if k else []
    adm.diagnoses, adm.dx_keys = codes + [c for c in extra if c not in codes], dx_keys
    procs = []
    for k in adm.acute:
        for p in CONDITIONS[k].procedures:
            if p in ("intubation", "mech_vent", "cabg", "bypass_pump") or rng.random() < 0.6:
                procs.append(p)
    if any(st.intubated for st in adm.stays) and "intubation" not in procs:
        procs += ["intubation", "mech_vent"]
    if "mech_vent" in procs and any(st.los_days > 4 for st in adm.stays):
        procs[procs.index("mech_vent")] = "mech_vent_long"
    if max(st.s0 for st in adm.stays) > 0.8 and "central_line" not in procs:
        procs.append("central_line")
    if any(st.arterial for st in adm.stays) and rng.random() < 0.5:
        procs.append("art_line")
    if _lo(summary, "lab_hgb") < 7.2 and "transfusion" not in procs:
        procs.append("transfusion")
    if _hi(summary, "lab_creat") > 4.5 and "hemodialysis" not in procs:
        procs.append("hemodialysis")
    if "effusion" in keys and rng.random() < 0.3:
        procs.append("thoracentesis")
    if "central_line" in procs and rng.random() < 0.04:
        adm.diagnoses.append(CONDITIONS["iatro_ptx"].codes[0])
        adm.dx_keys.append("iatro_ptx")
    adm.procedures = list(dict.fromkeys(procs))
    drugs: list[str] = []
    for k in adm.acute:
        drugs += [d for d in CONDITIONS[k].drugs if rng.random() < 0.85]
    for k in adm.chronic:
        opts = CONDITIONS[k].drugs
        if opts and rng.random() < 0.75:
            drugs.append(opts[int(rng.integers(len(opts)))])
    drugs += [d for d, p in COMMON_DRUGS if rng.random() < p]
    drugs = list(dict.fromkeys(drugs))
    adm.drugs = [(d, _dose(rng, d)) for d in drugs]


def _code(rng, key: str) -> str:
    codes = CONDITIONS[key].codes
    return codes[0] if len(codes) == 1 or rng.random() < 0.6 else codes[int(rng.integers(1, len(codes)))]


def _dose(rng, key: str) -> str:
    opts = DOSE_VARIANTS.get(key)
    return opts[int(rng.integers(len(opts)))] if opts else DRUGS[key].dose
