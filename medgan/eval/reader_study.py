"""A reader study: can a radiologist tell the synthetic images from the real ones?

The study showed real and synthetic chest X-rays to radiologists one at a time.
This module draws such a set (`draw_pairs`: balanced and label-matched, so
the label mix gives nothing away), writes it as one self-contained HTML page
a reader opens offline in any browser (`write_page`), and scores the CSV files
readers send back (`score_answers`): accuracy per reader and resolution with
a Wilson interval and a binomial test against guessing, the AUC of the
confidence-weighted answers, and agreement between readers (Cohen's and
Fleiss' kappa). The answer key is written apart from the page.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

from medgan.eval import auc

ANSWER_COLUMNS = ("reader", "image", "answer", "confidence", "seconds")
ANSWERS = ("real", "synthetic")
CONFIDENCE_LEVELS = 5
KEY_COLUMNS = ("image", "source", "resolution", "labels", "point", "image_id")


def draw_pairs(
    real_labels: np.ndarray, synthetic_labels: np.ndarray, pairs: int, seed: int = 0
) -> list[tuple[int, int]]:
    """`pairs` (real index, synthetic index) with the same label combination, in proportion to the real cohort.

    real_labels [N, K], synthetic_labels [M, K] multi-hot. Real images are
    taken in a random order, each with an unused synthetic image of its label
    combination where one is left; an error says how many could be matched
    when fewer than `pairs`.
    """
    rng = np.random.default_rng(seed)
    available: dict[bytes, list[int]] = {}
    for index in rng.permutation(len(synthetic_labels)):
        available.setdefault(np.asarray(synthetic_labels[index] > 0.5).tobytes(), []).append(int(index))
    drawn = []
    for index in rng.permutation(len(real_labels)):
        pool = available.get(np.asarray(real_labels[index] > 0.5).tobytes())
        if pool:
            drawn.append((int(index), pool.pop()))
            if len(drawn) == pairs:
                return drawn
    raise ValueError(f"only {len(drawn)} real images have an unused synthetic image of their label combination; "
                     f"{pairs} pairs were asked for")


@dataclasses.dataclass(frozen=True)
class ReaderItem:
    """One image of the page under its anonymous name, and what the key records about it."""

    name: str
    png: bytes
    source: str  # "real" or "synthetic"
    resolution: int
    labels: str  # the label combination, for the key only
    point: str = ""  # where the image comes from (a benchmark point), for the key only
    image_id: str = ""  # its id in that point's real or synthetic dataset


def anonymise(items: Sequence[ReaderItem], seed: int = 0) -> list[ReaderItem]:
    """The items in a random order, renamed image-001, image-002, ... (names say nothing of the source)."""
    order = np.random.default_rng(seed).permutation(len(items))
    width = max(3, len(str(len(items))))
    return [dataclasses.replace(items[i], name=f"image-{n + 1:0{width}d}") for n, i in enumerate(order)]


def write_key(path: str, items: Sequence[ReaderItem]) -> None:
    """The answer key as CSV (KEY_COLUMNS); keep it apart from the page."""
    from medgan import fileio

    with fileio.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(KEY_COLUMNS)
        for item in items:
            writer.writerow([item.name, item.source, item.resolution, item.labels, item.point, item.image_id])


def read_key(path: str) -> dict[str, dict]:
    """{image name: {"source", "resolution", "labels", "point", "image_id"}} from a key written by `write_key`."""
    rows = _read_csv(path, KEY_COLUMNS)
    key = {}
    for line, row in rows:
        if row["source"] not in ANSWERS:
            raise ValueError(f"{path}, row {line}: source {row['source']!r} is not one of {ANSWERS}")
        if row["image"] in key:
            raise ValueError(f"{path}, row {line}: image {row['image']!r} is listed twice")
        try:
            resolution = int(row["resolution"])
        except ValueError:
            raise ValueError(f"{path}, row {line}: resolution {row['resolution']!r} is not an integer") from None
        key[row["image"]] = {"source": row["source"], "resolution": resolution, "labels": row["labels"],
                             "point": row["point"], "image_id": row["image_id"]}
    return key


def _read_csv(path: str, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV with a header (BOM and CRLF tolerated); an error names missing columns."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header is {reader.fieldnames}")
        return [(n + 2, {k: (v or "").strip() for k, v in row.items() if k}) for n, row in enumerate(reader)]


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { background: #111; color: #ddd; font: 15px/1.4 system-ui, sans-serif; margin: 0; }
main { max-width: 900px; margin: 0 auto; padding: 16px; text-align: center; }
#image { width: min(60vh, 100%); height: auto; background: #000; }
button { font-size: 16px; margin: 4px; padding: 8px 16px; border-radius: 6px; border: 1px solid #666;
         background: #222; color: #eee; cursor: pointer; }
button.chosen { background: #2f6fb0; border-color: #8bf; }
button:disabled { opacity: 0.4; cursor: default; }
#bar { height: 6px; background: #333; margin: 8px 0; } #fill { height: 6px; background: #2f6fb0; width: 0; }
.hidden { display: none; } kbd { border: 1px solid #666; border-radius: 3px; padding: 0 4px; }
</style></head><body><main>
<h1>__TITLE__</h1>
<section id="start">
<p>__INSTRUCTIONS__</p>
<p>You will see <b id="count"></b> images, one at a time. For each, say whether it is
<b>real</b> or <b>synthetic</b> and how sure you are (1 = guessing, 5 = certain).</p>
<p>Keys: <kbd>R</kbd> real, <kbd>S</kbd> synthetic, <kbd>1</kbd>-<kbd>5</kbd> confidence,
<kbd>Enter</kbd> or <kbd>&rarr;</kbd> next, <kbd>&larr;</kbd> back. Answers stay in this browser
if the page is closed.</p>
<p><label>Your name or initials: <input id="reader" autocomplete="off"></label></p>
<button id="begin">Begin</button>
</section>
<section id="rate" class="hidden">
<div id="progress"></div><div id="bar"><div id="fill"></div></div>
<img id="image" alt="image to rate">
<div><button id="real">Real (R)</button><button id="synthetic">Synthetic (S)</button></div>
<div id="confidence"></div>
<div><button id="back">&larr; Back</button><button id="next">Next &rarr;</button></div>
</section>
<section id="done" class="hidden">
<p>All <span id="total"></span> images answered. Thank you.</p>
<button id="download">Download answers (CSV)</button>
<p>Send the downloaded file to the study team.</p>
</section>
</main>
<script>
const STUDY = __STUDY__;
const IMAGES = __IMAGES__;
const store = "medgan-reader-study-" + STUDY;
let state = JSON.parse(localStorage.getItem(store) || "null") || {reader: "", at: 0, answers: {}};
const $ = (id) => document.getElementById(id);
const save = () => localStorage.setItem(store, JSON.stringify(state));
let shownAt = 0;
$("count").textContent = IMAGES.length; $("total").textContent = IMAGES.length; $("reader").value = state.reader;
for (let c = 1; c <= __LEVELS__; c++) {
  const b = document.createElement("button"); b.textContent = c; b.id = "c" + c;
  b.onclick = () => answer(null, c); $("confidence").appendChild(b);
}
function current() { return state.answers[IMAGES[state.at].name] || {}; }
function show() {
  if (state.at >= IMAGES.length) { $("rate").classList.add("hidden"); $("done").classList.remove("hidden"); return; }
  $("done").classList.add("hidden"); $("rate").classList.remove("hidden");
  const item = IMAGES[state.at], a = current();
  $("image").src = item.src; shownAt = performance.now();
  $("progress").textContent = "Image " + (state.at + 1) + " of " + IMAGES.length;
  $("fill").style.width = (100 * state.at / IMAGES.length) + "%";
  for (const k of ["real", "synthetic"]) $(k).classList.toggle("chosen", a.answer === k);
  for (let c = 1; c <= __LEVELS__; c++) $("c" + c).classList.toggle("chosen", a.confidence === c);
  $("next").disabled = !(a.answer && a.confidence); $("back").disabled = state.at === 0;
}
function answer(choice, confidence) {
  if (state.at >= IMAGES.length) return;
  const name = IMAGES[state.at].name, a = state.answers[name] || {seconds: 0};
  if (choice) a.answer = choice;
  if (confidence) a.confidence = confidence;
  a.seconds = (a.seconds || 0) + (performance.now() - shownAt) / 1000; shownAt = performance.now();
  state.answers[name] = a; save(); show();
}
function move(step) {
  if (step > 0 && !(current().answer && current().confidence)) return;
  state.at = Math.max(0, Math.min(IMAGES.length, state.at + step)); save(); show();
}
function csv() {
  const rows = [["reader", "image", "answer", "confidence", "seconds"]];
  const quote = (v) => /[",\\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v);
  for (const item of IMAGES) {
    const a = state.answers[item.name] || {};
    rows.push([state.reader, item.name, a.answer || "", a.confidence || "", (a.seconds || 0).toFixed(1)]);
  }
  return rows.map((r) => r.map(quote).join(",")).join("\\n") + "\\n";
}
$("begin").onclick = () => {
  state.reader = $("reader").value.trim();
  if (!state.reader) { $("reader").focus(); return; }
  save(); $("start").classList.add("hidden"); show();
};
$("real").onclick = () => answer("real", null); $("synthetic").onclick = () => answer("synthetic", null);
$("next").onclick = () => move(1); $("back").onclick = () => move(-1);
$("download").onclick = () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csv()], {type: "text/csv"}));
  link.download = "answers-" + STUDY + "-" + state.reader.replace(/[^A-Za-z0-9_-]/g, "_") + ".csv";
  document.body.appendChild(link); link.click(); link.remove();
};
document.addEventListener("keydown", (e) => {
  if ($("rate").classList.contains("hidden") || e.target.tagName === "INPUT") return;
  const k = e.key.toLowerCase();
  if (k === "r") answer("real", null); else if (k === "s") answer("synthetic", null);
  else if (k >= "1" && k <= String(__LEVELS__)) answer(null, Number(k));
  else if (k === "enter" || k === "arrowright") move(1); else if (k === "arrowleft") move(-1);
});
</script></body></html>
"""


