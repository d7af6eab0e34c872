"""Published MedMNIST v2 test figures, shipped beside our own (the model card and the report show them).

Source: Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image
classification", Scientific Data 10, 41 (2023), Table 3 (test AUC / ACC; models trained 100 epochs, Adam 1e-3,
learning rate x0.1 at epochs 50 and 75, on the 28 px images or resized to 224 px). Only the figures this project
could check against a copy of that table are listed (``../shared/data/breastmnist/README.md`` for BreastMNIST,
the project's DESIGN.md "Second-wave notes" for the other sets' AUCs); a missing method or ACC was not verified,
not zero. The figures are for the 28 px MedMNIST images: they are shown only beside a model of that dataset at
28 px (or, for the 224-trained rows, any size: they are the same table)."""
from __future__ import annotations

SOURCE = ("Yang et al., MedMNIST v2, Scientific Data 10:41 (2023), Table 3: test AUC / ACC on the official test "
          "split, 28 px images")

# {dataset: {method: (test AUC, test ACC or None)}}
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "breastmnist": {
        "ResNet-18 (28)": (0.901, 0.863), "ResNet-18 (224)": (0.891, 0.833),
        "ResNet-50 (28)": (0.857, 0.812), "ResNet-50 (224)": (0.866, 0.842),
        "auto-sklearn": (0.836, 0.803), "AutoKeras": (0.871, 0.831), "Google AutoML Vision": (0.919, 0.861),
    },
    "pneumoniamnist": {"ResNet-18 (28)": (0.944, None), "AutoKeras": (0.947, None),
                       "Google AutoML Vision": (0.991, None)},
    "retinamnist": {"ResNet-18 (28)": (0.717, None), "AutoKeras": (0.719, None),
                    "Google AutoML Vision": (0.750, None)},
    "dermamnist": {"ResNet-18 (28)": (0.917, None), "AutoKeras": (0.915, None),
                   "Google AutoML Vision": (0.914, None)},
    "bloodmnist": {"ResNet-18 (28)": (0.998, None), "AutoKeras": (0.998, None),
                   "Google AutoML Vision": (0.998, None)},
}
PUBLISHED_SIZE = 28  # the images those models were given (the 224 rows are the 28 px images resized)

MEDMNIST_PLUS_SOURCE = ("Doerrich et al., Rethinking model prototyping through the MedMNIST+ dataset collection "
                        "(2024): the best of many large ImageNet-pretrained networks, 100 epochs, 3 seeds, test AUC")
# {dataset: {size: best test AUC}} (as copied in the project's DESIGN.md "Anchors")
MEDMNIST_PLUS: dict[str, dict[int, float]] = {
    "breastmnist": {28: 0.891, 64: 0.917}, "pneumoniamnist": {28: 0.973, 64: 0.987},
    "retinamnist": {28: 0.754, 64: 0.806}, "dermamnist": {28: 0.927, 64: 0.954},
    "bloodmnist": {28: 0.9966, 64: 0.9991}, "organcmnist": {28: 0.993, 64: 0.997},
}

__all__ = ["MEDMNIST_PLUS", "MEDMNIST_PLUS_SOURCE", "PUBLISHED", "PUBLISHED_SIZE", "SOURCE", "published_markdown",
           "published_rows"]


def published_rows(dataset: str | None, size: int | None) -> list[dict]:
    """[{method, auc, accuracy}] for ``dataset`` at ``size`` px, or [] when the table has nothing comparable."""
    if not dataset or size != PUBLISHED_SIZE:
        return []
    table = PUBLISHED.get(str(dataset).lower(), {})
    return [{"method": m, "auc": auc, "accuracy": acc} for m, (auc, acc) in table.items()]


def published_markdown(dataset: str | None, size: int | None, auc: float, auc_ci: tuple | None, params: int | None,
                       members: int = 1, accuracy: float | None = None, seed: int | None = None,
                       seed_mean: tuple[float, float | None, int] | None = None) -> str:
    """The model card's section: the exported weights' test AUC (with ``auc_ci``) and ACC (``accuracy``, argmax as in
    the table) beside the published figures, and ``seed_mean`` (mean AUC, mean ACC, seeds) of the same recipe when
    several seeds were trained ("" when the table has nothing at this dataset and size)."""
    rows = published_rows(dataset, size)
    if not rows:
        return ""

    def three(v: float | None) -> str:
        return "" if v is None or v != v else f"{v:.3f}"

    ci = f" [{auc_ci[0]:.3f}, {auc_ci[1]:.3f}]" if auc_ci and None not in auc_ci else ""
    what = "this model: the exported weights" + (f" (a {members}-fold ensemble)" if members > 1 else
                                                   f" (seed {seed})" if seed is not None else "")
    size_note = f"{params:,} parameters in total" if params else ""
    lines = ["## Beside the published figures", "", f"Test split of {dataset} at {size} px. Source: {SOURCE}.", "",
             "| model | test AUC | test ACC |", "|---|---|---|",
             f"| **{what}**{' - ' + size_note if size_note else ''} | {three(auc)}{ci} | {three(accuracy)} |"]
    if seed_mean is not None and seed_mean[2] > 1:
        lines.append(f"| this model's recipe: mean over {seed_mean[2]} seeds | {three(seed_mean[0])} | "
                     f"{three(seed_mean[1])} |")
    lines += [f"| {r['method']} | {r['auc']:.3f} | {three(r['accuracy'])} |" for r in rows]
    return "\n".join(lines) + "\n\n"
