"""Evaluation: how good a classifier is and how close synthetic images are to real ones.

`auc` (per-class ROC AUC, DeLong variances, CIs and paired tests, ROC curves),
`fidelity` (Fréchet distance in classifier features), `features` (the
feature extractor of a finished real-trained classifier) and `scoring`
(every image of a split scored once, aligned by id for paired tests).
"""
