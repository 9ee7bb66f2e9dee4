"""NOTEEVENTS text with gold annotations, built together so every span offset is exact.

Notes are written from the admission's own rows: problems from DIAGNOSES_ICD (via the
condition that produced each code), medications with the PRESCRIPTIONS dose and route,
procedures from PROCEDURES_ICD, lab values from LABEVENTS. Phrasing varies (several templates
per section, synonyms, abbreviations, varied order, de-identification brackets, occasional
typos in non-entity words) so an extractor has to generalize rather than memorize a template.
Gold follows ``clinical_ml.notes.schema`` (see docs/synthetic-mimic.md).
"""
from __future__ import annotations

import numpy as np

from clinical_ml.notes.schema import ENTITY_LABELS, record_from_annotations
from clinical_ml.synth.cohort import Admission, Patient, Stay
from clinical_ml.synth.notebuilder import (SERVICE_NAMES, NoteBuilder, _date, _lab_value, _negations,
                                           _positive_symptoms, deid_date)
from clinical_ml.synth.vocab import CONDITIONS, DRUGS, LAB_ITEMS

# The labels the synthetic gold annotates: not FORM or DURATION (records have them null), though
# the discharge "Sig:" lines do write "Tablet"/"Capsule". A corpus mixed with these notes should
# give them ``annotated_labels = GOLD_LABELS`` (``clinical_ml.notes.schema.annotated_labels``).
GOLD_LABELS: tuple[str, ...] = tuple(lab for lab in ENTITY_LABELS if lab not in ("FORM", "DURATION"))

def discharge_summary(rng, pt: Patient, adm: Admission) -> tuple[str, list[dict], list[dict]]:
    b = NoteBuilder(rng)
    age = int(adm.age)
    sex = pt.gender
    b.t(f"Admission Date:  {deid_date(adm.admittime)}              Discharge Date:   {deid_date(adm.dischtime)}\n\n")
    b.t(f"Date of Birth:  {deid_date(pt.dob)}             Sex:   {sex}\n\n")
    b.t(f"Service: {b.choice(SERVICE_NAMES.get(adm.service, ('MEDICINE',)))}\n\n")
    b.t(b.choice(("Allergies:\nNo Known Allergies / Adverse Drug Reactions\n\n",
                  "Allergies:\nPatient recorded as having No Known Allergies to Drugs\n\n")))
    pos = _positive_symptoms(adm)
    b.t(b.choice(("Chief Complaint:\n", "CC:\n", "Chief Complaint:\n")))
    if pos:
        b.e(pos[0], "PROBLEM")
    else:
        b.problem(adm.acute[0])
    b.t("\n\n")
    b.t(b.choice(("Major Surgical or Invasive Procedure:\n", "Procedures:\n")))
    if adm.procedures:
        for p in adm.procedures[:4]:
            b.procedure(p)
            b.t("\n")
    else:
        b.t("None\n")
    b.t("\n")
    hpi_first = rng.random() < 0.8
    sections = [lambda: _hpi(b, pt, adm, pos), lambda: _pmh(b, adm)]
    for f in (sections if hpi_first else sections[::-1]):
        f()
    b.t(b.choice(("Social History:\n", "Social Hx:\n")))
    b.t(b.choice(("Lives with wife. ", "Lives alone. ", "Lives with daughter. ", "Retired. ")))
    b.t(b.choice(("Former smoker. ", "No EtOH. ", "Occasional alcohol use. ", "")) + "\n\n", typo=True)
    _results(b, adm)
    _course(b, adm)
    home = [(k, d) for k, d in adm.drugs if any(k in CONDITIONS[c].drugs for c in adm.chronic)]
    b.t(b.choice(("Medications on Admission:\n", "Home Medications:\n", "Meds on admission:\n")))
    numbered = rng.random() < 0.6
    if home:
        for i, (k, d) in enumerate(home, 1):
            b.t(f"{i}. " if numbered else "- ")
            b.med(k, d)
            b.t("\n")
    else:
        b.t("None\n")
    b.t("\n")
    dead = adm.deathtime is not None
    if not dead:
        b.t(b.choice(("Discharge Medications:\n", "Medications on Discharge:\n", "Discharge Meds:\n")))
        keep = [(k, d) for k, d in adm.drugs if DRUGS[k].route in ("PO", "SC", "IH") and DRUGS[k].drug_type == "MAIN"]
        style = 4 if rng.random() < 0.5 else None
        for i, (k, d) in enumerate(keep, 1):
            b.t(f"{i}. ")
            b.med(k, d, style)
            b.t("\n")
        b.t("\n")
    b.t("Discharge Disposition:\n")
    b.t("Expired\n\n" if dead else (b.choice(("Home\n\n", "Home With Service\n\n"))
                                    if adm.discharge_location.startswith("HOME") else "Extended Care\n\n"))
    b.t(b.choice(("Discharge Diagnosis:\n", "Discharge Diagnoses:\n", "Final Diagnosis:\n")))
    b.t(b.choice(("Primary: ", "PRIMARY:\n", "")))
    b.join(adm.acute, lambda k: b.problem(k))
    b.t("\n")
    others = [k for k in adm.dx_keys if k not in adm.acute][:6]
    if others:
        b.t(b.choice(("Secondary: ", "SECONDARY:\n", "Secondary diagnoses: ")))
        b.join(others, lambda k: b.problem(k), sep="\n" if rng.random() < 0.5 else ", ",
               last="\n" if rng.random() < 0.5 else ", ")
        b.t("\n")
    b.t("\nDischarge Condition:\n")
    b.t("Expired.\n" if dead else b.choice(("Stable.\n", "Hemodynamically stable, afebrile.\n",
                                            "Mental Status: Clear and coherent. Activity: Ambulatory.\n")))
    if not dead and rng.random() < 0.5:
        b.t("\n")
        _instructions(b, adm)
    if not dead:
        b.t(b.choice(("\nFollowup Instructions:\nFollow up with your PCP in 1-2 weeks.\n",
                      "\nFollowup Instructions:\n[**Name6 (MD) 2**] [**Name8 (MD) 3**] MD Phone:[**Telephone/Fax (1) 4**]\n")))
    return b.doc()


