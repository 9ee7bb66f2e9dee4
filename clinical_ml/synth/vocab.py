"""Vocabulary of the synthetic MIMIC-III: conditions (ICD-9 codes, note phrases, physiology
effects, drugs, procedures), drugs as PRESCRIPTIONS spells them, chart/lab/output items.

Codes, itemids and drug spellings are the real MIMIC-III ones (itemids from mimic3-benchmarks'
``itemid_to_variable_map.csv``, ICD-9 codes from its ``hcup_ccs_2015_definitions.yaml``, drug
rows modelled on the demo's PRESCRIPTIONS). Dictionary rows (titles, labels) ship as small
CSV files under ``clinical_ml/synth/data/`` so generation never needs the reference data.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("data")

# Physiology channels the simulator drives (names are internal; items map them to itemids).
CHANNELS = ("hr", "sbp", "dbp", "map", "rr", "spo2", "temp", "gcs", "fio2", "glucose", "ph",
            "creat", "bun", "na", "k", "hco3", "cl", "wbc", "hgb", "plt", "lactate", "trop")
# Healthy mean and between-patient sd; effects below shift the mean per unit severity.
BASELINE = {
    "hr": (82, 10), "sbp": (124, 14), "dbp": (64, 9), "map": (82, 9), "rr": (17, 3),
    "spo2": (97.5, 1.2), "temp": (36.9, 0.35), "gcs": (15, 0), "fio2": (0.21, 0),
    "glucose": (122, 22), "ph": (7.40, 0.03), "creat": (0.9, 0.2), "bun": (16, 5),
    "na": (139, 2.5), "k": (4.1, 0.35), "hco3": (25, 2), "cl": (103, 3), "wbc": (8.5, 2.2),
    "hgb": (12.0, 1.4), "plt": (230, 60), "lactate": (1.2, 0.35), "trop": (0.01, 0.005),
}


@dataclass(frozen=True)
class Condition:
    key: str
    role: str                      # acute | chronic | secondary
    codes: tuple[str, ...]         # ICD-9 codes, first is the most common
    phrases: tuple[str, ...]       # how notes name it (first is canonical)
    effects: dict = field(default_factory=dict)   # channel -> shift at severity 1
    drugs: tuple[str, ...] = ()    # keys of DRUGS
    procedures: tuple[str, ...] = ()  # keys of PROCEDURES
    tests: tuple[str, ...] = ()    # test names notes mention
    symptoms: tuple[str, ...] = ()  # positive symptoms; never negated for this patient
    risk: float = 0.0              # mortality log-odds contribution
    weight: float = 1.0            # how often it is the reason for admission (acute)
    prevalence: float = 0.0        # chronic: prevalence at age 65
    careunit: str = "MICU"
    service: str = "MED"
    elective: bool = False


CONDITIONS: dict[str, Condition] = {c.key: c for c in [
    # acute: the reason for the ICU admission
    Condition("sepsis", "acute", ("0389", "99592", "99591"), ("sepsis", "septicemia", "urosepsis", "severe sepsis"),
              {"hr": 22, "temp": 1.3, "map": -14, "sbp": -20, "dbp": -10, "rr": 5, "wbc": 9, "lactate": 2.6, "plt": -60, "hco3": -4},
              ("vancomycin", "pip_tazo", "cefepime", "norepinephrine", "ns_bolus"), ("central_line",),
              ("blood cultures", "lactate", "urinalysis"), ("fever", "chills"), 1.0, 2.2),
    Condition("pneumonia", "acute", ("486", "486", "5070"), ("pneumonia", "PNA", "community acquired pneumonia", "RLL pneumonia"),
              {"spo2": -5, "rr": 7, "temp": 0.9, "hr": 12, "fio2": 0.2, "wbc": 6},
              ("levofloxacin", "ceftriaxone", "azithromycin", "albuterol"), (),
              ("chest x-ray", "sputum culture"), ("cough", "fever", "shortness of breath"), 0.5, 1.8),
    Condition("resp_failure", "acute", ("51881",), ("acute respiratory failure", "hypoxemic respiratory failure", "respiratory failure"),
              {"spo2": -7, "rr": 8, "ph": -0.09, "fio2": 0.4, "gcs": -5, "hr": 10, "hco3": 2},
              ("propofol", "fentanyl", "midazolam"), ("intubation", "mech_vent"),
              ("arterial blood gas", "chest x-ray"), ("shortness of breath",), 1.0, 1.5),
    Condition("ami", "acute", ("41071", "41041"), ("NSTEMI", "acute myocardial infarction", "MI"),
              {"hr": 10, "map": -6, "sbp": -8, "trop": 2.5},
              ("aspirin", "heparin_iv", "metoprolol", "atorvastatin", "clopidogrel"), ("cardiac_cath", "ptca"),
              ("troponin", "ECG", "echocardiogram"), ("chest pain",), 0.4, 1.4, careunit="CCU", service="CMED"),
    Condition("chf", "acute", ("42833", "4280"), ("acute on chronic diastolic heart failure", "CHF exacerbation", "heart failure"),
              {"spo2": -4, "rr": 5, "hr": 8, "na": -3, "creat": 0.5, "bun": 10},
              ("furosemide", "metoprolol", "lisinopril"), (),
              ("BNP", "echocardiogram", "chest x-ray"), ("shortness of breath", "leg swelling"), 0.3, 1.2, careunit="CCU", service="CMED"),
    Condition("stroke", "acute", ("431", "43491"), ("intracerebral hemorrhage", "ICH", "acute ischemic stroke", "CVA"),
              {"gcs": -7, "sbp": 28, "map": 14, "dbp": 8},
              ("labetalol", "levetiracetam"), ("evd",),
              ("CT head", "MRI brain"), ("weakness", "headache"), 1.1, 1.1, careunit="SICU", service="NSURG"),
    Condition("gi_bleed", "acute", ("5789", "5781"), ("upper GI bleed", "GI bleed", "gastrointestinal hemorrhage"),
              {"hr": 18, "map": -12, "sbp": -18, "dbp": -8, "hgb": -3.5, "bun": 18},
              ("pantoprazole_iv", "octreotide"), ("egd", "transfusion"),
              ("hematocrit", "EGD"), ("melena", "hematemesis"), 0.4, 1.0),
    Condition("aki", "acute", ("5849",), ("acute kidney injury", "AKI", "acute renal failure"),
              {"creat": 2.6, "bun": 35, "k": 0.9, "hco3": -5, "ph": -0.06},
              ("sodium_bicarb", "ns_bolus"), ("hemodialysis",),
              ("renal ultrasound", "urinalysis"), ("decreased urine output",), 0.6, 0.8),
    Condition("copd_exac", "acute", ("49121",), ("COPD exacerbation", "acute exacerbation of COPD"),
              {"spo2": -5, "rr": 6, "ph": -0.06, "hco3": 4, "fio2": 0.15},
              ("ipratropium", "albuterol", "prednisone", "azithromycin"), ("niv",),
              ("arterial blood gas", "chest x-ray"), ("wheezing", "shortness of breath"), 0.3, 0.8),
    Condition("liver", "acute", ("5715", "5722"), ("cirrhosis", "hepatic encephalopathy", "decompensated cirrhosis"),
              {"gcs": -3, "plt": -110, "na": -5, "hgb": -2, "map": -6},
              ("lactulose", "rifaximin"), ("paracentesis",),
              ("abdominal ultrasound", "ammonia"), ("confusion", "abdominal distension"), 0.9, 0.7),
    Condition("dka", "acute", ("25013",), ("diabetic ketoacidosis", "DKA"),
              {"glucose": 330, "ph": -0.15, "hco3": -11, "k": 0.8, "hr": 15, "rr": 6},
              ("insulin_drip", "kcl"), (),
              ("anion gap", "beta-hydroxybutyrate"), ("nausea", "vomiting"), -0.5, 0.6),
    Condition("cabg", "acute", ("41401",), ("coronary artery disease", "CAD", "three vessel coronary disease"),
              {"hr": 6, "hgb": -2.2, "temp": -0.4},
              ("aspirin", "metoprolol", "atorvastatin", "furosemide", "insulin_ss"), ("cabg", "bypass_pump"),
              ("echocardiogram", "cardiac catheterization"), ("chest pain",), -1.2, 1.2, careunit="CSRU", service="CSURG", elective=True),
    # chronic: patient-level, persists across admissions
    Condition("htn", "chronic", ("4019",), ("hypertension", "HTN", "high blood pressure"), {"sbp": 12, "map": 6},
              ("amlodipine", "lisinopril"), prevalence=0.45),
    Condition("dm", "chronic", ("25000",), ("diabetes mellitus type 2", "DM2", "type 2 diabetes"), {"glucose": 60},
              ("insulin_ss", "metformin"), prevalence=0.26),
    Condition("lipid", "chronic", ("2724",), ("hyperlipidemia", "HLD", "dyslipidemia"), {}, ("atorvastatin", "simvastatin"), prevalence=0.30),
    Condition("cad", "chronic", ("41401",), ("coronary artery disease", "CAD"), {"trop": 0.02}, ("aspirin",), prevalence=0.22),
    Condition("afib", "chronic", ("42731",), ("atrial fibrillation", "afib", "AF"), {"hr": 14}, ("metoprolol", "warfarin"), risk=0.2, prevalence=0.20),
    Condition("chf_chronic", "chronic", ("4280",), ("congestive heart failure", "CHF"), {"spo2": -1, "na": -1}, ("furosemide",), risk=0.3, prevalence=0.14),
    Condition("copd", "chronic", ("496",), ("COPD", "chronic obstructive pulmonary disease"), {"spo2": -2, "hco3": 2}, ("albuterol",), risk=0.2, prevalence=0.10),
    Condition("ckd", "chronic", ("5859",), ("chronic kidney disease", "CKD"), {"creat": 1.1, "bun": 14, "hgb": -1}, (), risk=0.3, prevalence=0.10),
    Condition("hypothyroid", "chronic", ("2449",), ("hypothyroidism",), {}, ("levothyroxine",), prevalence=0.08),
    Condition("heart_block", "chronic", ("4263",), ("left bundle branch block", "LBBB"), {"hr": -12}, (), prevalence=0.03),
    Condition("tobacco", "chronic", ("3051",), ("tobacco use", "smoker"), {}, (), prevalence=0.12),
    # secondary: coded when the simulated physiology crosses a threshold (see cohort.secondary_codes)
    Condition("acidosis", "secondary", ("2762",), ("metabolic acidosis", "acidosis"), {}),
    Condition("hyponatremia", "secondary", ("2761",), ("hyponatremia",), {}),
    Condition("hyperkalemia", "secondary", ("2767",), ("hyperkalemia",), {}),
    Condition("aki_2", "secondary", ("5849",), ("acute kidney injury", "AKI"), {}),
    Condition("septic_shock", "secondary", ("78552",), ("septic shock",), {}),
    Condition("cardiogenic_shock", "secondary", ("78551",), ("cardiogenic shock",), {}),
    Condition("resp_failure_2", "secondary", ("51881",), ("acute respiratory failure", "respiratory failure"), {}),
    Condition("effusion", "secondary", ("5119",), ("pleural effusion", "effusion"), {}),
    Condition("atelectasis", "secondary", ("5180",), ("atelectasis",), {}),
    Condition("pulm_edema", "secondary", ("5184",), ("pulmonary edema",), {}),
    Condition("sob", "secondary", ("78605",), ("shortness of breath", "dyspnea"), {}),
    Condition("trach", "secondary", ("V440",), ("tracheostomy",), {}),
    Condition("anemia", "secondary", ("2851",), ("acute blood loss anemia", "anemia"), {}),
    Condition("thrombocytopenia", "secondary", ("2875",), ("thrombocytopenia",), {}),
    Condition("postop_bleed", "secondary", ("99811",), ("postoperative hemorrhage",), {}),
    Condition("iatro_ptx", "secondary", ("5121",), ("iatrogenic pneumothorax", "pneumothorax"), {}),
    Condition("uti", "secondary", ("5990",), ("urinary tract infection", "UTI"), {}),
]}
ACUTE = tuple(k for k, c in CONDITIONS.items() if c.role == "acute")
CHRONIC = tuple(k for k, c in CONDITIONS.items() if c.role == "chronic")

# Procedures: key -> (ICD-9 procedure code, note phrases)
PROCEDURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "central_line": ("3893", ("central line placement", "central venous catheter placement", "R IJ central line")),
    "art_line": ("3891", ("arterial line placement", "A-line placement")),
    "intubation": ("9604", ("intubation", "endotracheal intubation")),
    "mech_vent": ("9671", ("mechanical ventilation",)),
    "mech_vent_long": ("9672", ("prolonged mechanical ventilation",)),
    "cardiac_cath": ("3722", ("cardiac catheterization", "left heart cath")),
    "ptca": ("0066", ("PCI", "percutaneous coronary intervention", "angioplasty")),
    "evd": ("0221", ("external ventricular drain placement", "EVD placement")),
    "egd": ("4516", ("EGD", "upper endoscopy")),
    "transfusion": ("9904", ("transfusion of packed red blood cells", "PRBC transfusion")),
    "hemodialysis": ("3995", ("hemodialysis", "HD")),
    "niv": ("9390", ("BiPAP", "non-invasive ventilation")),
    "paracentesis": ("5491", ("paracentesis", "diagnostic paracentesis")),
    "cabg": ("3615", ("CABG", "coronary artery bypass grafting")),
    "bypass_pump": ("3961", ("cardiopulmonary bypass",)),
    "thoracentesis": ("3491", ("thoracentesis",)),
}


@dataclass(frozen=True)
class Drug:
    key: str
    drug: str            # PRESCRIPTIONS.DRUG
    generic: str         # DRUG_NAME_GENERIC
    code: str            # FORMULARY_DRUG_CD
    gsn: str
    ndc: str
    strength: str        # PROD_STRENGTH
    dose: str            # DOSE_VAL_RX
    unit: str            # DOSE_UNIT_RX
    form_val: str
    form_unit: str
    route: str           # ROUTE as PRESCRIPTIONS spells it
    freq: tuple[str, ...]  # frequencies notes use (abbreviation first)
    drug_type: str = "MAIN"
    note_names: tuple[str, ...] = ()  # other ways notes name it


def _d(key, drug, generic, code, gsn, ndc, strength, dose, unit, fv, fu, route, freq, dtype="MAIN", names=()):
    return Drug(key, drug, generic, code, gsn, ndc, strength, dose, unit, fv, fu, route, tuple(freq), dtype, tuple(names))


DRUGS: dict[str, Drug] = {d.key: d for d in [
    _d("vancomycin", "Vancomycin", "Vancomycin", "VANC1F", "043952", "00338355248", "1g Frozen Bag", "1000", "mg", "1", "BAG", "IV", ["q12h", "every 12 hours"], names=["vanco", "vancomycin"]),
    _d("pip_tazo", "Piperacillin-Tazobactam Na", "Piperacillin-Tazobactam Na", "ZOSY4FBAG", "021185", "00206886102", "4.5 g Frozen Bag", "4.5", "g", "1", "BAG", "IV", ["q8h", "every 8 hours"], names=["zosyn", "piperacillin-tazobactam"]),
    _d("cefepime", "CefePIME", "Cefepime", "CEFE2I", "024095", "60505068104", "2g Vial", "2", "g", "1", "VIAL", "IV", ["q12h", "every 12 hours"], names=["cefepime"]),
    _d("norepinephrine", "Norepinephrine", "Norepinephrine", "LEVO4I", "028633", "00703115303", "4mg/4mL Amp", "8", "mg", "2", "AMP", "IV DRIP", ["titrate", "continuous infusion"], names=["levophed", "norepinephrine"]),
    _d("ns_bolus", "0.9% Sodium Chloride", "", "NS1000", "001210", "00338004904", "1000mL Bag", "1000", "mL", "1", "BAG", "IV", ["once", "x1"], "BASE", ["normal saline", "NS"]),
    _d("levofloxacin", "Levofloxacin", "Levofloxacin", "LEVO750PM", "029925", "00045006701", "750mg Premix Bag", "750", "mg", "1", "BAG", "IV", ["q24h", "daily"], names=["levofloxacin", "levaquin"]),
    _d("ceftriaxone", "CeftriaXONE", "Ceftriaxone", "CEFT1I", "009194", "00409733204", "1g Vial", "1", "gm", "1", "VIAL", "IV", ["q24h", "daily"], names=["ceftriaxone"]),
    _d("azithromycin", "Azithromycin", "Azithromycin", "AZIT250", "026721", "00069306075", "250 mg Tab", "250", "mg", "1", "TAB", "PO", ["daily", "once daily"], names=["azithromycin", "azithro"]),
    _d("albuterol", "Albuterol 0.083% Neb Soln", "Albuterol 0.083% Neb Soln", "ALBU3H", "005039", "49502069724", "0.083%;3mL Vial", "1", "NEB", "1", "VIAL", "IH", ["q6h", "every 6 hours"], names=["albuterol nebs", "albuterol"]),
    _d("propofol", "Propofol", "Propofol", "PROP100IG", "016796", "63323026965", "1000mg/100mL Vial", "1000", "mg", "1", "VIAL", "IV DRIP", ["titrate", "continuous infusion"], names=["propofol"]),
    _d("fentanyl", "Fentanyl Citrate", "", "FENT2.5I", "041385", "10019003783", "2.5mg/50mL Vial", "2.5", "mg", "50", "mL", "IV DRIP", ["titrate", "continuous infusion"], names=["fentanyl"]),
    _d("midazolam", "Midazolam", "", "MIDA50I", "003780", "10019002710", "50mg/10mL Vial", "100", "mg", "20", "mL", "IV DRIP", ["titrate", "continuous infusion"], names=["midazolam", "versed"]),
    _d("aspirin", "Aspirin", "Aspirin", "ASA325", "004376", "63739002401", "325mg Tablet", "325", "mg", "1", "TAB", "PO", ["daily", "once a day"], names=["aspirin", "ASA"]),
    _d("heparin_iv", "Heparin Sodium", "", "HEPPREMIX", "060301", "00338055002", "25,000 unit Premix Bag", "25000", "UNIT", "1", "BAG", "IV", ["continuous infusion", "titrate"], names=["heparin gtt", "heparin drip"]),
    _d("heparin_sc", "Heparin", "Heparin Sodium", "HEPA5I", "006549", "63323026201", "5000 Units / mL- 1mL Vial", "5000", "UNIT", "1", "mL", "SC", ["q8h", "TID", "three times daily"], names=["heparin", "heparin SC"]),
    _d("metoprolol", "Metoprolol Tartrate", "Metoprolol Tartrate", "METO25", "050631", "51079025520", "25mg Tablet", "25", "mg", "1", "TAB", "PO", ["BID", "twice daily", "q12h"], names=["metoprolol", "lopressor"]),
    _d("atorvastatin", "Atorvastatin", "Atorvastatin", "ATOR80", "029967", "00071015623", "80mg Tablet", "80", "mg", "1", "TAB", "PO", ["daily", "qhs", "at bedtime"], names=["atorvastatin", "lipitor"]),
    _d("clopidogrel", "Clopidogrel Bisulfate", "Clopidogrel Bisulfate", "CLOP75", "045022", "63653117103", "75 mg Tablet", "75", "mg", "1", "TAB", "PO", ["daily", "once daily"], names=["clopidogrel", "plavix"]),
    _d("furosemide", "Furosemide", "Furosemide", "FURO40I", "008205", "00517570425", "40mg/4mL Vial", "40", "mg", "1", "VIAL", "IV", ["BID", "q12h", "twice a day"], names=["furosemide", "lasix"]),
    _d("lisinopril", "Lisinopril", "Lisinopril", "LISI5", "000393", "00172375810", "5mg Tablet", "5", "mg", "1", "TAB", "PO", ["daily", "once daily"], names=["lisinopril"]),
    _d("labetalol", "Labetalol", "Labetalol HCl", "LABE100", "006217", "00172436460", "100mg Tablet", "200", "mg", "2", "TAB", "PO", ["TID", "three times daily"], names=["labetalol"]),
    _d("levetiracetam", "LeVETiracetam", "Levetiracetam", "LEVE500", "051055", "50474059440", "500mg Tablet", "500", "mg", "1", "TAB", "PO", ["BID", "twice daily"], names=["levetiracetam", "keppra"]),
    _d("pantoprazole_iv", "Pantoprazole Sodium", "", "PANT40I", "047635", "00008092355", "40mg Vial", "40", "mg", "1", "VIAL", "IV", ["q12h", "BID", "twice daily"], names=["pantoprazole", "protonix"]),
    _d("pantoprazole", "Pantoprazole", "Pantoprazole", "PANT40", "027462", "00008084199", "40mg Tablet", "40", "mg", "1", "TAB", "PO", ["daily", "once a day"], names=["pantoprazole", "protonix"]),
    _d("octreotide", "Octreotide Acetate", "Octreotide Acetate", "OCTR100I", "025385", "00078018101", "100mcg/mL Ampule", "50", "mcg", "0.5", "mL", "IV DRIP", ["continuous infusion"], names=["octreotide"]),
    _d("sodium_bicarb", "Sodium Bicarbonate", "", "NABC50I", "001185", "00409662502", "50mEq Vial", "150", "mEq", "3", "VIAL", "IV", ["once", "x1"], names=["sodium bicarbonate", "bicarb"]),
    _d("ipratropium", "Ipratropium Bromide Neb", "Ipratropium Bromide Neb", "IPRA2H", "021700", "00487980125", "2.5mL Vial", "1", "NEB", "1", "VIAL", "IH", ["q6h", "QID"], names=["ipratropium", "atrovent"]),
    _d("prednisone", "PredniSONE", "PredniSONE", "PRED20", "006751", "00054001820", "20 mg Tablet", "40", "mg", "2", "TAB", "PO", ["daily", "once daily"], names=["prednisone"]),
    _d("lactulose", "Lactulose", "Lactulose", "LACT30L", "003067", "00054848616", "20g/30mL Cup", "30", "mL", "1", "UDCUP", "PO", ["TID", "three times a day"], names=["lactulose"]),
    _d("rifaximin", "Rifaximin", "Rifaximin", "RIFA550", "064775", "65649030303", "550 mg Tab", "550", "mg", "1", "TAB", "PO", ["BID", "twice daily"], names=["rifaximin"]),
    _d("insulin_drip", "Insulin", "Insulin Regular", "INSULIN100", "001723", "00002821501", "100 Units / mL - 10 mL Vial", "100", "UNIT", "1", "VIAL", "IV DRIP", ["titrate", "continuous infusion"], names=["insulin drip", "insulin gtt"]),
    _d("insulin_ss", "Insulin", "Insulin - Sliding Scale", "INSULIN", "001723", "0", "Dummy Package for Sliding Scale", "0", "UNIT", "0", "VIAL", "SC", ["QACHS", "with meals and at bedtime"], names=["insulin sliding scale", "ISS"]),
    _d("kcl", "Potassium Chloride", "", "KCL20PM", "045309", "00338070341", "20mEq/50mL Premix", "40", "mEq", "2", "BAG", "IV", ["once", "x1", "prn"], names=["potassium chloride", "KCl"]),
    _d("amlodipine", "Amlodipine", "Amlodipine", "AMLO5", "016926", "00069152068", "5 mg Tab", "5", "mg", "1", "TAB", "PO", ["daily", "once daily"], names=["amlodipine", "norvasc"]),
    _d("metformin", "MetFORMIN (Glucophage)", "Metformin", "METF500", "010857", "00087606010", "500 mg Tab", "500", "mg", "1", "TAB", "PO", ["BID", "twice daily"], names=["metformin"]),
    _d("simvastatin", "Simvastatin", "Simvastatin", "SIMV20", "016578", "00006074054", "20 mg Tablet", "20", "mg", "1", "TAB", "PO", ["daily", "qhs"], names=["simvastatin", "zocor"]),
    _d("warfarin", "Warfarin", "Warfarin", "WARF5", "006562", "00056017275", "5mg Tablet", "5", "mg", "1", "TAB", "PO", ["daily", "qpm", "once daily in the evening"], names=["warfarin", "coumadin"]),
    _d("levothyroxine", "Levothyroxine Sodium", "Levothyroxine Sodium", "LEVO50", "006649", "00074455213", "50mcg Tablet", "50", "mcg", "1", "TAB", "PO", ["daily", "once daily"], names=["levothyroxine", "synthroid"]),
    _d("acetaminophen", "Acetaminophen", "Acetaminophen", "ACET325", "004489", "00182844789", "325mg Tablet", "650", "mg", "2", "TAB", "PO", ["q6h prn", "every 6 hours as needed"], names=["acetaminophen", "tylenol"]),
    _d("docusate", "Docusate Sodium", "Docusate Sodium", "DOCU100", "003009", "00904224461", "100mg Capsule", "100", "mg", "1", "CAP", "PO", ["BID", "twice daily"], names=["docusate", "colace"]),
    _d("senna", "Senna", "Senna", "SENN187", "019964", "00904516561", "1 Tablet", "1", "TAB", "1", "TAB", "PO", ["BID prn", "twice daily as needed"], names=["senna"]),
    _d("ondansetron", "Ondansetron", "Ondansetron", "ONDAN4I", "061716", "00781305714", "2mg/mL-2mL", "4", "mg", "1", "VIAL", "IV", ["q8h prn", "every 8 hours as needed"], names=["ondansetron", "zofran"]),
    _d("flush", "Sodium Chloride 0.9%  Flush", "Sodium Chloride 0.9%  Flush", "NACLFLUSH", "", "0", "Syringe", "3", "mL", "0.6", "SYR", "IV", ["q8h", "every 8 hours"], names=["saline flush"]),
    _d("d5w", "D5W", "", "D5W250", "001972", "00338001702", "250mL Bag", "250", "ml", "250", "ml", "IV DRIP", ["continuous"], "BASE", ["D5W"]),
    _d("magnesium", "Magnesium Sulfate", "", "MAG2PM", "016546", "00409672924", "2 g / 50 mL Premix Bag", "2", "gm", "1", "BAG", "IV", ["once", "prn"], names=["magnesium sulfate", "mag sulfate"]),
    _d("morphine", "Morphine Sulfate", "", "MORP2I", "004091", "00409189001", "2mg Syringe", "2", "mg", "1", "SYR", "IV", ["q4h prn", "every 4 hours as needed"], names=["morphine"]),
    _d("lorazepam", "Lorazepam", "Lorazepam", "LORA2I", "003753", "00409198530", "2mg/mL Syringe", "1", "mg", "0.5", "mL", "IV", ["q6h prn", "every 6 hours as needed"], names=["lorazepam", "ativan"]),
]}
# Ordered on most ICU admissions regardless of diagnosis, with probabilities.
COMMON_DRUGS: tuple[tuple[str, float], ...] = (
    ("heparin_sc", 0.55), ("pantoprazole", 0.35), ("acetaminophen", 0.5), ("docusate", 0.45),
    ("senna", 0.35), ("flush", 0.5), ("kcl", 0.45), ("magnesium", 0.35), ("d5w", 0.3),
    ("ondansetron", 0.25), ("morphine", 0.2), ("lorazepam", 0.12),
)

# ---- chart / lab / output items -------------------------------------------------------------
# channel -> {dbsource: [(itemid, kind)]}; kinds drive units and value formatting.
CHART_ITEMS: dict[str, dict[str, list[tuple[int, str]]]] = {
    "hr": {"carevue": [(211, "num")], "metavision": [(220045, "num")]},
    "sbp": {"carevue": [(51, "art"), (455, "nbp")], "metavision": [(220050, "art"), (220179, "nbp")]},
    "dbp": {"carevue": [(8368, "art"), (8441, "nbp")], "metavision": [(220051, "art"), (220180, "nbp")]},
    "map": {"carevue": [(52, "art"), (456, "nbp")], "metavision": [(220052, "art"), (220181, "nbp")]},
    "rr": {"carevue": [(618, "num")], "metavision": [(220210, "num")]},
    "spo2": {"carevue": [(646, "num")], "metavision": [(220277, "num")]},
    "temp": {"carevue": [(678, "F"), (677, "C")], "metavision": [(223761, "F"), (223762, "C")]},
    "fio2": {"carevue": [(3420, "frac")], "metavision": [(223835, "pct")]},
    "glucose": {"carevue": [(807, "num")], "metavision": [(225664, "num")]},
    "ph": {"carevue": [(780, "num")], "metavision": [(223830, "num")]},
    "gcs_eye": {"carevue": [(184, "cv")], "metavision": [(220739, "mv")]},
    "gcs_motor": {"carevue": [(454, "cv")], "metavision": [(223901, "mv")]},
    "gcs_verbal": {"carevue": [(723, "cv")], "metavision": [(223900, "mv")]},
    "gcs_total": {"carevue": [(198, "num")]},
    "crr": {"carevue": [(3348, "cv")]},
    "weight": {"carevue": [(763, "kg")], "metavision": [(224639, "kg"), (226512, "kg"), (226531, "lb")]},
    "height": {"carevue": [(1394, "in")], "metavision": [(226730, "cm")]},
}
UNITS = {"hr": "bpm", "sbp": "mmHg", "dbp": "mmHg", "map": "mmHg", "rr": "insp/min", "spo2": "%",
         "glucose": "mg/dL", "ph": "units", "F": "?F", "C": "?C", "frac": "", "pct": "%",
         "kg": "kg", "lb": "lbs", "cm": "cm", "in": "Inch"}
GCS_TEXT = {
    "gcs_eye": {"cv": {1: "To Pain", 2: "To Pain", 3: "To Speech", 4: "Spontaneously"},
                "mv": {1: "1 No Response", 2: "2 To pain", 3: "3 To speech", 4: "4 Spontaneously"}},
    "gcs_motor": {"cv": {1: "No response", 2: "Abnormal extension", 3: "Abnormal Flexion", 4: "Flex-withdraws", 5: "Localizes Pain", 6: "Obeys Commands"},
                  "mv": {1: "1 No Response", 2: "2 Abnorm extensn", 3: "3 Abnorm flexion", 4: "4 Flex-withdraws", 5: "5 Localizes Pain", 6: "6 Obeys Commands"}},
    "gcs_verbal": {"cv": {0: "No Response-ETT", 1: "No Response", 2: "Incomprehensible sounds", 3: "Inappropriate Words", 4: "Confused", 5: "Oriented"},
                   "mv": {0: "1.0 ET/Trach", 1: "1 No Response", 2: "2 Incomp sounds", 3: "3 Inapprop words", 4: "4 Confused", 5: "5 Oriented"}},
}
# Lab channel -> (itemid, unit, low, high, decimals, note name)
LAB_ITEMS: dict[str, tuple[int, str, float, float, int, str]] = {
    "glucose": (50931, "mg/dL", 70, 105, 0, "glucose"),
    "ph": (50820, "units", 7.35, 7.45, 2, "pH"),
    "creat": (50912, "mg/dL", 0.5, 1.1, 1, "creatinine"),
    "bun": (51006, "mg/dL", 6, 20, 0, "BUN"),
    "na": (50983, "mEq/L", 133, 145, 0, "sodium"),
    "k": (50971, "mEq/L", 3.3, 5.1, 1, "potassium"),
    "hco3": (50882, "mEq/L", 22, 32, 0, "bicarbonate"),
    "cl": (50902, "mEq/L", 96, 108, 0, "chloride"),
    "wbc": (51301, "K/uL", 4.0, 11.0, 1, "WBC"),
    "hgb": (51222, "g/dL", 12.0, 16.0, 1, "hemoglobin"),
    "plt": (51265, "K/uL", 150, 440, 0, "platelets"),
    "lactate": (50813, "mmol/L", 0.5, 2.0, 1, "lactate"),
    "trop": (51003, "ng/mL", 0.0, 0.01, 2, "troponin"),
}
BLOOD_GAS = ("ph", "lactate")  # drawn only with an arterial line / respiratory problem
OUTPUT_ITEMS = {"carevue": 40055, "metavision": 226559}
INPUT_ITEMS = {  # metavision inputs: itemid, amount unit, rate unit, order category
    "ns": (225158, "ml", "mL/hour", "03-IV Fluid Bolus"),
    "norepinephrine": (221906, "mg", "mcg/kg/min", "01-Drips"),
    "propofol": (222168, "mg", "mcg/kg/min", "01-Drips"),
    "insulin": (223258, "units", "units/hour", "01-Drips"),
    "fentanyl": (221744, "mg", "mcg/hour", "01-Drips"),
    "d5w": (220949, "ml", "mL/hour", "02-Fluids (Crystalloids)"),
}


@lru_cache(maxsize=None)
def dictionary(name: str) -> list[dict[str, str]]:
    """Rows of a packaged dictionary table (``d_items``, ``d_labitems``, ``d_icd_diagnoses``,
    ``d_icd_procedures``), in file order."""
    with open(DATA / f"{name}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def background_codes() -> tuple[tuple[str, ...], "np.ndarray"]:
    """Frequent MIMIC-III codes outside the benchmark phenotypes and their sampling weights."""
    import numpy as np

    rows = dictionary("dx_background")
    w = np.array([float(r["WEIGHT"]) for r in rows])
    return tuple(r["ICD9_CODE"] for r in rows), w / w.sum()


HTN_CKD_CODE = "40390"  # hypertension + CKD is coded as hypertensive CKD (HTN with complications)


def all_diagnosis_codes() -> list[str]:
    return sorted({code for c in CONDITIONS.values() for code in c.codes} | {HTN_CKD_CODE})


def all_procedure_codes() -> list[str]:
    return sorted({code for code, _ in PROCEDURES.values()})


def all_chart_itemids() -> list[int]:
    return sorted({i for d in CHART_ITEMS.values() for items in d.values() for i, _ in items})
