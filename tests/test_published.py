"""The shipped published table against its source numbers (../shared/data/breastmnist/README.md, DESIGN.md)."""
from __future__ import annotations

import pytest

from nas_med.published import PUBLISHED, SOURCE, published_rows

# copied by hand from the source tables
BREAST = {"ResNet-18 (28)": (0.901, 0.863), "ResNet-18 (224)": (0.891, 0.833), "ResNet-50 (28)": (0.857, 0.812),
          "ResNet-50 (224)": (0.866, 0.842), "auto-sklearn": (0.836, 0.803), "AutoKeras": (0.871, 0.831),
          "Google AutoML Vision": (0.919, 0.861)}
AUC_28 = {"pneumoniamnist": (0.944, 0.947, 0.991), "retinamnist": (0.717, 0.719, 0.750),
          "dermamnist": (0.917, 0.915, 0.914), "bloodmnist": (0.998, 0.998, 0.998)}


def test_breastmnist_matches_the_source():
    assert PUBLISHED["breastmnist"] == BREAST


@pytest.mark.parametrize("name", sorted(AUC_28))
def test_other_sets_auc_match_the_source(name):
    rows = PUBLISHED[name]
    assert (rows["ResNet-18 (28)"][0], rows["AutoKeras"][0], rows["Google AutoML Vision"][0]) == AUC_28[name]


def test_rows_only_at_the_published_size():
    assert [r["method"] for r in published_rows("breastmnist", 28)][0] == "ResNet-18 (28)"
    assert published_rows("breastmnist", 64) == []
    assert published_rows("synthetic", 28) == []
    assert "MedMNIST v2" in SOURCE


def test_card_section_shows_the_model_beside_the_table():
    from nas_med.published import published_markdown

    text = published_markdown("breastmnist", 28, 0.915, (0.87, 0.95), 72146, members=5)
    assert "5-fold ensemble" in text and "72,146 parameters" in text and "0.915 [0.870, 0.950]" in text
    text = published_markdown("breastmnist", 28, 0.905, (0.85, 0.95), 1000, accuracy=0.8589, seed=0,
                              seed_mean=(0.912, 0.87, 3))
    assert "| **this model: the exported weights (seed 0)** - 1,000 parameters in total | 0.905 [0.850, 0.950] | 0.859 |" in text
    assert "| this model's recipe: mean over 3 seeds | 0.912 | 0.870 |" in text
    assert "| Google AutoML Vision | 0.919 | 0.861 |" in text and "MedMNIST v2" in text
    assert published_markdown("breastmnist", 64, 0.9, None, 1) == ""
