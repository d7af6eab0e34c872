"""The four objectives of a trial: AUC (metrics.py), cost (params, FLOPs, epoch time) and CAM quality."""