def _hpi(b: NoteBuilder, pt: Patient, adm: Admission, pos: list[str]) -> None:
    rng = b.rng
    b.t(b.choice(("History of Present Illness:\n", "HPI:\n", "History of Present Illness:\n")))
    who = "M" if pt.gender == "M" else "F"
    age = int(adm.age) if adm.age < 90 else 90
    title = "Mr." if who == "M" else "Ms."
    b.t(b.choice((f"{age} y/o {who} ", f"{age} year old {'man' if who == 'M' else 'woman'} ",
                  f"Pt is a {age}yo {who} ",
                  f"{title} [**Known lastname {rng.randrange(100, 9999)}**] is a {age} year old {'man' if who == 'M' else 'woman'} ",
                  f"This is a {age} yo {'male' if who == 'M' else 'female'} ")))
    chronic = [k for k in adm.dx_keys if CONDITIONS[k].role == "chronic"][:4]
    if chronic:
        b.t(b.choice(("with PMH of ", "with a history of ", "w/ hx of ")))
        b.join(chronic, lambda k: b.problem(k))
        b.t(" ")
    b.t(b.choice(("who presents with ", "presenting with ", "admitted with ", "who presented to the ED with ",
                  "transferred from an outside hospital with ", "who was brought in by EMS for ")))
    if pos:
        b.join(pos[:3], lambda s: b.e(s, "PROBLEM"))
    else:
        b.t("malaise")
    b.t(b.choice((", found to have ", ", found to be in ", ". Workup notable for ", ", concerning for ",
                  ". Diagnosed with ")))
    b.problem(adm.acute[0])
    b.t(". ")
    _negations(b, set(pos), rng.randrange(1, 4))
    if adm.ed:
        b.t(b.choice(("In the ED, ", "In the [**Hospital1 18**] ED, ", "On arrival to the ED ")), typo=True)
        hr = int(np.round(adm.summary.get("hr", [np.array([90])])[0][0]))
        b.t(f"VS: HR {hr}, BP {int(adm.summary['sbp'][0][0])}/{int(adm.summary['dbp'][0][0])}. ")
    labs = [c for c in ("wbc", "creat", "lactate", "hgb", "na", "trop") if _lab_value(adm, c)]
    picks = [labs[i] for i in sorted(rng.sample(range(len(labs)), min(3, len(labs))))] if labs else []
    if picks:
        b.t(b.choice(("Labs notable for ", "Labs were significant for ", "Initial labs: ")))
        b.join(picks, lambda c: (b.e(LAB_ITEMS[c][5] if rng.random() < 0.7 else LAB_ITEMS[c][5].upper(), "TEST"),
                                 b.t(f" {_lab_value(adm, c)}")))
        b.t(". ")
    tests = [t for k in adm.acute for t in CONDITIONS[k].tests if t not in ("lactate", "troponin")]
    if tests:
        b.e(tests[0], "TEST")
        b.t(b.choice((" obtained. ", " was done in the ED. ", ": see below. ")))
    if "resp_failure" not in adm.acute and "intubation" not in adm.procedures and rng.random() < 0.3:
        b.t("Did not require ")
        b.procedure("intubation", negated=True)
        b.t(". ")
    b.t("\n\n")


