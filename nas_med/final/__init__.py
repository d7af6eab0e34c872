"""The shipped model's training, after the search: the final recipe and its file format (``recipe``,
``recipe_file``), settling its open choices on validation (``settle``), seeded retraining with bootstrap
intervals on the test split (``retrain``, ``bootstrap``), fold ensembles (``ensemble``) and the one entry point
``train_final(study, trial, plan)`` (``plan``) that ``export``, ``front --retrain`` and ``sweep`` call."""
from __future__ import annotations

from .plan import FinalPlan, retrain_study, retrain_trial, train_final, training_data
from .recipe import FinalRecipe, apply_recipe
from .recipe_file import study_recipe
from .retrain import TestReport

__all__ = ["FinalPlan", "FinalRecipe", "TestReport", "apply_recipe", "retrain_study", "retrain_trial",
           "study_recipe", "train_final", "training_data"]
