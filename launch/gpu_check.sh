#!/usr/bin/env bash
# The GPU check, one call: installs jax with CUDA from the package registry, then times
#   - the GAN D+G step of each model at 256 px with the study config's per-device batch, bf16;
#   - the classifiers (the demo's and DenseNet-121 at 224 px);
# and prints s/kimg beside stylegan2-ada-pytorch's published figures at 256 px
# (21.6 s/kimg on one V100, 12.5 on one A100; its README, "Expected training time").
#
#   bash launch/gpu_check.sh [OUT_DIR]      # about 10 minutes on one H100/H200, most of it installing
#
# Nothing is downloaded but pip packages; results go to OUT_DIR (default $OUT or /tmp/medgan-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/medgan-gpu}}
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/gpu.txt"

VENV=/tmp/medgan-gpu-venv
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -e . "jax[cuda12]>=0.10,<0.11" > "$OUT_DIR/pip.log" 2>&1
"$VENV/bin/python" -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT_DIR/gpu.txt"

# Per-device batch at 256 px of the study configs (medgan.study.presets): pggan 16, stylegan2 8, cpd 16.
for spec in pggan:16 stylegan2:8 cpd:16; do
  model=${spec%%:*}; batch=${spec##*:}
  "$VENV/bin/python" launch/bench.py gan --models "$model" --resolution 256 --batch "$batch" --dtype bfloat16 \
    --steps 16 --repeats 3 --memory "256:$batch" --workdir "$OUT_DIR" --out "$OUT_DIR/gan_$model.json" \
    2>>"$OUT_DIR/stderr.log" | tee -a "$OUT_DIR/gan.txt"
done
"$VENV/bin/python" launch/bench.py classifier --repeats 5 --workdir "$OUT_DIR" --out "$OUT_DIR/classifier.json" \
  2>>"$OUT_DIR/stderr.log" | tee "$OUT_DIR/classifier.txt"

"$VENV/bin/python" - "$OUT_DIR" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print("\n| model | px | batch/device | img/s | s/kimg | stylegan2-ada-pytorch s/kimg (V100 / A100) |")
print("|---|---:|---:|---:|---:|---|")
for path in sorted(glob.glob(os.path.join(out, "gan_*.json"))):
    for row in json.load(open(path))["steps"]:
        print(f"| {row['model']} | {row['resolution']} | {row['batch']} | {row['images_per_second']:.1f} | "
              f"{1000 / row['images_per_second']:.1f} | 21.6 / 12.5 |")
PY
