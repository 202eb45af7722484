"""The claims table's LaTeX views (iclgd.core.claims_tex): the table, the headline, the references and the
macros, on a table holding every verdict."""

from __future__ import annotations

from claims_support import full_table
from iclgd.core import claims_tex


def test_claims_tex_and_macros():
    table = full_table()
    tex = claims_tex.claims_tex(table)
    assert "tab:claims" in tex and "$$" not in tex and "\\ref{fig:lsa}" not in tex
    assert "$|w| < 0.001$" in tex  # no nested math
    # only the deterministic rows are "exact" (units and p)
    assert sum(line.startswith("-- & exact & ") for line in tex.splitlines()) == 3
    assert tex.count("Kossen: c [$>$ 0]") == 1  # a family's claim text is shown once
    assert tex.count("Kossen: c [= 0 (control)]") == 1  # ... and the controls' in their own block
    assert tex.index("Negative controls") > tex.index("Shen: ICL and GD differ")
    assert tex.count("Negative controls") == 1
    assert "$^\\dagger$" in tex  # the SESOI reference is marked
    assert "0.250--0.300" in tex  # Han's reference range
    assert "5 sets $\\times$ 40 ex." in tex and "20 contexts" in tex and "100 queries" in tex
    assert "$^\\ast$" in tex  # the inconclusive row's N to decide
    macros = claims_tex.claims_macros(table)
    assert macros["ClaimsN"] == "11" and macros["ClaimsTested"] == "8" and macros["ClaimsDecided"] == "6"
    assert macros["ClaimsReproduced"] == "6"  # shen, kossen a, han, construction x 3
    assert macros["ClaimsReproducedSmallerThanTheReference"] == "1"
    assert macros["ClaimsContradicted"] == "1" and macros["ClaimsAbsent"] == "1"
    assert macros["ClaimsInconclusive"] == "1" and macros["ClaimsNotTested"] == "1"
    assert macros["ClaimsControls"] == "2"
    assert macros["ControlsNullAsExpected"] == "1" and macros["ControlsControlFailed"] == "1"
    assert macros["ClaimKossenXMDVerdict"] == "absent" and macros["ClaimKossenXMEVerdict"] == "inconclusive"
    assert macros["ClaimKossenXControlMNovelVerdict"] == "null, as expected"
    headline = claims_tex.headline_tex(table)
    assert "\\emph{control}: " in headline and "1 null, as expected; 1 control failed" in headline
    refs = claims_tex.references_tex(table)
    assert "Table 2" in refs and "declared" in refs
    assert "f\\textasciicircum{}2 \\textasciitilde{} small" in refs  # free config text cannot break the build
