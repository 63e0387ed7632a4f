"""`tsfmicro search --recipe published --eval-mode published-oracle`: the search's base recipe
is the published scripts' for its data, and the mode is accepted as oracle is."""

from search.config import SearchConfig
from tsfmicro.cli import build_parser
from tsfmicro.vocab import PUBLISHED_ORACLE


def test_search_cli_builds_the_published_recipe_and_accepts_the_mode():
    args = build_parser().parse_args(
        ["search", "--recipe", "published", "--eval-mode", PUBLISHED_ORACLE, "--set", "epochs=3"]
    )
    from search.cli import build_search_config

    cfg = build_search_config(args)
    # the synthetic benchmark imitates CASME II 5-class: classes/cas2/train_c5.py's values
    assert cfg.train.epochs == 174 and cfg.train.weight_decay == 0.6
    assert cfg.train.batch_size == 32 and cfg.train.crop_padding == 15
    assert cfg.train.augment_fill == "imagenet_mean"
    assert cfg.train.augment_interpolation == "nearest"
    assert dict(cfg.space.constants) == {"epochs": 3}  # --set still wins
    assert cfg.eval_mode == PUBLISHED_ORACLE
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg  # the settings file keeps it
    toy = build_search_config(
        build_parser().parse_args(["search", "--dataset", "toy", "--recipe", "published"])
    )
    assert (toy.train.weight_decay, toy.train.rotation_deg, toy.train.crop_padding) == (
        0.7,
        4.0,
        4,
    )
    plain = build_search_config(build_parser().parse_args(["search"]))
    assert plain.train.epochs == 12 and plain.train.augment_fill == "black"
