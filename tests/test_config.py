"""Config: the shipped config validates, defaults come from the schema, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stemtomo.core.config import check_files, load_schema, model_settings, stage_settings, validate_config
from stemtomo.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def shipped() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_is_valid_and_defaults_are_filled():
    cfg = validate_config(shipped())
    sim = cfg["samples"]["demo"]["simulate"]
    schema = load_schema()["$defs"]["simulate"]["properties"]
    assert sim["oversample"] == schema["oversample"]["default"]
    assert sim["pt"]["diameter_nm"]["max"] == 5.0
    assert cfg["import"]["binning"] == 1 and cfg["import"]["exclude_indices"] == []


KEYWORDS = {"type", "description", "default", "minimum", "maximum", "exclusiveMinimum", "enum",
            "items", "properties", "additionalProperties", "pattern", "$ref", "oneOf", "required",
            "minItems", "maxItems", "not", "const", "$defs", "$schema", "title", "propertyNames",
            "minProperties", "maxLength", "minLength", "anyOf", "uniqueItems"}


def schema_nodes(node, path=""):
    """(path, schema) of every subschema; the children of properties/$defs are named by key."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from schema_nodes(sub, f"{path}.{key}.{name}")
            elif key in ("default", "const"):
                continue  # instances, not subschemas (a preset's default is a whole section)
            elif isinstance(value, (dict, list)):
                yield from schema_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schema_nodes(value, f"{path}[{i}]")


def test_every_schema_property_is_described_and_uses_only_schema_keywords():
    """Descriptions are the "fix" text users see. An unknown keyword is what an unquoted comma in
    a YAML flow mapping leaves behind (`{description: a, b, type: ...}` gives a key `b`), and it
    cuts the description short."""
    nodes = list(schema_nodes(load_schema()))
    assert len(nodes) > 150
    for path, node in nodes:
        assert set(node) <= KEYWORDS, f"{path}: unknown keyword(s) {set(node) - KEYWORDS}"
        if ".properties." in path and path.rsplit(".", 2)[-2] == "properties":
            assert "description" in node or "$ref" in node, f"{path} has no description"


