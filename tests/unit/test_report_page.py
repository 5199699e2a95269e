"""The after-action report's HTML page in a real headless Chromium: what a person sees on it,
a screenshot for whoever reads the test output, the printed form, and proof that opening it
loads nothing at all from anywhere (it is sent as an attachment and opened offline)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from chain_world import COORDINATION_ROOM, COORDINATOR, Harness, duty_officer, room

from tests.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
#: Where screenshots are kept after the run (``LARMKEDJA_TEST_OUTPUT`` to put them elsewhere).
OUTPUT = Path(os.environ.get("LARMKEDJA_TEST_OUTPUT", ROOT / "tests" / "output"))


async def report_page(bot: Harness, tmp_path: Path) -> Path:
    uppsala, tib = room("uppsala"), duty_officer("uppsala")
    await bot.say(uppsala, tib, "!händelse katastrofläge Bussolycka E4 <script>alert(1)</script>")
    await bot.say(uppsala, tib, "!lägesbild plats=E4 Knivsta typ=Buss antal=40 (P1=10)")
    bot.later(2)
    await bot.say(uppsala, tib, "!larma")
    bot.later(3)
    await bot.say(room("dalarna"), duty_officer("dalarna"), "!kvittera 5")
    bot.later(1)
    await bot.say(room("gavleborg"), duty_officer("gavleborg"), "!kvittera 3")
    await bot.say(uppsala, tib, "!lägesbild antal=47 risker=Brand")
    await bot.say(COORDINATION_ROOM, COORDINATOR, "!logg Samordningsmöte kl 04:30 <b>nu</b>")
    bot.later(20)
    await bot.say(uppsala, tib, "!avlarma Klart")
    outcome = await bot.say(uppsala, tib, "!rapport")
    assert outcome is not None
    html = next(a for a in outcome.attachments if a.filename.endswith(".html"))
    path = tmp_path / html.filename
    path.write_bytes(html.data)
    return path


async def test_the_report_page_renders_offline_and_prints(bot: Harness, tmp_path: Path) -> None:
    path = await report_page(bot, tmp_path)
    url = path.as_uri()
    async with Browser(width=1000, height=800) as browser:
        page = await browser.open(url)
        text = await page.text()
        shot = await page.screenshot(tmp_path / "report.png")
        pdf = await page.print_pdf(tmp_path / "report.pdf")
        requests = list(page.requests)
        title = await page.evaluate("document.title")
        scripts = await page.evaluate("document.scripts.length")
        rows = await page.evaluate("document.querySelectorAll('table tbody tr').length")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    kept = shutil.copy(shot, OUTPUT / "report-H-1.png")
    print(f"\nscreenshot of the report page: {kept}")
    # nothing but the page itself: no style sheet, font, image, script or beacon from outside
    assert requests == [url]
    assert title == "Rapport H-1"
    assert scripts == 0  # the headline's <script> is text, escaped
    assert "Bussolycka E4 <script>alert(1)</script>" in text
    assert "Samordningsmöte kl 04:30 <b>nu</b>" in text
    for expected in (
        "Översikt",
        "Kvitterat\n2 av 8",
        "Median tid till kvittens\n3 min 0 s",  # the lower of two middles
        "Region Gävleborg · 4 min 0 s",
        "Lägesbild",
        "v2 ·",
        "Antal skadade ändrad",
        "Risker ny",
        "Region Dalarna kvitterade i rummet (@tib.dalarna), 5 sekundärtransporter",
        "Avlarmerad av @tib.uppsala",
        "Granskningsloggens huvud när rapporten gjordes: post",
    ):
        assert expected in text, expected
    assert rows > 20
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page
    assert pdf.read_bytes().startswith(b"%PDF")


async def test_a_page_that_changes_is_waited_for(tmp_path: Path) -> None:
    """The helper waits for a page that updates itself (the live status page will)."""
    page_file = tmp_path / "live.html"
    page_file.write_text(
        "<!doctype html><p id=s>v1</p>"
        "<script>setTimeout(() => { document.getElementById('s').textContent = 'v2'; }, 300)"
        "</script>",
        encoding="utf-8",
    )
    async with Browser() as browser:
        page = await browser.open(page_file.as_uri())
        before = await page.text()
        after = await page.wait_for_change(before, timeout=10)
        assert (before.strip(), after.strip()) == ("v1", "v2")
        assert (await page.wait_for_text("v2")).strip() == "v2"
