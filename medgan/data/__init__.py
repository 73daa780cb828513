"""Data: raw cohorts -> prepared tfds shards -> benchmark folds -> sharded batches.

Sources (`sources` is the interface and the registry; `chexpert`, `rsna_ich`,
`phantoms/`, and `synthetic` for a generated cohort), pixel plumbing
(`imaging`, `windowing`, `labels`, `csvfile`, `records`), preparing
(`builders`), a job's cohort and fold (`cohorts`, `folds`) and the input
pipeline (`pipeline`).
"""
