"""Label vocabularies of the cohorts medgan knows.

The order of each tuple is the order of the multi-hot label vector everywhere
in medgan (prepared shards, folds, batches, model outputs).
"""

# CheXpert's 14 observations in the column order of its train.csv.
CHEXPERT_FINDINGS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# RSNA intracranial haemorrhage subtypes as spelled in stage_2_train.csv.
ICH_SUBTYPES = (
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
)

# The study replaces RSNA's "any" by its complement, "no finding", so that
# every image has at least one positive label (docs/ARCHITECTURE.md, "The benchmark definitions").
ICH_CLASSES = ("no finding",) + ICH_SUBTYPES

# Mammogram patch findings of the contextual-GAN study.
MAMMO_CLASSES = ("normal", "mass", "calcification")

CLASSES_BY_MODALITY = {
    "chest": CHEXPERT_FINDINGS,
    "head_ct": ICH_CLASSES,
    "mammo": MAMMO_CLASSES,
}