@pytest.mark.parametrize("patch,key,words", [
    ({"samples": {"demo": {"simulate": {"size": "big"}}}}, "samples.demo.simulate.size",
     "not of type integer"),
    ({"samples": {"demo": {"simulate": {"seeed": 1}}}}, "samples.demo.simulate.seeed", "unknown key"),
    ({"samples": {"demo": {"simulate": {}}}, "allign": {}}, "allign", "unknown key"),
    ({"samples": {"demo": {"simulate": {}}}, "import": {"normalize": "max"}}, "import.normalize",
     "use one of total, none"),
    ({"samples": {"d": {"tiltseries": "a.mrc", "simulate": {}}}}, "samples.d",
     "it has simulate, tiltseries"),
    ({"samples": {"d": {"pixel_size_nm": 1}}}, "samples.d", "exactly one start point"),
    ({"samples": {"d": {"volume": "v.mrc", "slices": {}}}}, "samples.d", "it has slices, volume"),
    ({"samples": {"d": {"tiltseries": "a.dm3"}}}, "samples.d.tiltseries", "does not match"),
    ({"samples": {"d": {"volume": "v.mrc", "truth": "truth.png"}}}, "samples.d.truth",
     "fix: expected: optional ground truth for the evaluation only"),
    ({"samples": {"d": {"volume": "v.mrc", "label_values": {"pt": 3, "alumin": 2}}}},
     "samples.d.label_values.alumin", "unknown key 'alumin'"),
    ({"samples": {"d": {"volume": "v.mrc", "aligned": True}}}, "samples.d.aligned",
     "applies to `tiltseries:` samples only"),
    ({"samples": {"d": {"simulate": {}, "labels": "ann"}}}, "samples.d.labels",
     "a synthetic sample's phantom is its truth"),
    ({"samples": {"d": {"volume": "v.mrc", "label_values": {"pt": 2}}}}, "samples.d.label_values",
     "there are no annotations"),
    ({"samples": {"d": {"slices": {"train": {"images": "a", "masks": "b"}, "val": {
        "images": "c", "masks": "d"}}, "patches": {"context": 1}}}}, "samples.d.patches.context",
     "images of a `slices:` dataset are unrelated"),
    ({"samples": {"d": {"tiltseries": "a.mrc", "angles": {"start": -60}}}}, "samples.d.angles",
     "fix: expected: tilt angles in degrees"),
    ({"samples": {"d": {"tiltseries": "a.mrc", "import": {"binning": 0}}}}, "samples.d.import.binning",
     "minimum"),
    ({"samples": {"d": {"tiltseries": "a.mrc", "import": {"bining": 2}}}}, "samples.d.import.bining",
     "unknown key"),
    ({"samples": {}}, "samples", "should be non-empty"),
    ({"samples": {"d": {"simulate": {}}}, "train": {"per_model": {"unet": {"lr": -1}}}},
     "train.per_model.unet.lr", "minimum"),
    ({"samples": {"d": {"simulate": {}}}, "train": {"per_model": {"unet": {"lrr": 1}}}},
     "train.per_model.unet.lrr", "unknown key"),
    ({"samples": {"d": {"simulate": {}}}, "train": {"per_model": {"vnet": {}}}},
     "train.per_model", "vnet"),
    ({"samples": {"d": {"simulate": {}, "train": {"per_model": {"unet": {"lrr": 1}}}}}},
     "samples.d.train.per_model.unet.lrr", "unknown key"),
    ({"samples": {"d": {"simulate": {}}}, "patches": {"patch_size": 36}, "train": {"depth": 3}},
     "patches.patch_size", "36 is not a multiple of 2^depth = 8"),
    ({"samples": {"d": {"simulate": {}}}, "patches": {"patch_size": 32},
      "train": {"per_model": {"attention_unet": {"depth": 6}}}},
     "patches.patch_size", "not a multiple of 2^depth = 64 (attention_unet)"),
    ({"samples": {"d": {"simulate": {}, "segment": {"tile": 100}}}}, "samples.d.segment.tile",
     "fix: use a multiple of 8"),
    ({"samples": {"d": {"simulate": {"tilt": {"start": 70, "stop": -70}}}}},
     "samples.d.simulate.tilt", "fewer than two tilts"),
    ({"samples": {"d": {"simulate": {}}, "e": {"simulate": {}, "models_from": "d",
                                                "denoise": {"enabled": True, "input": "both"}}}},
     "samples.e.models_from", "the networks of 'd' read 1 input volume(s) (denoise.input), 'e' "
                              "would give them 2\n  fix: give samples.e.denoise the enabled"),
])
def test_mistakes_name_the_key(patch, key, words):
    with pytest.raises(ConfigError) as e:
        validate_config(patch)
    assert key + ":" in str(e.value)
    assert words in str(e.value)


def test_per_sample_import_overrides_merge_over_the_section():
    cfg = validate_config({"samples": {"a": {"tiltseries": "a.mrc", "import": {"binning": 2}},
                                       "b": {"simulate": {}}},
                           "import": {"normalize": "none"}})
    a, b = stage_settings(cfg, "a", "import"), stage_settings(cfg, "b", "import")
    assert a["binning"] == 2 and a["normalize"] == "none"
    assert b["binning"] == 1 and b["normalize"] == "none"


def test_per_model_settings_touch_only_that_model():
    cfg = validate_config({"samples": {"a": {"simulate": {}, "train": {"epochs": 5}}},
                           "train": {"lr": 0.01, "per_model": {"unet": {"lr": 0.001}}}})
    unet, att = model_settings(cfg, "a", "unet"), model_settings(cfg, "a", "attention_unet")
    assert unet["lr"] == 0.001 and att["lr"] == 0.01 and unet["epochs"] == att["epochs"] == 5
    # keys about all models stay out, so they never change one model's parameters
    assert "per_model" not in att and "models" not in att
    assert {k: v for k, v in unet.items() if k != "lr"} == {k: v for k, v in att.items() if k != "lr"}


def test_missing_files_fail_before_any_job(tmp_path):
    (tmp_path / "ts.mrc").write_bytes(b"")
    cfg = validate_config({"samples": {"m": {"tiltseries": "ts.mrc", "angles": "ts.rawtlt"}}})
    with pytest.raises(ConfigError, match=r"samples.m.angles: file not found: ts.rawtlt") as e:
        check_files(cfg, tmp_path)
    assert "fix:" in str(e.value)
    (tmp_path / "ts.rawtlt").write_text("0\n")
    check_files(cfg, tmp_path)