def write_page(path: str, items: Sequence[ReaderItem], *, study: str, title: str, instructions: str) -> None:
    """One HTML file, images embedded as PNG data URIs, that runs offline in any browser.

    `study` names the answers' file and the browser storage that keeps a
    reader's progress; the page holds only anonymous names, never the key.
    """
    from medgan import fileio

    images = [{"name": item.name, "src": "data:image/png;base64," + base64.b64encode(item.png).decode("ascii")}
              for item in items]

    def script_json(value) -> str:  # JSON inside <script>: "</" must not close the element
        return json.dumps(value).replace("</", "<\\/")

    page = (_PAGE.replace("__TITLE__", html.escape(title)).replace("__INSTRUCTIONS__", html.escape(instructions))
            .replace("__STUDY__", script_json(study)).replace("__LEVELS__", str(CONFIDENCE_LEVELS))
            .replace("__IMAGES__", script_json(images)))
    with fileio.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(page)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [H, W] or [H, W, 1 | 3] -> PNG file bytes."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def read_answers(path: str, key: Mapping[str, dict]) -> list[dict]:
    """The rows of one returned answer sheet, checked against the key.

    Unknown images, answers other than real / synthetic, confidences outside
    1-5 and an image answered twice by one reader are errors naming the file
    and row; an unanswered image (blank answer) is skipped and counted in the
    row's "skipped" total by `score_answers`.
    """
    rows = []
    seen = set()
    for line, row in _read_csv(path, ANSWER_COLUMNS):
        where = f"{path}, row {line}"
        if row["image"] not in key:
            raise ValueError(f"{where}: image {row['image']!r} is not in the answer key")
        if (row["reader"], row["image"]) in seen:
            raise ValueError(f"{where}: reader {row['reader']!r} answered {row['image']!r} twice")
        seen.add((row["reader"], row["image"]))
        if not row["answer"]:
            rows.append({**row, "skipped": True})
            continue
        if row["answer"] not in ANSWERS:
            raise ValueError(f"{where}: answer {row['answer']!r} is not one of {ANSWERS}")
        try:
            confidence = int(row["confidence"])
        except ValueError:
            confidence = 0
        if not 1 <= confidence <= CONFIDENCE_LEVELS:
            raise ValueError(f"{where}: confidence {row['confidence']!r} is not an integer 1-{CONFIDENCE_LEVELS}")
        rows.append({"reader": row["reader"], "image": row["image"], "answer": row["answer"],
                     "confidence": confidence, "skipped": False})
    return rows


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (Wilson 1927)."""
    if trials == 0:
        return math.nan, math.nan
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return centre - half, centre + half


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two readers' answers on the same images."""
    a, b = np.asarray(a), np.asarray(b)
    observed = float(np.mean(a == b))
    expected = sum(float(np.mean(a == c)) * float(np.mean(b == c)) for c in ANSWERS)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(answers: np.ndarray) -> float:
    """Fleiss' kappa of answers [images, readers] (every reader answered every image)."""
    answers = np.asarray(answers)
    n_images, n_readers = answers.shape
    counts = np.stack([np.sum(answers == c, axis=1) for c in ANSWERS], axis=1)  # [images, categories]
    per_image = (np.sum(counts**2, axis=1) - n_readers) / (n_readers * (n_readers - 1))
    shares = counts.sum(axis=0) / (n_images * n_readers)
    expected = float(np.sum(shares**2))
    return math.nan if expected == 1 else (float(per_image.mean()) - expected) / (1 - expected)


