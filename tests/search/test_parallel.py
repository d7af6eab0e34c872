"""How a search uses the machine (``search.parallel``): the default workers and threads per trial, what the user
gives winning, a resumed study keeping its threads, and the start line saying what was chosen and why."""
from __future__ import annotations

import optuna
import pytest
import torch

from nas_med.search import SearchConfig, search
from nas_med.search import records as rec
from nas_med.search.parallel import choose, effective_parallel
from nas_med.search.reproducibility import Record
from nas_med.threads import SINGLE_THREAD_PIXELS


def _config(**kw) -> SearchConfig:
    return SearchConfig(**{"workers": None, "trials": 30, **kw})


def test_small_images_on_a_cpu_train_one_thread_per_trial_one_trial_per_core_at_most_a_batch():
    assert 28 * 28 <= 64 * 64 == SINGLE_THREAD_PIXELS
    two = choose(_config(), 28, "cpu", cores=2)
    assert (two.workers, two.threads) == (2, 1)
    assert "28 px images are too small to use several threads" in two.line() and "2 cores" in two.line()
    many = choose(_config(), 64, "cpu", cores=16)
    assert (many.workers, many.threads) == (4, 1) and "at most a trial batch of 4" in many.reason
    assert choose(_config(trial_batch=0), 64, "cpu", cores=16).workers == 16  # no batches: every core
    assert choose(_config(trials=1), 28, "cpu", cores=16).workers == 1  # one trial: no second process


def test_larger_images_and_gpus_keep_one_trial_at_a_time_with_the_processs_threads():
    big = choose(_config(), 128, "cpu", cores=2)
    assert (big.workers, big.threads) == (1, torch.get_num_threads()) and "128 px images use" in big.reason
    gpu = choose(_config(), 28, "cuda", cores=16)
    assert gpu.workers == 1 and gpu.threads == torch.get_num_threads()
    listed = _config()
    listed.gpus = ("0", "1")
    assert choose(listed, 28, "cuda", cores=16).workers == 2 and "one per GPU (2)" in choose(listed, 28, "cuda").reason


def test_what_the_user_gives_wins_and_a_stored_thread_count_decides_the_workers():
    assert (choose(_config(workers=1, threads=2), 28, "cpu", cores=2).workers,
            choose(_config(workers=1, threads=2), 28, "cpu", cores=2).threads) == (1, 2)
    given = choose(_config(workers=3), 28, "cpu", cores=2)
    assert (given.workers, given.threads) == (3, 1) and given.reason.startswith("--workers 3")
    assert choose(_config(threads=2), 28, "cpu", cores=2).workers == 1  # 2 cores / 2 threads
    resumed = choose(_config(), 28, "cpu", stored_threads=2, cores=2)
    assert (resumed.workers, resumed.threads) == (1, 2) and "stored 2 thread(s)" in resumed.reason


@pytest.mark.parametrize("workers, batch, at_once", [(1, 4, 1), (2, 4, 2), (3, 4, 2), (4, 4, 4), (16, 4, 4),
                                                     (3, 0, 3), (2, 1, 1)])
def test_trials_at_once_count_the_rounds_of_a_batch(workers, batch, at_once):
    assert effective_parallel(workers, batch) == at_once


def test_a_study_stores_the_chosen_threads_and_an_old_one_resumes_with_its_own(isolated, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    base = dict(size=16, space="tiny", epochs=1, cam_images=4, pruner="none", storage=url, quiet=True,
                artifacts=False, trials=1)
    config = SearchConfig(workers=None, study="new", **base)
    study = search(config)
    assert Record.from_dict(study.user_attrs[rec.REPRODUCIBILITY]).threads == 1 == config.threads
    assert config.workers == 1 and config.parallel_reason.startswith("parallel: 1 worker x 1 thread per trial")
    old = SearchConfig(workers=1, threads=2, study="old", **base)  # made with 2 threads, as before this rule
    search(old)
    resumed = SearchConfig(workers=None, study="old", **base)
    study = search(resumed)
    assert resumed.threads == 2 and resumed.workers == 1 and "stored 2 thread(s)" in resumed.parallel_reason
    assert len(optuna.load_study(study_name="old", storage=url).trials) == 2 == len(study.trials)