def _pmh(b: NoteBuilder, adm: Admission) -> None:
    b.t(b.choice(("Past Medical History:\n", "PMH:\n", "Past Medical History:\n")))
    chronic = [k for k in adm.dx_keys if CONDITIONS[k].role == "chronic"]
    if not chronic:
        b.t("None.\n\n")
        return
    bullet = b.choice(("- ", "# ", ""))
    for k in chronic:
        b.t(bullet)
        b.problem(k)
        b.t("\n")
    b.t("\n")


def _results(b: NoteBuilder, adm: Admission) -> None:
    rng = b.rng
    b.t(b.choice(("Pertinent Results:\n", "Pertinent Results:\n", "Labs/Studies:\n")))
    b.t(f"{deid_date(adm.admittime)} 0{rng.randrange(1, 9)}:{rng.randrange(10, 59)}AM BLOOD ")
    abbrev = {"wbc": "WBC", "hgb": "Hgb", "plt": "Plt Ct", "na": "Na", "k": "K", "creat": "Creat", "bun": "UreaN",
              "glucose": "Glucose", "hco3": "HCO3", "lactate": "Lactate"}
    shown = [c for c in abbrev if _lab_value(adm, c)]
    for i, c in enumerate(shown):
        if i:
            b.t(" ")
        b.e(abbrev[c], "TEST")
        b.t(f"-{_lab_value(adm, c)}")
    b.t("\n")
    if "chest x-ray" in [t for k in adm.acute for t in CONDITIONS[k].tests] or rng.random() < 0.4:
        b.e(b.choice(("CXR", "Chest x-ray", "Portable chest radiograph")), "TEST")
        b.t(": ")
        findings = [k for k in adm.dx_keys if k in ("pneumonia", "effusion", "pulm_edema", "atelectasis", "iatro_ptx")]
        if findings:
            b.join(findings, lambda k: b.problem(k))
            b.t(". ")
        else:
            b.t("No acute cardiopulmonary process. ")
        if "iatro_ptx" not in adm.dx_keys:
            b.t("No ")
            b.e("pneumothorax", "PROBLEM", True)
            b.t(".")
        b.t("\n")
    b.t("\n")