def test_presets_fill_in_what_the_config_leaves_out():
    schema = load_schema()["$defs"]["presets"]["properties"]
    cfg = validate_config({"samples": {"a": {"simulate": {}}}, "train": {"preset": "workstation"}})
    assert stage_settings(cfg, "a", "patches")["patch_size"] == 256
    assert model_settings(cfg, "a", "unet")["base"] == 32 and model_settings(cfg, "a", "unet")["depth"] == 4
    assert stage_settings(cfg, "a", "denoise")["epochs"] == 180
    assert stage_settings(cfg, "a", "denoise")["blend"] == 0.75
    assert stage_settings(cfg, "a", "denoise")["input"] == "both"
    assert schema["workstation"]["default"] == {"patches": {"patch_size": 256},
                                               "train": {"base": 32, "depth": 4},
                                               "denoise": {"epochs": 180, "blend": 0.75,
                                                           "input": "both"}}
    # explicit keys win, at either level; a sample's preset is that sample's
    cfg = validate_config({"samples": {"a": {"simulate": {}},
                                       "b": {"simulate": {}, "train": {"preset": "workstation"},
                                             "patches": {"patch_size": 128}}},
                           "train": {"base": 24}})
    assert stage_settings(cfg, "a", "patches")["patch_size"] == 64  # demo: the schema's defaults
    assert model_settings(cfg, "a", "unet")["depth"] == 3
    assert stage_settings(cfg, "a", "denoise")["epochs"] == 60
    assert stage_settings(cfg, "a", "denoise")["input"] == "denoised"
    assert stage_settings(cfg, "b", "patches")["patch_size"] == 128
    assert model_settings(cfg, "b", "unet")["base"] == 32 and model_settings(cfg, "b", "unet")["depth"] == 4
    with pytest.raises(ConfigError, match=r"train.preset: 'laptop' is not allowed\n.*demo, workstation"):
        validate_config({"samples": {"a": {"simulate": {}}}, "train": {"preset": "laptop"}})


def test_the_workstation_preset_builds_a_network_its_patches_fit():
    torch = pytest.importorskip("torch")
    from stemtomo.learn.models import build_model
    from stemtomo.learn.settings import PatchSettings, TrainSettings

    cfg = validate_config({"samples": {"a": {"simulate": {}}}, "train": {"preset": "workstation"}})
    patches = PatchSettings.from_section(stage_settings(cfg, "a", "patches"))
    train = TrainSettings.from_section(model_settings(cfg, "a", "attention_res_unet"))
    net = build_model("attention_res_unet", base=train.base, depth=train.depth)
    assert patches.patch_size % net.multiple == 0 and net.multiple == 16
    assert net.down[-1].body[0].out_channels == 512  # widths 32 → 512
    with torch.no_grad():
        out = net.eval()(torch.zeros(1, 1, patches.patch_size, patches.patch_size))
    assert out.shape == (1, 3, 256, 256)
    with pytest.raises(ConfigError, match="patch_size: 200 is not a multiple of 2\\^depth = 16"):
        validate_config({"samples": {"a": {"simulate": {}}}, "train": {"preset": "workstation"},
                         "patches": {"patch_size": 200}})


# --- labels checked before any job, against the reconstruction the settings produce ------------------

