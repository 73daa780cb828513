"""Data: raw cohorts -> prepared tfds shards -> benchmark folds -> sharded batches."""