def score_answers(key: Mapping[str, dict], sheets: Sequence[str]) -> dict:
    """Scores of every reader in `sheets` (paths of returned CSVs), per resolution and overall, and agreement.

    Returns {"readers": [{reader, resolution ("all" or px), answered, skipped,
    correct, accuracy, wilson_low, wilson_high, p_value (two-sided binomial
    against 0.5), auc (confidence-signed answers; NaN with one class)}],
    "agreement": {"pairs": [{readers, images, agreement, cohen_kappa}],
    "fleiss_kappa", "fleiss_images"}}.
    """
    rows = [row for sheet in sheets for row in read_answers(sheet, key)]
    answered = [row for row in rows if not row["skipped"]]
    readers = sorted({row["reader"] for row in rows})
    results = []
    for reader in readers:
        mine = [row for row in answered if row["reader"] == reader]
        skipped = sum(1 for row in rows if row["reader"] == reader and row["skipped"])
        resolutions = sorted({key[row["image"]]["resolution"] for row in mine})
        for resolution in ["all", *resolutions] if len(resolutions) > 1 else ["all"]:
            chosen = [row for row in mine if resolution == "all" or key[row["image"]]["resolution"] == resolution]
            truth = np.array([key[row["image"]]["source"] == "synthetic" for row in chosen])
            said = np.array([row["answer"] == "synthetic" for row in chosen])
            signed = np.array([row["confidence"] * (1 if s else -1) for row, s in zip(chosen, said)], float)
            correct = int(np.sum(truth == said))
            low, high = wilson_interval(correct, len(chosen))
            results.append({
                "reader": reader, "resolution": resolution, "answered": len(chosen), "skipped": skipped,
                "correct": correct, "accuracy": correct / len(chosen) if chosen else math.nan,
                "wilson_low": low, "wilson_high": high,
                "p_value": float(scipy.stats.binomtest(correct, len(chosen), 0.5).pvalue) if chosen else math.nan,
                "auc": auc.roc_auc(truth, signed) if 0 < truth.sum() < len(truth) else math.nan,
            })
    by_reader = {r: {row["image"]: row["answer"] for row in answered if row["reader"] == r} for r in readers}
    pairs = []
    for a, b in itertools.combinations(readers, 2):
        common = sorted(set(by_reader[a]) & set(by_reader[b]))
        if common:
            x, y = [by_reader[a][i] for i in common], [by_reader[b][i] for i in common]
            agreement = float(np.mean(np.asarray(x) == np.asarray(y)))
            pairs.append({"readers": [a, b], "images": len(common), "agreement": agreement,
                          "cohen_kappa": cohen_kappa(x, y)})
    everyone = sorted(set.intersection(*(set(v) for v in by_reader.values()))) if by_reader else []
    fleiss = (fleiss_kappa(np.array([[by_reader[r][i] for r in readers] for i in everyone]))
              if len(readers) > 1 and everyone else math.nan)
    return {"readers": results, "agreement": {"pairs": pairs, "fleiss_kappa": fleiss, "fleiss_images": len(everyone)}}
