"""The reader-study page answered end to end in a real browser (headless Chromium through selenium).

Needs Debian's `chromium` and `chromium-driver` (`make browser` installs them as
root; CI does); without them the test is skipped and says why.
"""

import glob
import os
import shutil
import time

import numpy as np
import pytest

from medgan.eval import reader_study

DRIVER = shutil.which("chromedriver")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (DRIVER and BROWSER):
        pytest.skip("chromium and chromium-driver are not installed (make browser)")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver, downloads
    finally:
        driver.quit()


def test_a_reader_answers_every_image_with_the_keyboard_and_the_csv_scores(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, downloads = browser
    rng = np.random.default_rng(0)
    sources = ["real", "synthetic"] * 4
    items = reader_study.anonymise([
        reader_study.ReaderItem("x", reader_study.png_bytes(rng.integers(0, 255, (16, 16), dtype=np.uint8)), s, 32,
                                "No Finding", image_id=str(i)) for i, s in enumerate(sources)], seed=1)
    page, key_path = tmp_path / "page.html", tmp_path / "key.csv"
    reader_study.write_page(str(page), items, study="browser-test", title="Real or synthetic?", instructions="Test.")
    reader_study.write_key(str(key_path), items)

    driver.get(page.as_uri())
    driver.find_element(By.ID, "reader").send_keys("Dr T")
    driver.find_element(By.ID, "begin").click()
    body = driver.find_element(By.TAG_NAME, "body")
    said = []
    for n, item in enumerate(items):
        assert driver.find_element(By.ID, "progress").text == f"Image {n + 1} of {len(items)}"
        assert driver.find_element(By.ID, "image").get_attribute("src").startswith("data:image/png;base64,")
        answer = item.source if n < 6 else ("real" if item.source == "synthetic" else "synthetic")  # 6 of 8 right
        said.append(answer)
        assert not driver.find_element(By.ID, "next").is_enabled()  # an answer and a confidence come first
        body.send_keys("r" if answer == "real" else "s")
        body.send_keys(str(1 + n % 5))
        body.send_keys(Keys.ENTER)
    driver.find_element(By.ID, "download").click()
    deadline = time.time() + 20
    while not glob.glob(str(downloads / "*.csv")) and time.time() < deadline:
        time.sleep(0.2)
    sheets = glob.glob(str(downloads / "*.csv"))
    assert [os.path.basename(s) for s in sheets] == ["answers-browser-test-Dr_T.csv"]

    scores = reader_study.score_answers(reader_study.read_key(str(key_path)), sheets)
    (row,) = scores["readers"]
    assert (row["reader"], row["answered"], row["correct"], row["skipped"]) == ("Dr T", 8, 6, 0)
    answers = [r["answer"] for r in reader_study.read_answers(sheets[0], reader_study.read_key(str(key_path)))]
    assert answers == said