def _course(b: NoteBuilder, adm: Admission) -> None:
    """Hospital course by problem: '# problem: ...' paragraphs or a numbered assessment/plan."""
    rng = b.rng
    numbered = rng.random() < 0.35
    b.t(b.choice(("Assessment and Plan:\n", "A/P:\n")) if numbered else
        b.choice(("Brief Hospital Course:\n", "Hospital Course:\n", "BRIEF HOSPITAL COURSE:\n")))
    given = {k: d for k, d in adm.drugs}
    for i, k in enumerate(adm.acute, 1):
        cond = CONDITIONS[k]
        b.t(f"{i}. " if numbered else "# ")
        b.problem(k)
        b.t(" - " if numbered else ": ")
        b.t(b.choice(("Patient was admitted to the ICU. ", "Pt was monitored closely in the unit. ",
                      "Admitted to the MICU for further management. ", "Managed in the ICU. ",
                      "Transferred to the unit for closer monitoring. ")), typo=True)
        meds = [d for d in cond.drugs if d in given][:3]
        if meds:
            b.t(b.choice(("Started on ", "Treated with ", "Received ", "Was given ", "Continued on ",
                          "Management included ")))
            b.join(meds, lambda d: b.med(d, given[d]))
            b.t(". ")
        procs = [p for p in cond.procedures if p in adm.procedures]
        if procs:
            b.t(b.choice(("Underwent ", "S/p ", "Patient underwent ", "Had ")))
            b.join(procs, lambda p: b.procedure(p))
            b.t(". ")
        if adm.deathtime is not None and k == adm.acute[-1]:
            b.t(b.choice(("Despite maximal support the patient continued to decline. Family meeting held and "
                          "patient was made CMO. Patient expired. ",
                          "Condition worsened despite treatment; patient passed away with family at bedside. ",
                          "Made comfort measures only after discussion with family; expired. ")))
        else:
            b.t(b.choice(("Improved and was transferred to the floor. ", "Clinically improved. ",
                          "Resolved by the time of discharge. ", "Stable at discharge. ")), typo=True)
        b.t("\n")
    for k in [k for k in adm.dx_keys if CONDITIONS[k].role == "secondary"][:3]:
        b.t("- " if numbered else "# ")
        b.problem(k)
        b.t(b.choice((": monitored, trended. ", ": managed supportively. ", ": resolved. ", ", likely multifactorial. ",
                      ": improved with treatment. ")) + "\n", typo=True)
    b.t("\n")


def _instructions(b: NoteBuilder, adm: Admission) -> None:
    """Discharge instructions that restate a new medication in plain words (another phrasing)."""
    new = [(k, d) for k, d in adm.drugs if DRUGS[k].route == "PO" and DRUGS[k].drug_type == "MAIN"
           and not any(k in CONDITIONS[c].drugs for c in adm.chronic)]
    b.t("Discharge Instructions:\n")
    b.t(b.choice(("You were admitted to the hospital with ", "You were hospitalized for ")))
    b.problem(adm.acute[0])
    b.t(". ")
    if new:
        k, d = new[b.rng.randrange(len(new))]
        b.t(b.choice(("Please take ", "We started you on ", "Continue taking ")))
        b.med(k, d, style=b.rng.randrange(4))
        b.t(". ")
    b.t(b.choice(("Please call your doctor if you develop ", "Return to the ED for ")))
    b.join([s for s in ("fever", "chest pain", "shortness of breath") ], lambda s: b.t(s), last=" or ")
    b.t(".\n\n")


