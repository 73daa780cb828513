"""Reader study: matched drawing, anonymous page, and scoring of fabricated answer sheets against hand values."""

import math

import numpy as np
import pytest

from medgan.eval import reader_study

TRUTH = ["real"] * 5 + ["synthetic"] * 5
RESOLUTION = [32] * 6 + [64] * 4
A = "RRRRS SSSSR".replace(" ", "")  # 8 of 10 right: image 5 and image 10 wrong
B = "RRRSS SSSRR".replace(" ", "")  # agrees with A on 8 of 10


def _key():
    return {f"image-{i + 1:03d}": {"source": TRUTH[i], "resolution": RESOLUTION[i], "labels": "x", "point": "p",
                                   "image_id": str(i)} for i in range(10)}


def _sheet(path, reader, letters, confidence=3, newline="\n", bom=""):
    answer = {"R": "real", "S": "synthetic", "-": ""}
    lines = ["reader,image,answer,confidence,seconds"] + [
        f"{reader},image-{i + 1:03d},{answer[c]},{confidence if c != '-' else ''},1.5" for i, c in enumerate(letters)]
    path.write_text(bom + newline.join(lines) + newline, encoding="utf-8")
    return str(path)


def test_pairs_share_a_label_combination_and_never_reuse_an_image():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 2, size=(200, 3))
    synthetic = rng.integers(0, 2, size=(150, 3))
    pairs = reader_study.draw_pairs(real, synthetic, 40, seed=1)
    assert len(pairs) == 40
    assert len({r for r, _ in pairs}) == len({s for _, s in pairs}) == 40
    assert all(np.array_equal(real[r], synthetic[s]) for r, s in pairs)
    assert pairs == reader_study.draw_pairs(real, synthetic, 40, seed=1)
    with pytest.raises(ValueError, match="only 2 real images have an unused synthetic image"):
        reader_study.draw_pairs(np.zeros((5, 2)), np.zeros((2, 2)), 3)


def test_anonymous_names_and_a_key_that_round_trips(tmp_path):
    items = [reader_study.ReaderItem(f"{source}-{i}", b"png", source, 32, "Edema", "work/p", f"id{i}")
             for i, source in enumerate(TRUTH)]
    shuffled = reader_study.anonymise(items, seed=3)
    assert [item.name for item in shuffled] == [f"image-{n:03d}" for n in range(1, 11)]
    assert sorted((item.source, item.image_id) for item in shuffled) == sorted((i.source, i.image_id) for i in items)
    assert [item.source for item in shuffled] != TRUTH  # the order is shuffled
    reader_study.write_key(str(tmp_path / "key.csv"), shuffled)
    key = reader_study.read_key(str(tmp_path / "key.csv"))
    assert key["image-004"] == {"source": shuffled[3].source, "resolution": 32, "labels": "Edema",
                                "point": "work/p", "image_id": shuffled[3].image_id}


def test_the_page_embeds_every_image_and_no_answer(tmp_path):
    png = reader_study.png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert png.startswith(b"\x89PNG")
    items = reader_study.anonymise([reader_study.ReaderItem("x", png, s, 32, "No Finding", image_id=str(i))
                                    for i, s in enumerate(TRUTH)])
    path = tmp_path / "page.html"
    reader_study.write_page(str(path), items, study="demo", title="Real or synthetic? </script>",
                            instructions="Chest radiographs, 32 px.")
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 10 and all(item.name in page for item in items)
    assert '"source"' not in page and "No Finding" not in page  # the key stays out of the page
    assert "Real or synthetic? &lt;/script&gt;" in page


def test_scores_of_fabricated_sheets_equal_hand_computed_values(tmp_path):
    key = _key()
    sheets = [_sheet(tmp_path / "a.csv", "A", A), _sheet(tmp_path / "b.csv", "B", B, newline="\r\n", bom="\ufeff"),
              _sheet(tmp_path / "c.csv", "C", "RRRRR SSSS-".replace(" ", ""), confidence=5)]
    scores = reader_study.score_answers(key, sheets)
    rows = {(r["reader"], r["resolution"]): r for r in scores["readers"]}
    a = rows[("A", "all")]
    assert (a["answered"], a["correct"], a["skipped"]) == (10, 8, 0)
    assert a["p_value"] == pytest.approx(112 / 1024)  # P(X >= 8) + P(X <= 2), X ~ Bin(10, 1/2)
    assert (a["wilson_low"], a["wilson_high"]) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert a["auc"] == pytest.approx(0.8)  # constant confidence: (TPR + TNR) / 2 = (4/5 + 4/5) / 2
    assert rows[("A", 32)]["correct"] == 5 and rows[("A", 32)]["answered"] == 6
    assert rows[("A", 64)]["correct"] == 3 and rows[("A", 64)]["answered"] == 4
    c = rows[("C", "all")]
    assert (c["answered"], c["correct"], c["skipped"]) == (9, 9, 1) and c["auc"] == pytest.approx(1.0)
    pair = next(p for p in scores["agreement"]["pairs"] if p["readers"] == ["A", "B"])
    assert pair["images"] == 10 and pair["agreement"] == pytest.approx(0.8)
    assert pair["cohen_kappa"] == pytest.approx(0.6)  # (0.8 - 0.5) / (1 - 0.5), both readers say real half the time
    assert scores["agreement"]["fleiss_images"] == 9  # C left one image blank


def test_fleiss_kappa_of_two_readers_with_equal_shares_is_cohens():
    answers = np.array([["real" if c == "R" else "synthetic" for c in reader] for reader in (A, B)]).T
    assert reader_study.fleiss_kappa(answers) == pytest.approx(0.6)
    assert math.isnan(reader_study.cohen_kappa(["real"] * 4, ["real"] * 4))


@pytest.mark.parametrize("content, message", [
    ("reader,image,answer\nA,image-001,real\n", r"missing column\(s\) \['confidence', 'seconds'\]"),
    ("reader,image,answer,confidence,seconds\nA,image-099,real,3,1\n", "row 2: image 'image-099' is not in"),
    ("reader,image,answer,confidence,seconds\nA,image-001,fake,3,1\n", "row 2: answer 'fake' is not one of"),
    ("reader,image,answer,confidence,seconds\nA,image-001,real,9,1\n", "row 2: confidence '9' is not an int"),
    ("reader,image,answer,confidence,seconds\nA,image-001,real,3,1\nA,image-001,real,3,1\n",
     "row 3: reader 'A' answered 'image-001' twice"),
])
def test_bad_answer_sheets_are_named(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        reader_study.score_answers(_key(), [str(path)])


@pytest.mark.parametrize("row, message", [
    ("image-001,fake,32,x,p,1", "row 3: source 'fake' is not one of"),
    ("image-001,real,big,x,p,1", "row 3: resolution 'big' is not an integer"),
    ("image-002,real,32,x,p,1", "row 3: image 'image-002' is listed twice"),
])
def test_a_bad_answer_key_is_named(tmp_path, row, message):
    path = tmp_path / "key.csv"
    path.write_text("image,source,resolution,labels,point,image_id\nimage-002,synthetic,32,x,p,2\n" + row + "\n")
    with pytest.raises(ValueError, match=message):
        reader_study.read_key(str(path))