def labelled_sample(tmp_path, labels, images=(31, 200, 256), **sample):
    """A measured sample with a (tilt, y, x) series of `images` and the label volume `labels`
    (written as a TIFF); returns the validated config."""
    import numpy as np
    import tifffile

    (tmp_path / "data").mkdir(exist_ok=True)
    tifffile.imwrite(tmp_path / "data/ts.tif", np.zeros(images, np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "data/labels.tif", labels, photometric="minisblack")
    return validate_config({"samples": {"m": {"tiltseries": "data/ts.tif", "angles": "data/ts.rawtlt",
                                              "labels": "data/labels.tif", **sample}}})


def good_labels(shape):
    import numpy as np

    labels = np.full(shape, 255, np.uint8)
    labels[shape[0] // 2, :10] = 1
    labels[shape[0] // 2, 10:12] = 2
    labels[shape[0] // 2, 12:] = 0
    return labels


def test_labels_of_the_right_shape_and_values_pass(tmp_path):
    from stemtomo.prep.inputs import check_inputs as check_labels

    cfg = labelled_sample(tmp_path, good_labels((128, 100, 128)), **{"import": {"binning": 2}})
    check_labels(cfg, tmp_path)
    cfg = labelled_sample(tmp_path, good_labels((48, 60, 200)), reconstruct={"height": 48},
                          **{"import": {"crop": {"y": [20, 80], "x": [40, 240]}}})
    check_labels(cfg, tmp_path)


def test_a_label_shape_mismatch_names_each_axis_and_its_setting(tmp_path):
    from stemtomo.prep.inputs import check_inputs as check_labels

    cfg = labelled_sample(tmp_path, good_labels((256, 200, 256)), **{"import": {"binning": 2}})
    with pytest.raises(ConfigError) as e:
        check_labels(cfg, tmp_path)
    assert e.value.source == "config samples.m.labels"
    assert e.value.problem == (
        f"{tmp_path}/data/labels.tif: labels have shape (z, y, x) = (256, 200, 256), but the "
        "reconstruction will be (128, 100, 128): z 256 ≠ 128 (reconstruct.height: null (the width "
        "x)); y 200 ≠ 100 (the images' 200 rows, binned by samples.m.import.binning: 2); x 256 ≠ 128 "
        "(the images' 256 columns, binned by samples.m.import.binning: 2)")
    assert e.value.fix.startswith("annotate the reconstruction itself (results/<sample>/02_recon/")
    cfg = labelled_sample(tmp_path, good_labels((256, 256, 200)), reconstruct={"height": 256})
    with pytest.raises(ConfigError, match="the same sizes in another order: save the labels with "
                                          r"axes \(z, y, x\)"):
        check_labels(cfg, tmp_path)


def test_label_values_pt_and_readability_are_checked_before_any_job(tmp_path):
    import numpy as np

    from stemtomo.prep.inputs import check_inputs as check_labels

    shape = (256, 200, 256)
    labels = good_labels(shape)
    labels[0, 0, :3] = [3, 7, 7]
    with pytest.raises(ConfigError, match=r"labels.tif: label values \[3, 7\] are not classes "
                                          r"\(values found: 0: "):
        check_labels(labelled_sample(tmp_path, labels), tmp_path)
    no_pt = np.where(good_labels(shape) == 2, 1, good_labels(shape)).astype(np.uint8)
    with pytest.raises(ConfigError) as e:
        check_labels(labelled_sample(tmp_path, no_pt), tmp_path)
    assert e.value.problem.endswith("labels.tif: the labels hold no Pt (2) at all (values found: "
                                    "0: 48128 voxels, 1: 3072 voxels, 255: 13056000 voxels)")
    assert e.value.fix.startswith("label the Pt nanoparticles 2")
    with pytest.raises(ConfigError, match="no labelled voxels"):
        check_labels(labelled_sample(tmp_path, np.full(shape, 255, np.uint8)), tmp_path)
    labelled_sample(tmp_path, good_labels(shape))
    (tmp_path / "data/labels.tif").write_text("0 1 2\n")
    with pytest.raises(ConfigError, match="labels.tif: this is a text file, not a TIFF file"):
        check_labels(validate_config({"samples": {"m": {
            "tiltseries": "data/ts.tif", "labels": "data/labels.tif"}}}), tmp_path)


def test_label_values_are_counted_once_per_version_of_the_file(tmp_path, monkeypatch):
    import stemtomo.core.readers as readers
    from stemtomo.prep.inputs import check_inputs as check_labels

    cfg = labelled_sample(tmp_path, good_labels((256, 200, 256)))
    check_labels(cfg, tmp_path)
    assert (tmp_path / ".snakemake/stemtomo/labels-checked.json").is_file()

    def no_reading(path):
        raise AssertionError("the values were read again")

    monkeypatch.setattr(readers, "read_tiltseries", no_reading)
    check_labels(cfg, tmp_path)  # same file: header only
    cfg = labelled_sample(tmp_path, good_labels((256, 200, 256)))  # written anew
    with pytest.raises(AssertionError, match="read again"):
        check_labels(cfg, tmp_path)


def test_a_folder_given_as_a_file_is_named_as_a_folder(tmp_path):
    (tmp_path / "data/ts.tif").mkdir(parents=True)
    for name in ("tilt_001.tif", "tilt_002.tif"):
        (tmp_path / "data/ts.tif" / name).write_bytes(b"II*\x00")
    with pytest.raises(ConfigError) as e:
        check_files(validate_config({"samples": {"m": {"tiltseries": "data/ts.tif"}}}), tmp_path)
    assert e.value.source == "config samples.m.tiltseries"
    assert e.value.problem == "data/ts.tif: is a folder, not a file"
    assert e.value.fix.startswith("name the stack file itself (it holds tilt_001.tif, tilt_002.tif)")
