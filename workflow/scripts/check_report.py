"""Check the Snakemake HTML report: every figure embedded with its category and caption, and the
report's JavaScript app renders them in headless Chromium.

    python workflow/scripts/check_report.py results/report.html [--chromium chromium] [--no-render]

Exits 1 (listing every problem) when a check fails, 2 when Chromium is missing. Two stages:

1. static: the report's `results`/`categories` data hold each figure of `FIGURES` as an embedded
   PNG, in its category, with its caption (from workflow/report/<caption>.rst) rendered to HTML;
2. rendered: a copy of the report with a small driver script is loaded in headless Chromium
   (`--dump-dom`). The driver clicks through the app like a reader: each category in the menu,
   each figure's view button (the PNG must decode: naturalWidth > 0) and info button (the caption
   must show); it writes what the DOM showed into the page, which this script then checks, along
   with any JavaScript error raised while the page ran.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAPTIONS = REPO / "workflow" / "report"

#: The figures of workflow/rules/figures.smk marked for the report: path -> (category, caption file).
FIGURES = {
    "figures/icl_accuracy_vs_k.png": ("ICL", "icl_accuracy.rst"),
    "figures/label_curves.png": ("Label relationships", "label_curves.rst"),
    "figures/label_size.png": ("Label relationships", "label_size.rst"),
    "figures/lsa_convergence.png": ("Construction", "lsa_convergence.rst"),
    "figures/weight_sparsity.png": ("Construction", "weight_sparsity.rst"),
    "figures/kernel_heads.png": ("Kernel regression", "kernel_heads.rst"),
    "figures/dai_layers.png": ("ICL vs GD", "dai_layers.rst"),
    "figures/order_sensitivity.png": ("ICL vs GD", "order_sensitivity.rst"),
}

#: Catches JavaScript errors from the first script on (goes right after <head>).
ERROR_HOOK = """<script>
window.__reportErrors = [];
window.addEventListener("error", function (ev) { window.__reportErrors.push(String(ev.message)); });
window.addEventListener("unhandledrejection", function (ev) { window.__reportErrors.push(String(ev.reason)); });
</script>"""

#: Clicks through the app (goes right before </body>, after the app's own scripts).
DRIVER = """<script>
(function () {
  var out = { done: false, categories: {}, figures: {} };
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function nav() { var n = document.querySelector("#app nav"); return n ? n.innerText : ""; }
  function link(text) {
    var links = document.querySelectorAll("#app nav a");
    for (var i = 0; i < links.length; i++) { if (links[i].innerText.trim() === text) return links[i]; }
    return null;
  }
  function row(path) {
    var rows = document.querySelectorAll("#app nav tr");
    for (var i = 0; i < rows.length; i++) {
      var td = rows[i].querySelector("td");
      if (td && td.innerText.trim() === path) return rows[i];
    }
    return null;
  }
  async function run() {
    await sleep(500);
    out.app = document.querySelector("#app").innerText;
    var names = Object.keys(categories);
    for (var c = 0; c < names.length; c++) {
      var cat = names[c];
      app.setView({ navbarMode: "menu" });
      await sleep(200);
      var entry = link(names.length > 1 ? cat : "Results");
      var info = { inMenu: entry !== null, listed: "" };
      out.categories[cat] = info;
      if (!entry) continue;
      entry.click();
      await sleep(200);
      info.listed = nav();
      var subcats = categories[cat];
      for (var sub in subcats) {
        for (var p = 0; p < subcats[sub].length; p++) {
          var path = subcats[sub][p];
          var fig = { category: cat, listed: false, image: 0, caption: "" };
          out.figures[path] = fig;
          if (Object.keys(subcats).length > 1) { app.showCategory(cat); app.setView({ navbarMode: "subcategory", subcategory: sub }); await sleep(200); }
          var tr = row(path);
          if (!tr) continue;
          fig.listed = true;
          var buttons = tr.querySelectorAll("a");
          buttons[0].click();
          await sleep(300);
          var img = document.querySelector("#app img[src^='data:image/png']");
          fig.image = img && img.complete ? img.naturalWidth : 0;
          fig.imageFile = img ? (img.getAttribute("src").match(/filename=([^;]+);/) || [])[1] : null;
          buttons[buttons.length - 1].click();
          await sleep(200);
          fig.caption = nav();
          app.setView({ navbarMode: "subcategory" });
          await sleep(100);
        }
      }
    }
    out.done = true;
  }
  run().catch(function (err) { window.__reportErrors.push("driver: " + String(err)); }).finally(function () {
    out.errors = window.__reportErrors;
    var pre = document.createElement("pre");
    pre.id = "report-check";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
})();
</script>"""


def squash(text: str) -> str:
    """Whitespace-collapsed plain text of RST or HTML, for containment checks."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text).replace("``", "")
    return " ".join(text.split())


def caption_snippets(caption_file: str) -> list[str]:
    """What the rendered caption must show: its first words and every rule it names."""
    raw = (CAPTIONS / caption_file).read_text()
    words = squash(raw).split()
    return [" ".join(words[:8]), *re.findall(r"``(\w+)``", raw)]


def embedded(report: str, name: str):
    match = re.search(r'<script id="%s">\s*var %s = (.*?);\s*</script>' % (name, name), report, re.S)
    return json.loads(match.group(1)) if match else None


def check_static(report: str, figures: dict = FIGURES) -> list[str]:
    results, categories = embedded(report, "results"), embedded(report, "categories")
    if results is None or categories is None:
        return ["no results/categories data in the report: not a Snakemake HTML report?"]
    problems = []
    for path, (category, caption_file) in figures.items():
        res = results.get(path)
        if res is None:
            problems.append(f"{path}: not in the report (marked with report() in workflow/rules/figures.smk?)")
            continue
        if path not in [p for sub in categories.get(category, {}).values() for p in sub]:
            problems.append(f"{path}: not in category {category!r} (categories: {sorted(categories)})")
        if res.get("mime_type") != "image/png" or not res.get("data_uri", "").startswith("data:image/png"):
            problems.append(f"{path}: not embedded as a PNG (mime {res.get('mime_type')!r})")
        else:
            data = base64.b64decode(res["data_uri"].split("base64,", 1)[1][:64])
            if not data.startswith(b"\x89PNG"):
                problems.append(f"{path}: embedded data is not a PNG")
        caption = squash(res.get("caption") or "")
        for snippet in caption_snippets(caption_file):
            if snippet not in caption:
                problems.append(f"{path}: caption lacks {snippet!r} (from workflow/report/{caption_file})")
    return problems


def render(report_path: Path, chromium: str, timeout: float = 120) -> dict:
    """Load a driven copy of the report in headless Chromium; returns what the driver saw."""
    text = report_path.read_text()
    head, body = text.find("<head>"), text.rfind("</body>")
    if head < 0 or body < 0:
        raise RuntimeError("report has no <head> or </body>")
    text = text[: head + 6] + ERROR_HOOK + text[head + 6 : body] + DRIVER + text[body:]
    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(text)
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", f"--user-data-dir={tmp}/profile", "--window-size=1600,1000",
            "--virtual-time-budget=30000", "--dump-dom", page.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    match = re.search(r'<pre id="report-check">(.*?)</pre>', proc.stdout, re.S)
    if proc.returncode != 0 or not match:
        raise RuntimeError(
            f"Chromium did not render the report (exit {proc.returncode}, {len(proc.stdout)} bytes of DOM):\n"
            + proc.stderr[-2000:]
        )
    return json.loads(html.unescape(match.group(1)))


def check_rendered(seen: dict, figures: dict = FIGURES) -> list[str]:
    problems = [f"JavaScript error: {err}" for err in seen.get("errors", [])]
    if not seen.get("done"):
        problems.append("the driver did not finish clicking through the report")
    start = squash(seen.get("app", ""))
    if "results" not in start.lower():
        problems.append("the app's start page shows no results menu")
    description = " ".join(squash((CAPTIONS / "workflow.rst").read_text()).split()[:6])
    if description not in start:
        problems.append(f"the app's start page lacks the workflow description ({description!r}...)")
    for path, (category, caption_file) in figures.items():
        cat = seen.get("categories", {}).get(category)
        if cat is None or not cat["inMenu"]:
            problems.append(f"category {category!r} not in the rendered menu")
            continue
        fig = seen.get("figures", {}).get(path)
        if fig is None or not fig["listed"] or path not in cat["listed"]:
            problems.append(f"{path}: not listed under {category!r} in the rendered report")
            continue
        if fig["image"] <= 0 or fig.get("imageFile") != Path(path).name:
            problems.append(f"{path}: the image did not render (width {fig['image']}, file {fig.get('imageFile')})")
        caption = squash(fig["caption"])
        for snippet in caption_snippets(caption_file):
            if snippet not in caption:
                problems.append(f"{path}: rendered caption lacks {snippet!r}")
    return problems


def check(report_path: Path, chromium: str | None = "chromium", figures: dict = FIGURES) -> list[str]:
    """All problems with the report; an empty list when it passes. chromium=None: static checks only."""
    if not report_path.is_file():
        return [f"{report_path}: no such file (run `make report` first)"]
    report = report_path.read_text()
    if len(report) < 100_000:
        return [f"{report_path}: only {len(report)} bytes, not a full report"]
    problems = check_static(report, figures)
    if chromium is not None:
        try:
            problems += check_rendered(render(report_path, chromium), figures)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            problems.append(str(err))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, nargs="?", default=Path("results/report.html"))
    parser.add_argument("--chromium", default="chromium", help="Chromium executable (default: chromium)")
    parser.add_argument("--no-render", action="store_true", help="static checks only, no Chromium")
    args = parser.parse_args(argv)
    chromium = None
    if not args.no_render:
        chromium = shutil.which(args.chromium)
        if chromium is None:
            print(f"{args.chromium} not found: install it with `make chromium` (Debian package chromium)", file=sys.stderr)
            return 2
    problems = check(args.report, chromium)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    how = "rendered in headless Chromium" if chromium else "static checks only"
    print(f"{args.report}: {len(FIGURES)} figures with categories and captions ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
