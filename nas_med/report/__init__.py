"""The study report: figures (Pareto front, parallel coordinates, hypervolume, learning curves), CAM grids and
a table of trials, as one self-contained HTML page."""
from .data import ReportData, collect
from .hypervolume import Scale, hypervolume, hypervolume_curve
from .write import default_out, write_report

__all__ = ["ReportData", "Scale", "collect", "default_out", "hypervolume", "hypervolume_curve", "write_report"]
