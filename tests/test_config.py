import pytest

from dgnet_edge.config import builtin_config_names, load_config
from dgnet_edge.errors import ConfigError


@pytest.mark.parametrize("name", builtin_config_names())
def test_builtin_configs_validate(name):
    cfg = load_config(name)
    assert cfg.name
    assert cfg.to_yaml()


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ndata:\n  height: 64\n  width: 32\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nname: child\ndata:\n  width: 48\n")
    cfg = load_config(tmp_path / "child.yaml", ["id_train.epochs=3", "eval.ap=trapezoid"])
    assert (cfg.name, cfg.data.height, cfg.data.width) == ("child", 64, 48)
    assert cfg.id_train.epochs == 3 and cfg.eval.ap == "trapezoid"


def test_builtin_base_by_name(tmp_path):
    (tmp_path / "mine.yaml").write_text("_base_: teacher_market\nname: mine\n")
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg.teacher.backbone == "resnet50" and cfg.id_train.lr == 0.02


def test_config_is_frozen():
    cfg = load_config("synth_small")
    with pytest.raises(Exception):
        cfg.seed = 3


def test_errors_name_file_field_and_expectation(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  heigth: 64\n  width: wide\nappearance:\n  backbone: vgg\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    assert str(path) in text
    assert "data.heigth" in text and "unknown key" in text
    assert "data.width" in text and "integer" in text
    assert "appearance.backbone" in text and "resnet50" in text


@pytest.mark.parametrize(
    "content, message",
    [
        ("- a\n- b\n", "mapping"),
        ("data: [\n", "not valid YAML"),
        ("_base_: loop.yaml\n", "loops"),
        ("_base_: nowhere.yaml\n", "not found"),
        ("id_train:\n  milestones: [40, 20]\n", "increasing"),
        ("device: gpu\n", "cuda:N"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "loop.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_bad_override():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("synth_small", ["epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config("synth_small", ["name.x=1"])
