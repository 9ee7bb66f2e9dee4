"""Maintainer tool: refresh the filler items of ``clinical-ml synth --density release``
(``data/release_items.csv``) and their dictionary rows (``data/release_d_items.csv``,
``data/release_d_labitems.csv``) from the MIMIC-III demo (ODbL).

    python -m clinical_ml.synth.build_release ../shared/data/mimic3-demo

Chart items and CareVue inputs are curated below (the demo has no CHARTEVENTS or INPUTEVENTS_CV):
frequent release items with plausible values. Lab, output and MetaVision input items are the
demo's most frequent ones, with their units, order categories and value quantiles. Benchmark
itemids (``clinical_ml.tasks.variables.itemid_map``) and items the generator already simulates
are never filler. Generation never runs this: the CSVs are committed package data.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.synth import vocab
from clinical_ml.synth.build_vocab import write_subset
from clinical_ml.tasks.variables import itemid_map

COLUMNS = ("TABLE", "DBSOURCE", "ITEMID", "WEIGHT", "UOM", "UOM2", "CAT", "CAT2", "DECIMALS", "P_LOW",
           "P_HIGH", "MINUTES", "VALUES", "VALUES2")
QUANTILES = np.linspace(0.01, 0.99, 11)  # stored as 11 evenly spaced inverse-CDF points
LUNG = "Clear:45|Diminished:35|Crackles:12|Rhonchi:5|Wheeze:3"
PULSE = "Palpable:60|Doppler:30|Absent:10"
BRADEN = "No Impairment:40|Slight Impairment:35|Very Limited:20|Completely Limited:5"
# (dbsource, itemid, weight, uom, decimals, values): "a|b|c" numbers are inverse-CDF points,
# "text:weight|..." text options
CHART = (
    ("carevue", 212, 10, "", 0, "Sinus Rhythm:60|Sinus Tachy:15|Atrial Fib:12|Sinus Brady:6|1st Deg AV Block:4|Paced:3"),
    ("carevue", 161, 9, "", 0, "None:70|PVC's:15|PAC's:10|Couplets PVC's:3|Bigeminy PVC's:2"),
    ("carevue", 159, 4, "", 0, "Rare:50|Occasional:35|Frequent:15"),
    ("carevue", 128, 3, "", 0, "Full Code:90|Do Not Resuscita:7|Comfort Measures:3"),
    ("carevue", 550, 3, "", 0, "Standard:70|Contact:20|Droplet:5|Neutropenic:5"),
    ("carevue", 1125, 3, "", 0, "MICU:40|CCU:20|CSRU:20|SICU:20"),
    ("carevue", 31, 3, "", 0, "Bedrest:60|Chair:20|Dangle:10|Ambulate:10"),
    ("carevue", 80, 4, "", 0, "Active:65|Hypoactive:25|Absent:10"),
    ("carevue", 1337, 5, "", 0, "Calm/Cooperative:60|Sedated:20|Very Sedated:10|Agitated:5|Unarousable:5"),
    ("carevue", 674, 3, "", 0, "Oral:50|Axillary:25|Blood:15|Rectal:10"),
    ("carevue", 432, 5, "", 0, "Alert:55|Lethargic:20|Arouse to Voice:10|Arouse to Pain:8|Unresponsive:7"),
    ("carevue", 5815, 6, "bpm", 0, "40|50|50|50|50|55|60"),
    ("carevue", 8549, 6, "bpm", 0, "110|120|120|130|130|140|150"),
    ("carevue", 5820, 6, "%", 0, "85|88|88|90|90|90|92"),
    ("carevue", 8554, 6, "%", 0, "100|100|100"),
    ("carevue", 5819, 5, "BPM", 0, "6|8|8|8|10"),
    ("carevue", 8553, 5, "BPM", 0, "30|35|35|35|40"),
    ("carevue", 5817, 4, "mmHg", 0, "80|85|90|90|95"),
    ("carevue", 8551, 4, "mmHg", 0, "150|160|160|170|180"),
    ("carevue", 617, 4, "", 0, "Regular:70|Irregular:15|Labored:10|Shallow:5"),
    ("carevue", 1046, 3, "", 0, "No:70|Yes:30"),
    ("carevue", 704, 3, "", 0, "Side to Side:50|Left Side:20|Right Side:20|Back:10"),
    ("carevue", 707, 2, "", 0, "Foley:80|Voiding:15|Condom Cath:5"),
    ("carevue", 425, 3, "", 0, LUNG), ("carevue", 428, 3, "", 0, LUNG), ("carevue", 599, 3, "", 0, LUNG),
    ("carevue", 643, 3, "", 0, "Normal:70|Pale:20|Jaundiced:5|Flushed:5"),
    ("carevue", 644, 3, "", 0, "Intact:60|Impaired:40"),
    ("carevue", 547, 2, "", 0, "Semi Fowler:60|Supine:20|Left Side:10|Right Side:10"),
    ("carevue", 584, 2, "", 0, "Brisk:70|Sluggish:25|Non-reactive:5"),
    ("carevue", 156, 2, "", 0, PULSE), ("carevue", 8381, 2, "", 0, PULSE),
    ("carevue", 467, 3, "", 0, "Nasal Cannula:45|Ventilator:30|Face Tent:10|None:10|Non-Rebreather:5"),
    ("carevue", 470, 2, "lpm", 1, "1|2|2|3|4|6|10"),
    ("carevue", 663, 1, "", 0, "Family:70|Friends:20|None:10"),
    ("carevue", 87, 1, "", 0, "10|13|15|16|18|20"),
    ("carevue", 88, 1, "", 0, BRADEN), ("carevue", 85, 1, "", 0, BRADEN), ("carevue", 86, 1, "", 0, BRADEN),
    ("carevue", 113, 4, "mmHg", 0, "2|5|7|9|11|13|18"),
    ("carevue", 683, 2, "ml", 0, "400|450|500|500|550|600"),
    ("carevue", 682, 2, "ml", 0, "350|420|480|520|580|700"),
    ("carevue", 506, 2, "cmH2O", 0, "5|5|5|8|10|12"),
    ("carevue", 535, 2, "cmH2O", 0, "15|20|24|28|32|40"),
    ("carevue", 543, 1, "cmH2O", 0, "12|16|19|22|26"),
    ("carevue", 444, 1, "cmH2O", 0, "6|8|10|12|15"),
    ("carevue", 190, 1, "", 2, "0.3|0.4|0.4|0.5|0.6|1"),
    ("carevue", 1623, 2, "", 0, "Yes:100"),
    ("metavision", 220048, 10, "", 0, "SR (Sinus Rhythm):60|ST (Sinus Tachycardia):15|AF (Atrial Fibrillation):12"
                                      "|SB (Sinus Bradycardia):6|1st AV (First degree AV Block):4|V Paced:3"),
    ("metavision", 224650, 8, "", 0, "None:75|PVC's:12|PAC's:10|Bigeminy:3"),
    ("metavision", 220046, 7, "bpm", 0, "110|120|120|130|130|140|150"),
    ("metavision", 220047, 7, "bpm", 0, "40|50|50|50|55|60"),
    ("metavision", 223769, 6, "%", 0, "100|100|100"),
    ("metavision", 223770, 6, "%", 0, "85|88|90|90|92"),
    ("metavision", 224161, 6, "insp/min", 0, "30|35|35|35|40"),
    ("metavision", 224162, 6, "insp/min", 0, "6|8|8|8|10"),
    ("metavision", 226253, 4, "%", 0, "85|88|88|90|90"),
    ("metavision", 224641, 5, "", 0, "Yes:100"),
    ("metavision", 224168, 5, "", 0, "Yes:100"),
    ("metavision", 228096, 5, "", 0, " 0  Alert and calm:55| -1 Awakens to voice:15| -2 Light sedation:10"
                                     "| -3 Moderate sedation:8| -4 Deep sedation:6| +1 Anxious:6"),
    ("metavision", 228299, 1, "", 0, " 0  Alert and calm:50| -1 Awakens to voice:30| -2 Light sedation:20"),
    ("metavision", 226104, 3, "", 0, "Alert:55|Lethargic:20|Arouses to voice:10|Arouses to stimulation:8|Unresponsive:7"),
    ("metavision", 224080, 3, "", 0, "30 Degrees:60|45 Degrees:25|15 Degrees:10|Flat:5"),
    ("metavision", 224082, 3, "", 0, "Side to Side:50|Left Side:20|Right Side:20|Back:10"),
    ("metavision", 224093, 3, "", 0, "Left Side:30|Right Side:30|Supine:20|Sitting up:20"),
    ("metavision", 224084, 3, "", 0, "Bed:60|Chair:25|Ambulate:15"),
    ("metavision", 224054, 1, "", 0, BRADEN), ("metavision", 224055, 1, "", 0, BRADEN),
    ("metavision", 224056, 1, "", 0, BRADEN), ("metavision", 224057, 1, "", 0, BRADEN),
    ("metavision", 224058, 1, "", 0, BRADEN), ("metavision", 224059, 1, "", 0, BRADEN),
    ("metavision", 223999, 1, "", 0, "Pink/Moist:70|Dry:30"),
    ("metavision", 224001, 1, "", 0, "NPO:40|Regular:25|Tube Feeding:20|Cardiac:15"),
    ("metavision", 224003, 2, "", 0, "Soft:60|Distended:20|Firm:10|Tender:10"),
    ("metavision", 224004, 2, "", 0, "Present:70|Hypoactive:20|Absent:10"),
    ("metavision", 224015, 2, "", 0, "Foley:80|Void:15|Condom Cath:5"),
    ("metavision", 224026, 2, "", 0, "Intact:60|Impaired:40"),
    ("metavision", 224027, 2, "", 0, "Warm:80|Cool:15|Hot:5"),
    ("metavision", 224028, 2, "", 0, "Normal:75|Pale:15|Jaundiced:5|Mottled:5"),
    ("metavision", 223986, 2, "", 0, LUNG), ("metavision", 223987, 2, "", 0, LUNG),
    ("metavision", 223988, 2, "", 0, LUNG), ("metavision", 223989, 2, "", 0, LUNG),
    ("metavision", 223990, 2, "", 0, "Normal:70|Labored:20|Shallow:10"),
    ("metavision", 223907, 1, "", 0, "2 mm:30|3 mm:50|4 mm:20"),
    ("metavision", 223934, 1, "", 0, PULSE), ("metavision", 223943, 1, "", 0, PULSE),
    ("metavision", 226732, 3, "", 0, "Nasal cannula:45|Endotracheal tube:30|None:15|Face tent:10"),
    ("metavision", 223849, 2, "", 0, "CMV/ASSIST/AutoFlow:50|CPAP/PSV:35|PRVC/AC:15"),
    ("metavision", 224684, 2, "mL", 0, "400|450|500|500|550|600"),
    ("metavision", 224685, 2, "mL", 0, "350|420|480|520|580|700"),
    ("metavision", 224687, 2, "L/min", 1, "5|7|8|9|10|12"),
    ("metavision", 224688, 2, "insp/min", 0, "10|12|14|16|18|20"),
    ("metavision", 220339, 2, "cmH2O", 0, "5|5|5|8|10|12"),
    ("metavision", 224700, 2, "cmH2O", 0, "5|5|6|8|10|13"),
    ("metavision", 224695, 2, "cmH2O", 0, "15|20|24|28|32|40"),
    ("metavision", 224696, 1, "cmH2O", 0, "12|16|19|22|26"),
    ("metavision", 224697, 2, "cmH2O", 0, "6|8|10|12|15"),
    ("metavision", 220059, 1, "mmHg", 0, "20|28|34|40|48|60"),
    ("metavision", 220060, 1, "mmHg", 0, "8|12|15|18|22|28"),
    ("metavision", 223791, 2, "", 0, "None:60|Mild:20|Mod (Moderate):12|Severe:8"),
    ("metavision", 223792, 2, "", 0, "None:50|IV Push:20|Oral:20|Non-pharmacologic:10"),
    ("metavision", 224089, 2, "", 0, "Pneumoboots:60|SC Heparin:30|None:10"),
    ("metavision", 224087, 1, "", 0, "Standard:60|Low air loss:30|Kinetic:10"),
    ("metavision", 227969, 2, "", 0, "Bed locked:30|Siderails up x2:30|Call light in reach:30|Bed alarm:10"),
    ("metavision", 224024, 1, "", 0, "Family updated by RN:60|Talked to M.D.:40"),
    ("metavision", 224073, 1, "", 0, "Plan of care:50|Medications:30|Disease process:20"),
)
# CareVue inputs: (itemid, weight, amount uom, amounts, rate uom, rates, ORIGINALROUTE)
CV_INPUTS = (
    (30018, 20, "ml", "10|25|50|100|100|250|500|1000", "ml/hr", "5|10|20|30|50|75|100|150", "Intravenous Infusion"),
    (30013, 14, "ml", "5|10|20|25|50|100|250", "ml/hr", "2|5|10|15|20|40", "Intravenous Infusion"),
    (30056, 6, "ml", "30|60|100|120|200|240|480", "", "", "Oral"),
    (30090, 4, "ml", "20|30|40|50|60|70|80", "ml/hr", "20|30|40|50|60|80", "Gastric/Feeding Tube"),
    (30045, 6, "U", "1|2|3|4|6|8|12", "U/hr", "1|2|3|4|6|8|12", "Drip"),
    (30047, 4, "mg", "0.1|0.2|0.4|0.6|1|1.5|3", "mcgkgmin", "0.02|0.05|0.08|0.1|0.15|0.2|0.4", "Drip"),
    (30120, 1, "mg", "0.1|0.2|0.4|0.6|1|1.5|3", "mcgkgmin", "0.02|0.05|0.08|0.1|0.15|0.2|0.4", "Drip"),
    (30051, 2, "U", "1|1.2|2.4|2.4|2.4", "Uhr", "0.02|0.04|0.04|0.04", "Drip"),
    (30118, 3, "mcg", "25|50|75|100|150|200", "mcghr", "25|50|75|100|150|200", "Drip"),
    (30131, 4, "mg", "5|10|20|30|40|60", "mcgkgmin", "10|20|30|40|50|70", "Drip"),
    (30124, 2, "mg", "1|2|3|4|5|8", "mghr", "1|2|3|4|5|8", "Drip"),
    (30025, 4, "U", "500|700|900|1000|1200|1500", "Uhr", "500|700|900|1000|1200|1500", "Drip"),
    (30001, 1, "ml", "250|300|350|375|400", "", "", "Intravenous"),
    (30005, 0.5, "ml", "200|250|300|500", "", "", "Intravenous"),
    (30008, 0.5, "ml", "250|250|500|500", "", "", "Intravenous"),
    (30021, 2, "ml", "50|100|250|500|1000", "ml/hr", "50|75|100|125|150", "Intravenous Infusion"),
    (30063, 4, "ml", "50|100|100|150|200|250", "", "", "Intravenous Push"),
    (30065, 1, "ml", "10|25|50|100", "ml/hr", "10|20|30", "Intravenous Infusion"),
    (30059, 2, "ml", "20|30|50|60|100", "", "", "Gastric/Feeding Tube"),
    (30144, 2, "ml", "10|20|30|50|60", "", "", "Gastric/Feeding Tube"),
    (30026, 2, "mEq", "10|20|20|40|40", "mEq/hr", "10|10|20", "Intravenous Infusion"),
    (30027, 1, "gm", "1|2|2|2|4", "", "", "Intravenous Infusion"),
    (30043, 1, "mg", "20|50|100|150|200", "mcgkgmin", "2|5|5|10|15", "Drip"),
    (30049, 1, "mg", "0.1|0.3|0.6|1|2", "mcgkgmin", "0.25|0.5|1|1.5|2", "Drip"),
    (30127, 1, "mg", "0.2|0.5|1|2|3", "mcgkgmin", "0.2|0.5|1|1.5|2", "Drip"),
    (30123, 1, "mg", "10|20|40|80|120", "", "", "Intravenous Push"),
    (30160, 1, "ml", "25|50|100|250", "ml/hr", "10|25|50|75", "Intravenous Infusion"),
    (30020, 1, "ml", "25|50|100|250", "ml/hr", "10|25|50|75", "Intravenous Infusion"),
)


def _row(table, db, itemid, weight, values, uom="", uom2="", cat="", cat2="", decimals=0, p_low=0.0,
         p_high=0.0, minutes=0.0, values2="") -> dict:
    return dict(zip(COLUMNS, (table, db, int(itemid), weight, uom, uom2, cat, cat2, decimals, round(p_low, 4),
                              round(p_high, 4), round(minutes, 1), values, values2)))


def _quantiles(x: pd.Series) -> str:
    q = np.quantile(x.dropna().to_numpy(float), QUANTILES)
    return "|".join(f"{v:.6g}" for v in q)


def _decimals(values: pd.Series) -> int:
    parts = values.dropna().astype(str).str.extract(r"\.(\d+)$")[0]
    return int(parts.str.len().fillna(0).mode().iat[0]) if len(parts) else 0


def _texts(values: pd.Series, top: int = 5) -> str:
    vc = values.dropna().astype(str).str.strip().value_counts().head(top)
    return "|".join(f"{k.replace('|', '/').replace(':', ' ')}:{v}" for k, v in vc.items())


def lab_rows(demo: Path, exclude: set[int], min_count: int = 100) -> list[dict]:
    le = pd.read_csv(demo / "LABEVENTS_partial.csv", dtype={"VALUE": str})
    le["NUM"] = pd.to_numeric(le["VALUE"], errors="coerce")
    out = []
    for itemid, g in le.groupby("ITEMID"):
        if itemid in exclude or len(g) < min_count:
            continue
        uom = str(g["VALUEUOM"].mode().iat[0]).strip() if g["VALUEUOM"].notna().any() else ""
        abn = g["FLAG"].notna()
        if g["NUM"].notna().mean() >= 0.5:
            med = g["NUM"].median()
            p_low, p_high = float((abn & (g["NUM"] < med)).mean()), float((abn & (g["NUM"] >= med)).mean())
            out.append(_row("LABEVENTS", "", itemid, len(g), _quantiles(g["NUM"]), uom=uom,
                            decimals=_decimals(g.loc[g["NUM"].notna(), "VALUE"]), p_low=p_low, p_high=p_high))
        else:
            out.append(_row("LABEVENTS", "", itemid, len(g), _texts(g["VALUE"]), uom=uom, p_high=float(abn.mean())))
    return out


def output_rows(demo: Path, exclude: set[int], min_count: int = 20) -> list[dict]:
    oe = pd.read_csv(demo / "OUTPUTEVENTS.csv")
    out = []
    for itemid, g in oe.groupby("itemid"):
        if itemid in exclude or len(g) < min_count or g["value"].notna().sum() < min_count:
            continue
        db = "metavision" if itemid >= 220000 else "carevue"
        out.append(_row("OUTPUTEVENTS", db, itemid, len(g), _quantiles(g["value"]), uom=g["valueuom"].mode().iat[0]))
    return out


def mv_input_rows(demo: Path, exclude: set[int], min_count: int = 40) -> list[dict]:
    mv = pd.read_csv(demo / "INPUTEVENTS_MV.csv", parse_dates=["starttime", "endtime"])
    mv = mv[mv["statusdescription"] != "Rewritten"]
    out = []
    for itemid, g in mv.groupby("itemid"):
        if itemid in exclude or len(g) < min_count:
            continue
        rate = g["rate"].notna().mean() >= 0.5
        minutes = float((g["endtime"] - g["starttime"]).dt.total_seconds().median() / 60)
        out.append(_row("INPUTEVENTS_MV", "metavision", itemid, len(g), _quantiles(g["amount"]),
                        uom=g["amountuom"].mode().iat[0], uom2=g["rateuom"].mode().iat[0] if rate else "",
                        cat=g["ordercategoryname"].mode().iat[0], cat2=g["ordercategorydescription"].mode().iat[0],
                        decimals=4, minutes=max(minutes, 1.0), values2=_quantiles(g["rate"]) if rate else ""))
    return out


def curated_rows() -> list[dict]:
    rows = [_row("CHARTEVENTS", db, i, w, v, uom=u, decimals=d) for db, i, w, u, d, v in CHART]
    rows += [_row("INPUTEVENTS_CV", "carevue", i, w, a, uom=au, uom2=ru, cat=route, decimals=2, values2=r)
             for i, w, au, a, ru, r, route in CV_INPUTS]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", help="folder of the MIMIC-III demo (lower-case headers)")
    demo = Path(ap.parse_args(argv).demo)
    simulated = ({i for d in vocab.CHART_ITEMS.values() for items in d.values() for i, _ in items}
                 | set(vocab.OUTPUT_ITEMS.values()) | {v[0] for v in vocab.INPUT_ITEMS.values()}
                 | {v[0] for v in vocab.LAB_ITEMS.values()} | {50817})
    exclude = simulated | {r[0] for r in itemid_map()}
    rows = curated_rows() + lab_rows(demo, exclude) + output_rows(demo, exclude) + mv_input_rows(demo, exclude)
    bad = sorted({r["ITEMID"] for r in rows} & exclude)
    if bad:
        print(f"benchmark or simulated itemids among the filler: {bad}", file=sys.stderr)
        return 1
    with open(vocab.DATA / "release_items.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    for table, out, lab in (("D_ITEMS", "release_d_items", False), ("D_LABITEMS", "release_d_labitems", True)):
        ids = {str(r["ITEMID"]) for r in rows if (r["TABLE"] == "LABEVENTS") == lab}
        if not write_subset(demo, table, "itemid", ids, out):
            return 1
    print(f"release_items: {len(rows)} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
