"""Search service pieces that need no cluster: space, config, CLI mapping, pruning, fold files."""

import numpy as np
import optuna
import pytest

from search.config import DataSpec, Resources, SearchConfig
from search.searcher import make_searcher
from search.space import DEFAULT_SPACE, Param, SearchSpace, resolve_configs
from search.trial import (
    TrialSetup,
    load_folds,
    load_stored_folds,
    save_folds,
    store_fold,
    trial_metrics,
)
from tsfmicro.cli import build_parser
from tsfmicro.config import MachineConfig, TrainConfig, preset
from tsfmicro.errors import ConfigError
from tsfmicro.toy import make_toy_pairs
from tsfmicro.training.loso import run_loso
from tsfmicro.training.runners import Runner


def test_default_space_is_depths_fusion_and_learning_rate():
    assert DEFAULT_SPACE.names == ["temporal_depth", "spatial_depth", "fusion", "lr"]
    model, train = resolve_configs(
        preset("tiny"), TrainConfig(), {"temporal_depth": 7, "fusion": "s2t", "lr": 1e-3}
    )
    assert model.temporal_depth == 7 and model.fusion == "s2t" and train.lr == 1e-3


def test_space_from_yaml_with_constants(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "weight_decay: {type: float, low: 0.01, high: 1.0, log: true}\n"
        "batch_size: {type: categorical, choices: [16, 32]}\n"
        "epochs: 30\n"
    )
    space = SearchSpace.from_yaml(path)
    assert space.names == ["weight_decay", "batch_size"]
    assert dict(space.constants) == {"epochs": 30}
    study = optuna.create_study()
    trial = study.ask()
    constants = space.define(trial)
    assert constants == {"epochs": 30}
    assert 0.01 <= trial.params["weight_decay"] <= 1.0 and trial.params["batch_size"] in (16, 32)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"retnet_depth": {"type": "int", "low": 1, "high": 3}}, "unknown field 'retnet_depth'"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale needs low > 0"),
        ({"fusion": {"type": "categorical", "choices": []}}, "non-empty 'choices'"),
        ({"image_size": 64}, "set by the data or the run"),
        ({"compile": "inductor"}, "machine setting"),
        ({"lr": {"low": 1, "high": 2}}, "missing 'type'"),
    ],
)
def test_bad_spaces_name_the_problem(data, words):
    with pytest.raises(ConfigError, match=words):
        SearchSpace.from_dict(data)


def test_grid_values_and_grid_rejects_continuous_floats():
    space = SearchSpace(
        (
            Param("temporal_depth", "int", low=2, high=4),
            Param("fusion", "categorical", choices=("late", "early")),
        )
    )
    assert space.grid() == {"temporal_depth": [2, 3, 4], "fusion": ["late", "early"]}
    with pytest.raises(ConfigError, match="grid search needs"):
        SearchConfig(name="g", sampler="grid", space=DEFAULT_SPACE)


def test_search_config_validation():
    with pytest.raises(ConfigError, match="SearchConfig.name"):
        SearchConfig(name="bad name!")
    with pytest.raises(ConfigError, match="needs its folder"):
        DataSpec(dataset="casme2")
    with pytest.raises(ConfigError, match="fold_cpus"):
        Resources(fold_cpus=0)
    with pytest.raises(ConfigError, match="fold_batch"):
        Resources(fold_batch=-1)
    with pytest.raises(ConfigError, match="fold_group must be one of sequential, stacked, str"):
        Resources(fold_group="vmap")
    with pytest.raises(ConfigError, match="'val' needs"):
        SearchConfig(name="v", eval_mode="val")
    cfg = SearchConfig(name="ok", train=TrainConfig(epochs=3))
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_flags_map_to_a_search_config():
    from search.cli import build_search_config

    args = build_parser().parse_args(
        [
            "search",
            "--name",
            "s1",
            "--dataset",
            "toy",
            "--trials",
            "6",
            "--scheduler",
            "asha",
            "--param",
            "weight_decay=float:0.01:1:log",
            "--param",
            "batch_size=choice:16,32",
            "--set",
            "epochs=5",
            "--fold-gpus",
            "0.25",
            "--eval-mode",
            "oracle",
            "--fold-batch",
            "0",
            "--fold-group",
            "streams",
        ]
    )
    cfg = build_search_config(args)
    assert cfg.name == "s1" and cfg.data.dataset == "toy" and cfg.trials == 6
    assert cfg.scheduler == "asha" and cfg.eval_mode == "oracle"
    assert cfg.resources.fold_gpus == 0.25 and cfg.resources.fold_batch == 0
    assert cfg.resources.fold_group == "streams"
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg  # the settings file keeps it
    assert cfg.space.names == DEFAULT_SPACE.names + ["weight_decay", "batch_size"]
    assert dict(cfg.space.constants) == {"epochs": 5}
    bad = build_parser().parse_args(["search", "--param", "lr=float:1"])
    with pytest.raises(ConfigError, match="--param"):
        build_search_config(bad)