def nursing_note(rng, pt: Patient, adm: Admission, stay: Stay, day: int) -> tuple[str, list[dict], list[dict]]:
    if rng.random() < 0.4:
        return _nursing_aarp(rng, pt, adm, stay)
    b = NoteBuilder(rng)
    given = [(k, d) for k, d in adm.drugs if DRUGS[k].drug_type == "MAIN"]
    b.t(b.choice(("Nursing Progress Note\n", "NPN 7a-7p\n", "Nursing Note:\n")))
    b.t(b.choice(("Pt is a ", "Patient is a ")) + f"{min(int(adm.age), 90)} y/o {'M' if pt.gender == 'M' else 'F'} admitted with ")
    b.problem(adm.acute[0])
    b.t(f", ICU day {day + 1}.\n")
    blocks = []

    def neuro():
        b.t("Neuro: ")
        if stay.intubated:
            b.t("Sedated, ")
            b.t(b.choice(("intubated. ", "on vent, ")))
            if any(d in dict(given) for d in ("propofol", "fentanyl")):
                d = "propofol" if "propofol" in dict(given) else "fentanyl"
                b.t("on ")
                b.med(d, dict(given)[d], style=2)
                b.t(". ")
        else:
            b.t(b.choice(("A&Ox3, follows commands. ", "Alert, oriented x2, MAE. ", "Lethargic but arousable. ")), typo=True)
            b.t(b.choice(("Denies ", "Pt denies ")))
            b.e(b.choice(("pain", "headache", "chest pain")), "PROBLEM", True)
            b.t(". ")
        b.t("\n")

    def cv():
        b.t("CV: ")
        hr = adm.summary.get("hr")
        if hr:
            v = hr[0]
            lo_, hi_ = int(v.min()), int(v.max())
            b.t(f"HR {lo_}-{hi_}, ")
        b.t(b.choice(("SR. ", "NSR, no ectopy. ", "AF with RVR at times. " if "afib" in adm.chronic else "ST. ")))
        if "norepinephrine" in dict(given) and "septic_shock" in adm.dx_keys:
            b.t("Remains on ")
            b.med("norepinephrine", dict(given)["norepinephrine"], style=2)
            b.t(" to keep MAP > 65. ")
        b.t("\n")

    def resp():
        b.t("Resp: ")
        b.t(b.choice(("LS clear bilaterally. ", "Coarse BS at bases. ", "Diminished at bases. ")), typo=True)
        b.t("On " + ("vent, " if stay.intubated else b.choice(("2L NC, ", "4L NC, ", "RA, "))))
        b.t("sats 9" + str(rng.randrange(2, 9)) + "%. ")
        if "albuterol" in dict(given) and rng.random() < 0.6:
            b.med("albuterol", dict(given)["albuterol"], style=0)
            b.t(" given. ")
        b.t("\n")

    def gi_gu():
        b.t("GI/GU: ")
        b.t(b.choice(("Abd soft, NT. ", "Tolerating clears. ", "NPO. ")), typo=True)
        if "gi_bleed" not in adm.acute and rng.random() < 0.5:
            b.t("No ")
            b.e("melena", "PROBLEM", True)
            b.t(". ")
        uo = adm.summary.get("urine")
        if uo:
            b.t(f"UO {int(np.mean(uo[0])) if len(uo[0]) else 40} cc/hr. ")
        b.t("\n")

    def labs():
        k = _lab_value(adm, "k")
        if k is None:
            return
        b.t("Labs: ")
        b.e(b.choice(("K", "potassium")), "TEST")
        b.t(f" {k}")
        if float(k) < 3.6 and "kcl" in dict(given):
            b.t(", repleted with ")
            b.med("kcl", dict(given)["kcl"], style=2)
        b.t(".\n")

    blocks = [neuro, cv, resp, gi_gu, labs]
    order = rng.sample(range(len(blocks)), len(blocks)) if rng.random() < 0.3 else range(len(blocks))
    for i in order:
        blocks[i]()
    b.t(b.choice(("Plan: Continue current management, monitor closely.\n", "Plan: cont to monitor, wean as tolerated.\n",
                  "Plan: follow labs, update family.\n")), typo=True)
    return b.doc()


def _nursing_aarp(rng, pt: Patient, adm: Admission, stay: Stay) -> tuple[str, list[dict], list[dict]]:
    """The MetaVision-era nursing format: per problem, Assessment / Action / Response / Plan."""
    b = NoteBuilder(rng)
    given = {k: d for k, d in adm.drugs if DRUGS[k].drug_type == "MAIN"}
    keys = list(adm.acute) + [k for k in adm.dx_keys if CONDITIONS[k].role == "secondary"][:1]
    for k in keys:
        b.problem(k)
        b.t(b.choice((" (", ", ")) + "assessment and plan\n" if rng.random() < 0.3 else "\n")
        b.t("Assessment:\n")
        hr = adm.summary.get("hr")
        if hr is not None and len(hr[0]):
            b.t(f"HR {int(hr[0].min())}-{int(hr[0].max())}. ")
        if rng.random() < 0.6:
            _negations(b, set(_positive_symptoms(adm)), 1)
        b.t("\nAction:\n")
        meds = [d for d in CONDITIONS[k].drugs if d in given][:2]
        if meds:
            b.join(meds, lambda d: b.med(d, given[d]), sep="; ", last="; ")
            b.t(b.choice((" given as ordered.", " continued.", " administered.")))
        else:
            b.t(b.choice(("Monitored.", "Labs sent.", "MD aware.")))
        if "kcl" in given and rng.random() < 0.3:
            b.t(" ")
            b.e(b.choice(("K", "potassium")), "TEST")
            b.t(" repleted with ")
            b.med("kcl", given["kcl"], style=2)
            b.t(".")
        b.t("\nResponse:\n")
        b.t(b.choice(("Tolerated well.", "No change.", "Improving.", "Remains unchanged.")), typo=True)
        b.t("\nPlan:\n")
        b.t(b.choice(("Continue to monitor.", "Follow up AM labs.", "Wean as tolerated.", "Update team with changes.")),
            typo=True)
        b.t("\n\n")
    return b.doc()


