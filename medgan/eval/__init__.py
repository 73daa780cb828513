"""Evaluation: per-class ROC AUC with DeLong intervals and paired tests (auc)."""
