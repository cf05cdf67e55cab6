"""The app in a real browser: Debian chromium driven by the PyPI playwright package (never `playwright install`).

In CI (env CI set) a missing chromium or playwright is a failure; elsewhere the tests skip with the reason."""

import os
import shutil
from pathlib import Path

import pytest

import app
from modeling import backends, serving
from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401 - fixtures
from conftest import KITCHEN_REVIEW, MUSIC_REVIEW, NON_ENGLISH_REVIEW

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ANSWER_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


def require_browser():
    """The playwright package and Debian's chromium, or a failure in CI / a skip elsewhere."""
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if problems:
        if os.environ.get("CI"):
            pytest.fail("browser test cannot run in CI: " + "; ".join(problems))
        pytest.skip("; ".join(problems))


@pytest.fixture(scope="module")
def rating_age_model(exported_multitask_dir):
    """Both models on ONNX int8, as the Space serves them when the folders carry onnx/."""
    model = serving.RatingAgeModel.load(str(exported_multitask_dir), backend=backends.ONNX_INT8)
    assert model.backend.path.name == "model_int8.onnx"
    return model


@pytest.fixture(scope="module")
def topic_classifier(exported_topic_dir):
    model = serving.TopicClassifier.load(str(exported_topic_dir), backend=backends.ONNX_INT8)
    assert model.backend.path.name == "model_int8.onnx"
    return model


@pytest.fixture(scope="module")
def app_url(topic_classifier, rating_age_model, serve_app):
    demo = app.build_demo(topic_classifier, rating_age_model)
    yield serve_app(demo)
    demo.close()


@pytest.fixture
def page(tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    (tmp_path / "xdg").mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
        )
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 900})
        finally:
            browser.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    """Into tmp_path; also into $BROWSER_SCREENSHOT_DIR when set (to keep or look at)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("BROWSER_SCREENSHOT_DIR"):
        Path(os.environ["BROWSER_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["BROWSER_SCREENSHOT_DIR"]) / name)
    return path


def test_typing_a_review_and_clicking_shows_rating_and_age(page, app_url, rating_age_model, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    review = app.RATING_AGE_EXAMPLES[2]
    expected = rating_age_model.predict([review])[0]
    page.goto(app_url)
    page.get_by_role("tab", name="Rating & age").click()
    page.locator("#rating-review textarea").fill(review)
    page.locator("#rating-button").click()

    result = page.locator("#rating-result")
    expect(result).to_contain_text("years old", timeout=ANSWER_TIMEOUT_MS)
    predicted_stars = page.locator("#rating-scores [data-testid='label-output-value']").inner_text()
    predicted_age = float(page.locator("#age-years textarea, #age-years input").first.input_value())
    screenshot = save_screenshot(page, tmp_path, "rating_age.png")

    assert predicted_stars == rating_age_model.config.id2label[expected["rating"] - 1]
    assert predicted_age == pytest.approx(expected["age"], abs=0.05)
    assert page.locator("#rating-scores [data-testid$='-confidence-set']").count() == 5
    assert screenshot.stat().st_size > 10_000


def test_uploading_a_csv_fills_the_column_choice_and_gives_predictions(page, app_url, tmp_path):
    from playwright.sync_api import expect

    csv_path = app.write_example_csv(tmp_path)
    page.goto(app_url)
    page.get_by_role("tab", name="Batch").click()
    page.locator("#csv-file input[type='file']").set_input_files(str(csv_path))
    expect(page.locator("#text-column input")).to_have_value("review", timeout=ANSWER_TIMEOUT_MS)
    page.locator("#batch-button").click()

    expect(page.locator("#batch-result")).to_contain_text(
        f"Predicted {len(app.BATCH_EXAMPLE_ROWS)} reviews", timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.locator("#predictions-file a[href$='example_reviews_predictions.csv']")).to_be_visible()
    expect(page.locator("#predictions-chart img, #predictions-chart svg").first).to_be_visible()
    save_screenshot(page, tmp_path, "batch.png")


@pytest.fixture(scope="module")
def real_topic_app_url(real_topic_classifier, serve_app):
    demo = app.build_demo(real_topic_classifier, None)
    yield serve_app(demo)
    demo.close()


@pytest.mark.slow
@pytest.mark.parametrize("review, expected", [(KITCHEN_REVIEW, "other"), (NON_ENGLISH_REVIEW, "other"),
                                              (MUSIC_REVIEW, "music")], ids=["kitchen", "chinese", "music"])
def test_topic_tab_answers_other_for_a_kitchen_review_and_non_english_text(page, real_topic_app_url, review,
                                                                           expected, tmp_path):
    from playwright.sync_api import expect

    page.goto(real_topic_app_url)
    page.get_by_role("tab", name="Topic").click()
    page.locator("#topic-review textarea").fill(review)
    page.locator("#topic-button").click()

    expect(page.locator("#topic-result")).to_contain_text(f"Topic: {expected}", timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#topic-scores [data-testid='label-output-value']").inner_text() == expected
    if expected == "other":
        expect(page.locator("#topic-result")).to_contain_text("none of the categories")
    save_screenshot(page, tmp_path, f"topic_{expected}.png")