def test_the_authors_model_options_are_search_choices():
    """The reference's S-to-T upsampler and its spatial-only ablation on the apex are fusion
    values a search can choose, beside the paper's model, under the published-oracle mode."""
    from search.cli import build_search_config

    choices = "late,s2t_ref,spatial_only_apex"
    args = build_parser().parse_args(
        ["search", "--param", f"fusion=choice:{choices}", "--eval-mode", "published-oracle"]
    )
    cfg = build_search_config(args)
    assert cfg.eval_mode == "published-oracle"
    # fusion's entry replaced, the others kept
    assert sorted(cfg.space.names) == sorted(DEFAULT_SPACE.names)
    fusion = next(p for p in cfg.space.params if p.name == "fusion")
    assert fusion.choices == tuple(choices.split(","))
    for value in fusion.choices:
        model, _ = resolve_configs(preset("micro"), TrainConfig(), {"fusion": value})
        assert model.fusion == value


def test_machine_settings_stay_out_of_the_space():
    """--set routes a machine setting to SearchConfig.machine, never into the space; a space
    refuses one; settings written before the recipe/machine split still load."""
    from search.cli import build_search_config

    args = build_parser().parse_args(
        [
            "search",
            "--name",
            "m1",
            "--set",
            "compile=aot_eager",
            "--set",
            "device=cpu",
            "--set",
            "epochs=3",
        ]
    )
    cfg = build_search_config(args)
    assert cfg.machine == MachineConfig(device="cpu", compile="aot_eager")
    assert dict(cfg.space.constants) == {"epochs": 3}
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="'device' is a machine setting"):
        SearchSpace.from_dict({"device": {"type": "categorical", "choices": ["cpu", "cuda"]}})
    old = SearchConfig(name="old").to_dict()
    old.pop("machine")
    old["train"].update(device="cpu", amp=False)  # as a settings file of an older search
    assert SearchConfig.from_dict(old).machine == MachineConfig(device="cpu", amp=False)


def test_synthetic_pair_frames_flag_names_its_own_copy(tmp_path):
    from search.cli import build_search_config
    from search.data import synthetic_root

    plain = build_search_config(build_parser().parse_args(["search", "--name", "s"]))
    paired = build_search_config(
        build_parser().parse_args(["search", "--name", "s", "--synth-pair-frames"])
    )
    assert not plain.data.synth_pair_frames and paired.data.synth_pair_frames
    assert SearchConfig.from_dict(paired.to_dict()) == paired
    assert synthetic_root(plain.data) != synthetic_root(paired.data)
    # the copy written before the flag existed keeps its folder (settings hash unchanged)
    assert synthetic_root(plain.data).name == "casme2-" + _old_digest(plain.data)


def _old_digest(spec) -> str:
    import hashlib
    import json

    settings = {
        "dataset": spec.synth_dataset,
        "subjects": spec.synth_subjects,
        "clips": spec.synth_clips,
        "difficulty": spec.synth_difficulty,
        "seed": spec.synth_seed,
        "protocol": spec.protocol,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def test_fold_gpus_default_to_a_gpu_share_on_a_cluster_with_gpus():
    from search.config import AUTO_FOLD_GPUS, Resources

    auto = Resources()
    assert auto.fold_gpus is None
    assert auto.resolved(cluster_gpus=0).fold_gpus == 0.0
    assert auto.resolved(cluster_gpus=4).fold_gpus == AUTO_FOLD_GPUS == 0.25
    assert Resources(fold_gpus=0).resolved(cluster_gpus=4).fold_gpus == 0  # asked for: kept
    assert Resources(fold_gpus=1).resolved(cluster_gpus=0).fold_gpus == 1
    with pytest.raises(ConfigError, match="fold_gpus"):
        Resources(fold_gpus=-1)


def test_trials_stopped_early_reach_optuna_as_pruned():
    searcher = make_searcher(DEFAULT_SPACE, "tpe", seed=0)
    searcher.set_search_properties(metric="objective", mode="max", config={})
    for trial_id in ("a", "b", "c"):
        assert searcher.suggest(trial_id) is not None
    searcher.on_trial_complete("a", {"objective": 0.7, "folds_done": 8, "n_folds": 8})
    searcher.on_trial_complete("b", {"objective": 0.9, "folds_done": 3, "n_folds": 8})
    searcher.on_trial_complete("c", None, error=True)
    states = [t.state for t in searcher._ot_study.trials]
    assert states == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    ]
    assert searcher._ot_study.best_value == 0.7  # the partial 0.9 never counted


