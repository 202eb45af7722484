"""The reviewer's claim list, from a run's claims table, claim-row files and benchmarks."""

import json
from pathlib import Path

import pandas as pd

from iclgd.core import claim_rows
from iclgd.tools.claims_summary import claims_markdown, family_studies, study_minutes

REPO = Path(__file__).resolve().parents[2]
HEADER = "paper,family,block,claim,model,dataset,effect,effect_lo,effect_hi,test,unit,verdict\n"


def fake_run(run: Path) -> Path:
    (run / "results/stats").mkdir(parents=True)
    (run / "results/stats/claims.csv").write_text(
        HEADER + "K,kossen_x,claim,c,m,sst2,0.5,0.1,0.9,t,contexts,reproduced\n"
        "V,construction,claim,c,,,1e-16,,,exact,,reproduced\n")
    (run / "results/claims").mkdir()
    claim_rows.write(run / "results/claims/labels.pkl", claim_rows.ClaimRows("labels", pd.DataFrame({"family": ["kossen_x"]})))
    claim_rows.write(run / "results/claims/construction.pkl",
                     claim_rows.ClaimRows("construction", pd.DataFrame(), pd.DataFrame({"family": ["construction"]})))
    (run / "results/paper").mkdir()
    bench = [{"rule": "labels", "seconds": 120.0}, {"rule": "labels_paper_numbers", "seconds": 6.0},
             {"rule": "lsa_study", "seconds": 30.0}, {"rule": "prepare_model", "seconds": 33.0}]
    (run / "results/paper/provenance.json").write_text(json.dumps({"benchmarks": bench}))
    return run


def test_families_map_to_the_study_whose_rows_hold_them(tmp_path):
    assert family_studies(fake_run(tmp_path)) == {"kossen_x": "labels", "construction": "construction"}


def test_study_minutes_sum_the_rules_of_its_rule_file(tmp_path):
    minutes = study_minutes(fake_run(tmp_path), REPO)
    assert minutes["labels"] == 2.1 and minutes["construction"] == 0.5 and minutes["data"] == 0.55


def test_claims_markdown_has_one_row_per_claim(tmp_path):
    page = claims_markdown(fake_run(tmp_path), "smoke", REPO).splitlines()
    rows = [line for line in page if line.startswith("| kossen") or line.startswith("| construction")]
    assert rows[0] == ("| kossen_x | m / sst2 | t, contexts | 0.5 [0.1, 0.9] | reproduced | labels | "
                       "`snakemake --profile config/profiles/default --configfile config/smoke.yaml --directory runs/smoke results/claims/labels.pkl` | 2.1 |")
    assert rows[1].startswith("| construction | -- / -- | exact, -- | 1e-16 | reproduced | construction |")
