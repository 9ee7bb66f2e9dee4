"""MIMIC-III v1.4 table schemas: the one place that says what each table looks like.

Column names and order follow the full release (upper-case headers, ``TABLE.csv.gz``); the
PhysioNet demo ships the same columns with lower-case headers as ``table.csv``. Types are
the logical types of the PostgreSQL DDL of the release, reduced to what pandas/DuckDB need:

- ``int``: integer id or count (nullable ints are read as pandas ``Int64``)
- ``float``: numeric measurement
- ``str``: free text or code (ICD-9 codes are strings: leading zeros matter, ``"0389"``)
- ``datetime``: ``YYYY-MM-DD HH:MM:SS`` (dates are shifted into 2100-2200 in the release)

``nullable=False`` marks columns the release never leaves empty; the loader and
``validate-data`` report a table whose non-nullable column has empty cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # int | float | str | datetime
    nullable: bool = True


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    large: bool = False  # streamed in chunks, never loaded whole

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name.upper():
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def of_type(self, *types: str) -> list[str]:
        return [c.name for c in self.columns if c.type in types]


def _parse(spec: str) -> tuple[Column, ...]:
    """``"ROW_ID:int! SUBJECT_ID:int! VALUE:str"`` -> columns; ``!`` means NOT NULL."""
    cols = []
    for token in spec.split():
        name, typ = token.split(":")
        nullable = not typ.endswith("!")
        cols.append(Column(name, typ.rstrip("!"), nullable))
    return tuple(cols)


_SPECS: dict[str, str] = {
    "ADMISSIONS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! ADMITTIME:datetime! DISCHTIME:datetime! "
    "DEATHTIME:datetime ADMISSION_TYPE:str! ADMISSION_LOCATION:str! DISCHARGE_LOCATION:str! "
    "INSURANCE:str! LANGUAGE:str RELIGION:str MARITAL_STATUS:str ETHNICITY:str! EDREGTIME:datetime "
    "EDOUTTIME:datetime DIAGNOSIS:str HOSPITAL_EXPIRE_FLAG:int HAS_CHARTEVENTS_DATA:int!",
    "CALLOUT": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! SUBMIT_WARDID:int SUBMIT_CAREUNIT:str "
    "CURR_WARDID:int CURR_CAREUNIT:str CALLOUT_WARDID:int CALLOUT_SERVICE:str! REQUEST_TELE:int! "
    "REQUEST_RESP:int! REQUEST_CDIFF:int! REQUEST_MRSA:int! REQUEST_VRE:int! CALLOUT_STATUS:str! "
    "CALLOUT_OUTCOME:str! DISCHARGE_WARDID:int ACKNOWLEDGE_STATUS:str! CREATETIME:datetime! "
    "UPDATETIME:datetime! ACKNOWLEDGETIME:datetime OUTCOMETIME:datetime! "
    "FIRSTRESERVATIONTIME:datetime CURRENTRESERVATIONTIME:datetime",
    "CAREGIVERS": "ROW_ID:int! CGID:int! LABEL:str DESCRIPTION:str",
    "CHARTEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ICUSTAY_ID:int ITEMID:int "
    "CHARTTIME:datetime STORETIME:datetime CGID:int VALUE:str VALUENUM:float VALUEUOM:str "
    "WARNING:int ERROR:int RESULTSTATUS:str STOPPED:str",
    "CPTEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! COSTCENTER:str! CHARTDATE:datetime "
    "CPT_CD:str! CPT_NUMBER:int CPT_SUFFIX:str TICKET_ID_SEQ:int SECTIONHEADER:str "
    "SUBSECTIONHEADER:str DESCRIPTION:str",
    "D_CPT": "ROW_ID:int! CATEGORY:int! SECTIONRANGE:str! SECTIONHEADER:str! SUBSECTIONRANGE:str! "
    "SUBSECTIONHEADER:str! CODESUFFIX:str MINCODEINSUBSECTION:int! MAXCODEINSUBSECTION:int!",
    "D_ICD_DIAGNOSES": "ROW_ID:int! ICD9_CODE:str! SHORT_TITLE:str! LONG_TITLE:str!",
    "D_ICD_PROCEDURES": "ROW_ID:int! ICD9_CODE:str! SHORT_TITLE:str! LONG_TITLE:str!",
    "D_ITEMS": "ROW_ID:int! ITEMID:int! LABEL:str ABBREVIATION:str DBSOURCE:str LINKSTO:str "
    "CATEGORY:str UNITNAME:str PARAM_TYPE:str CONCEPTID:int",
    "D_LABITEMS": "ROW_ID:int! ITEMID:int! LABEL:str! FLUID:str! CATEGORY:str! LOINC_CODE:str",
    "DATETIMEEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ICUSTAY_ID:int ITEMID:int! "
    "CHARTTIME:datetime! STORETIME:datetime! CGID:int! VALUE:datetime VALUEUOM:str! WARNING:int "
    "ERROR:int RESULTSTATUS:str STOPPED:str",
    "DIAGNOSES_ICD": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! SEQ_NUM:int ICD9_CODE:str",
    "DRGCODES": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! DRG_TYPE:str! DRG_CODE:str! "
    "DESCRIPTION:str DRG_SEVERITY:int DRG_MORTALITY:int",
    "ICUSTAYS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! ICUSTAY_ID:int! DBSOURCE:str! "
    "FIRST_CAREUNIT:str! LAST_CAREUNIT:str! FIRST_WARDID:int! LAST_WARDID:int! INTIME:datetime! "
    "OUTTIME:datetime LOS:float",
    "INPUTEVENTS_CV": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ICUSTAY_ID:int CHARTTIME:datetime "
    "ITEMID:int AMOUNT:float AMOUNTUOM:str RATE:float RATEUOM:str STORETIME:datetime CGID:int "
    "ORDERID:int LINKORDERID:int STOPPED:str NEWBOTTLE:int ORIGINALAMOUNT:float "
    "ORIGINALAMOUNTUOM:str ORIGINALROUTE:str ORIGINALRATE:float ORIGINALRATEUOM:str ORIGINALSITE:str",
    "INPUTEVENTS_MV": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ICUSTAY_ID:int STARTTIME:datetime "
    "ENDTIME:datetime ITEMID:int AMOUNT:float AMOUNTUOM:str RATE:float RATEUOM:str "
    "STORETIME:datetime CGID:int ORDERID:int LINKORDERID:int ORDERCATEGORYNAME:str "
    "SECONDARYORDERCATEGORYNAME:str ORDERCOMPONENTTYPEDESCRIPTION:str ORDERCATEGORYDESCRIPTION:str "
    "PATIENTWEIGHT:float TOTALAMOUNT:float TOTALAMOUNTUOM:str ISOPENBAG:int CONTINUEINNEXTDEPT:int "
    "CANCELREASON:int STATUSDESCRIPTION:str COMMENTS_EDITEDBY:str COMMENTS_CANCELEDBY:str "
    "COMMENTS_DATE:datetime ORIGINALAMOUNT:float ORIGINALRATE:float",
    "LABEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ITEMID:int! CHARTTIME:datetime VALUE:str "
    "VALUENUM:float VALUEUOM:str FLAG:str",
    "MICROBIOLOGYEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int CHARTDATE:datetime "
    "CHARTTIME:datetime SPEC_ITEMID:int SPEC_TYPE_DESC:str ORG_ITEMID:int ORG_NAME:str "
    "ISOLATE_NUM:int AB_ITEMID:int AB_NAME:str DILUTION_TEXT:str DILUTION_COMPARISON:str "
    "DILUTION_VALUE:float INTERPRETATION:str",
    "NOTEEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int CHARTDATE:datetime CHARTTIME:datetime "
    "STORETIME:datetime CATEGORY:str DESCRIPTION:str CGID:int ISERROR:str TEXT:str",
    "OUTPUTEVENTS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int ICUSTAY_ID:int CHARTTIME:datetime "
    "ITEMID:int VALUE:float VALUEUOM:str STORETIME:datetime CGID:int STOPPED:str NEWBOTTLE:str "
    "ISERROR:int",
    "PATIENTS": "ROW_ID:int! SUBJECT_ID:int! GENDER:str! DOB:datetime! DOD:datetime "
    "DOD_HOSP:datetime DOD_SSN:datetime EXPIRE_FLAG:int!",
    "PRESCRIPTIONS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! ICUSTAY_ID:int STARTDATE:datetime "
    "ENDDATE:datetime DRUG_TYPE:str! DRUG:str! DRUG_NAME_POE:str DRUG_NAME_GENERIC:str "
    "FORMULARY_DRUG_CD:str GSN:str NDC:str PROD_STRENGTH:str DOSE_VAL_RX:str DOSE_UNIT_RX:str "
    "FORM_VAL_DISP:str FORM_UNIT_DISP:str ROUTE:str",
    "PROCEDUREEVENTS_MV": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! ICUSTAY_ID:int "
    "STARTTIME:datetime ENDTIME:datetime ITEMID:int VALUE:float VALUEUOM:str LOCATION:str "
    "LOCATIONCATEGORY:str STORETIME:datetime CGID:int ORDERID:int LINKORDERID:int "
    "ORDERCATEGORYNAME:str SECONDARYORDERCATEGORYNAME:str ORDERCATEGORYDESCRIPTION:str "
    "ISOPENBAG:int CONTINUEINNEXTDEPT:int CANCELREASON:int STATUSDESCRIPTION:str "
    "COMMENTS_EDITEDBY:str COMMENTS_CANCELEDBY:str COMMENTS_DATE:datetime",
    "PROCEDURES_ICD": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! SEQ_NUM:int! ICD9_CODE:str!",
    "SERVICES": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! TRANSFERTIME:datetime! PREV_SERVICE:str "
    "CURR_SERVICE:str",
    "TRANSFERS": "ROW_ID:int! SUBJECT_ID:int! HADM_ID:int! ICUSTAY_ID:int DBSOURCE:str "
    "EVENTTYPE:str PREV_CAREUNIT:str CURR_CAREUNIT:str PREV_WARDID:int CURR_WARDID:int "
    "INTIME:datetime OUTTIME:datetime LOS:float",
}

LARGE_TABLES = frozenset({"CHARTEVENTS", "LABEVENTS", "NOTEEVENTS", "INPUTEVENTS_CV",
                          "INPUTEVENTS_MV", "OUTPUTEVENTS", "DATETIMEEVENTS"})

TABLES: dict[str, TableSchema] = {
    name: TableSchema(name, _parse(spec), large=name in LARGE_TABLES)
    for name, spec in _SPECS.items()
}
ALL_TABLES: tuple[str, ...] = tuple(sorted(TABLES))

# Tables the synthetic generator writes (issue: data layer) and the task builder reads.
SYNTH_TABLES: tuple[str, ...] = (
    "PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "CHARTEVENTS", "LABEVENTS",
    "OUTPUTEVENTS", "INPUTEVENTS_MV", "PRESCRIPTIONS", "DIAGNOSES_ICD", "PROCEDURES_ICD",
    "NOTEEVENTS", "D_ITEMS", "D_LABITEMS", "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES",
)
# What the benchmark task builder needs at minimum.
TASK_TABLES: tuple[str, ...] = (
    "PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "DIAGNOSES_ICD", "CHARTEVENTS", "LABEVENTS",
    "OUTPUTEVENTS",
)


def table(name: str) -> TableSchema:
    """Schema by table name, case-insensitive; a clear error for an unknown name."""
    key = name.upper()
    if key not in TABLES:
        raise KeyError(f"unknown MIMIC-III table {name!r}; known: {', '.join(ALL_TABLES)}")
    return TABLES[key]


def tables(names: Iterable[str]) -> list[TableSchema]:
    return [table(n) for n in names]