def test_fold_checkpoint_round_trip_and_partial_metrics(tmp_path):
    data = make_toy_pairs(subjects=3, per_subject=3, classes=3, size=32)
    cfg = preset("micro", num_classes=3)
    on_cpu = Runner(machine=MachineConfig(device="cpu"))
    result = run_loso(data, cfg, TrainConfig(epochs=2, val_subjects=1), on_cpu)
    folds = {f.subject: f for f in result.folds}
    folds[result.folds[0].subject].worker = "node-1"
    save_folds(folds, tmp_path)
    loaded = load_folds(tmp_path)
    assert set(loaded) == set(folds) and loaded[result.folds[0].subject].worker == "node-1"
    for s, f in folds.items():
        assert np.array_equal(loaded[s].test_probs, f.test_probs)
        assert loaded[s].val_subjects == f.val_subjects
    setup = TrialSetup(
        data_ref=[None],
        subjects=tuple(data.subject_ids()),
        labels=data.labels.numpy(),
        num_classes=3,
        base_model=cfg,
        base_train=TrainConfig(epochs=2, val_subjects=1),
        eval_mode="final",
        objective="uf1",
        fold_cpus=1,
        fold_gpus=0,
        fold_parallelism=1,
        fold_retries=0,
    )
    partial = trial_metrics({k: loaded[k] for k in list(loaded)[:2]}, setup)
    assert partial["folds_done"] == 2 and partial["n_folds"] == 3
    full = trial_metrics(loaded, setup)
    assert full["objective"] == pytest.approx(result.evaluate("final", n_boot=10).uf1)
    assert full["oracle/acc"] >= full["final/acc"]


def test_fold_store_keeps_whole_folds_of_the_same_subjects(tmp_path):
    """The fold store a restored trial reads: each fold one npz written whole; a position that
    now names another subject, a half-written temporary or a damaged file is not a fold."""
    data = make_toy_pairs(subjects=3, per_subject=3, classes=3, size=32)
    cfg = preset("micro", num_classes=3)
    on_cpu = Runner(machine=MachineConfig(device="cpu"))
    folds = run_loso(data, cfg, TrainConfig(epochs=2, val_subjects=1), on_cpu).folds
    subjects = tuple(f.subject for f in folds)
    folds[0].worker = "node-7"
    store = tmp_path / "folds" / "trial_1"
    for position, fold in enumerate(folds[:2]):
        store_fold(store, position, fold)
    assert sorted(p.name for p in store.iterdir()) == ["0000.npz", "0001.npz"]  # no temporaries
    loaded = load_stored_folds(store, subjects)
    assert set(loaded) == set(subjects[:2]) and loaded[subjects[0]].worker == "node-7"
    for fold in folds[:2]:
        got = loaded[fold.subject]
        assert np.array_equal(got.test_probs, fold.test_probs)
        assert np.array_equal(got.train_index, fold.train_index)
        assert (got.seed, got.val_subjects, got.seconds) == (
            fold.seed,
            fold.val_subjects,
            fold.seconds,
        )
    # the data changed order: position 0 now names another subject, so it is not restored
    assert set(load_stored_folds(store, (subjects[1], subjects[0], subjects[2]))) == set()
    (store / "0001.npz").write_bytes(b"not an npz")  # damaged: trained again
    (store / ".0002.123.tmp").write_bytes(b"half")  # a writer killed midway: ignored
    assert set(load_stored_folds(store, subjects)) == {subjects[0]}
    assert load_stored_folds(tmp_path / "absent", subjects) == {}


def test_search_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--resume",
        "--sampler",
        "--scheduler",
        "--fold-gpus",
        "--tracking-uri",
        "--time-budget",
        "--eval-mode",
        "--objective",
        "--storage-path",
    ):
        assert flag in out


def test_synthetic_copy_with_pair_frames_trains_on_moved_pairs(tmp_path):
    from search.config import DataSpec
    from search.data import load_search_pairs

    spec = DataSpec(
        synth_subjects=2,
        synth_clips=5,
        synth_pair_frames=True,
        data_dir=str(tmp_path / "synth"),
        cache_dir=str(tmp_path / "cache"),
    )
    pairs = load_search_pairs(spec, image_size=32, progress=False)
    assert len(pairs) == 10 and pairs.train_onset is not None
    assert 0 < pairs.moved_training_pairs() <= 10