def radiology_note(rng, pt: Patient, adm: Admission, stay: Stay, ts: int) -> tuple[str, str, list[dict], list[dict]]:
    b = NoteBuilder(rng)
    d = _date(ts)
    head = "stroke" in adm.acute and rng.random() < 0.6
    desc = "CT HEAD W/O CONTRAST" if head else "CHEST (PORTABLE AP)"
    b.t(f"{deid_date(ts)} {d.hour % 12 or 12}:{d.minute:02d} {'AM' if d.hour < 12 else 'PM'}\n {desc}"
        f"                                               Clip # [**Clip Number (Radiology) {rng.randrange(10000, 99999)}**]\n")
    b.t(f" Reason: ")
    b.problem(adm.acute[0])
    b.t("\n ______________________________________________________________________________\n")
    b.t(" FINAL REPORT\n")
    b.t(b.choice((" INDICATION: ", " HISTORY: ")))
    b.t(f"{min(int(adm.age), 90)}-year-old {'man' if pt.gender == 'M' else 'woman'} with ")
    b.problem(adm.acute[0])
    b.t(".\n\n")
    b.t(b.choice((" COMPARISON: None.\n\n", f" COMPARISON: {deid_date(ts - 86400)}.\n\n")))
    b.t(" FINDINGS: ")
    if head:
        b.e(b.choice(("Head CT", "Noncontrast head CT")), "TEST")
        b.t(" demonstrates ")
        b.problem(adm.acute[0])
        b.t(". ")
        b.t(b.choice(("No midline shift. ", "Mild surrounding edema. ")))
        imp = [adm.acute[0]]
    else:
        b.e(b.choice(("Portable AP chest radiograph", "Single AP view of the chest", "Chest x-ray")), "TEST")
        b.t(b.choice((" was obtained. ", ". ")))
        if stay.intubated:
            b.t("Endotracheal tube terminates 4 cm above the carina. ")
        imp = [k for k in adm.dx_keys if k in ("pneumonia", "effusion", "pulm_edema", "atelectasis", "iatro_ptx")]
        for k in imp:
            b.t(b.choice(("There is ", "Findings of ", "Interval ")))
            b.problem(k)
            b.t(". ")
        if "iatro_ptx" not in imp:
            b.t("No ")
            b.e("pneumothorax", "PROBLEM", True)
            b.t(". ")
        if "effusion" not in imp and rng.random() < 0.5:
            b.t(b.choice(("No ", "There is no ")))
            b.e(b.choice(("pleural effusion", "effusion")), "PROBLEM", True)
            b.t(". ")
    b.t("\n\n IMPRESSION:\n")
    if imp:
        b.join(imp, lambda k: b.problem(k))
        b.t(".\n")
    else:
        b.t("No acute cardiopulmonary process.\n")
    text, ents, rels = b.doc()
    return desc, text, ents, rels


def gold_line(row_id: int, subject_id: int, hadm_id: int, category: str, entities, relations) -> dict:
    return {"id": row_id, "row_id": row_id, "subject_id": subject_id, "hadm_id": hadm_id,
            "category": category, "entities": entities, "relations": relations,
            "record": record_from_annotations(entities, relations)}
